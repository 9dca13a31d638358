"""commit lock function: everything a commit reads under its locks, in one round trip

PostgreSQL only: the environment's lock and its latest version's secrets, the audit chain's
lock and head, and the access epoch, for the lean commit path (see secrets.fast_commit).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:00:00.000000
"""

from __future__ import annotations

from alembic import op

from kavach.server.db import sql_files

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The locks are taken in the order every commit takes them (environment, then chain), by
# the functions of 0007. Each statement of a PL/pgSQL function reads with a fresh snapshot,
# so everything here is read after both locks are granted. One row per secret of the latest
# version (sorted by name), or one row without a secret when it holds none or there is none.


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql_files.load("kavach_lock_for_commit", 1))


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_lock_for_commit(uuid, text)")
