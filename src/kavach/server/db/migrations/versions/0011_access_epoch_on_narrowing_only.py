"""access epoch: sessions and service tokens move it only when access ends or narrows

Revision 0006 moved the epoch on every update of a login session's expiry, and a refresh
slides that expiry forward: every refresh emptied every instance's access caches. Caches
hold only grants, so a change that widens access (a later expiry) makes no cached answer
wrong. These triggers fire per row, only when a session or token is revoked, expires
earlier, changes hands, or a token's role or environment changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BUMP = "UPDATE access_epoch SET value = value + 1"
_REVOKED = "OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL"
# Timestamps compare in time on PostgreSQL; SQLite stores one fixed-width UTC text form.
_LOGIN_NARROWS = (
    f"({_REVOKED}) OR NEW.expires_at < OLD.expires_at OR NEW.user_id IS NOT OLD.user_id"
)
_TOKEN_NARROWS = (
    f"({_REVOKED})"
    " OR (NEW.expires_at IS NOT NULL"
    " AND (OLD.expires_at IS NULL OR NEW.expires_at < OLD.expires_at))"
    " OR NEW.role IS NOT OLD.role OR NEW.environment_id IS NOT OLD.environment_id"
)
# (table, columns, when the update ends or narrows access)
_NARROWING = [
    ("login_sessions", "revoked_at, expires_at, user_id", _LOGIN_NARROWS),
    ("service_tokens", "revoked_at, expires_at, role, environment_id", _TOKEN_NARROWS),
]


def _postgres_condition(condition: str) -> str:
    # PostgreSQL spells SQLite's null-safe IS NOT as IS DISTINCT FROM.
    return condition.replace(" IS NOT OLD.", " IS DISTINCT FROM OLD.")


def _sqlite_name(table: str) -> str:
    return f"trg_access_epoch_{table}_update"  # revision 0006's name


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        for table, columns, condition in _NARROWING:
            # 0006's trigger covered updates and deletes in one; deletes keep theirs.
            op.execute(f"DROP TRIGGER trg_access_epoch_{table} ON {table}")
            op.execute(
                f"CREATE TRIGGER trg_access_epoch_{table} AFTER DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_access_epoch()"
            )
            op.execute(
                f"CREATE TRIGGER trg_access_epoch_{table}_narrowed AFTER UPDATE OF {columns} "
                f"ON {table} FOR EACH ROW WHEN ({_postgres_condition(condition)}) "
                "EXECUTE FUNCTION bump_access_epoch()"
            )
        return
    for table, columns, condition in _NARROWING:
        op.execute(f"DROP TRIGGER {_sqlite_name(table)}")
        op.execute(
            f"CREATE TRIGGER {_sqlite_name(table)} AFTER UPDATE OF {columns} ON {table} "
            f"FOR EACH ROW WHEN {condition} BEGIN {_BUMP}; END"
        )


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        for table, columns, _condition in _NARROWING:
            op.execute(f"DROP TRIGGER trg_access_epoch_{table}_narrowed ON {table}")
            op.execute(f"DROP TRIGGER trg_access_epoch_{table} ON {table}")
            op.execute(
                f"CREATE TRIGGER trg_access_epoch_{table} AFTER UPDATE OF {columns} OR DELETE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_access_epoch()"
            )
        return
    for table, columns, _condition in _NARROWING:
        op.execute(f"DROP TRIGGER {_sqlite_name(table)}")
        op.execute(
            f"CREATE TRIGGER {_sqlite_name(table)} AFTER UPDATE OF {columns} ON {table} "
            f"BEGIN {_BUMP}; END"
        )
