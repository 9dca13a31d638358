"""access epoch: a counter every change to who-may-do-what moves, for access caches

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kavach.server.db import sql_files

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, events) whose changes can end or narrow someone's access. Triggers rather than
# application code, so no path (cascades, admin commands, a hand-run statement) is missed.
_TRACKED = [
    ("role_bindings", ["INSERT", "UPDATE", "DELETE"]),
    ("user_group_members", ["INSERT", "UPDATE", "DELETE"]),
    ("login_sessions", ["UPDATE OF revoked_at, expires_at, user_id", "DELETE"]),
    ("service_tokens", ["UPDATE OF revoked_at, expires_at, role, environment_id", "DELETE"]),
    ("users", ["DELETE"]),
    ("organizations", ["DELETE"]),
    ("secret_groups", ["UPDATE OF organization_id", "DELETE"]),
    ("environments", ["UPDATE OF secret_group_id", "DELETE"]),
    ("user_groups", ["UPDATE OF organization_id", "DELETE"]),
]
_BUMP = "UPDATE access_epoch SET value = value + 1"


def _trigger_name(table: str, event: str) -> str:
    return f"trg_access_epoch_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "access_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_epoch")),
    )
    op.execute("INSERT INTO access_epoch (id, value) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql_files.load("bump_access_epoch", 1))
        for table, events in _TRACKED:
            op.execute(
                f"CREATE TRIGGER trg_access_epoch_{table} AFTER {' OR '.join(events)} "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_access_epoch()"
            )
        return
    for table, events in _TRACKED:
        for event in events:
            op.execute(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                f"BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        for table, _events in _TRACKED:
            op.execute(f"DROP TRIGGER trg_access_epoch_{table} ON {table}")
        op.execute("DROP FUNCTION bump_access_epoch()")
    else:
        for table, events in _TRACKED:
            for event in events:
                op.execute(f"DROP TRIGGER {_trigger_name(table, event)}")
    op.drop_table("access_epoch")
