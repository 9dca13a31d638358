"""serialising functions: take a lock and read what it guards in one round trip

PostgreSQL only: a lock per audit chain returning the chain's head, and the environment's
lock for commits returning its latest version. (SQLite runs one transaction at a time.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

from kavach.server.db import sql_files

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Servers before this migration serialise every append under one exclusive advisory lock,
# 1262572868 (0x4B415544). Newer ones hold it shared, so they exclude older ones during a
# rolling upgrade but not each other, and serialise appends per chain under (that id, hash
# of the chain). PL/pgSQL runs each statement with a fresh snapshot (READ COMMITTED), so
# the head is read after the lock is granted and sees the last holder's commit.


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql_files.load("kavach_audit_chain_head", 1))
        # Commits to an environment queue on its row; the latest version is read after the
        # lock is granted, so a commit always builds on the one before it.
        op.execute(sql_files.load("kavach_lock_environment", 1))


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_lock_environment(uuid)")
        op.execute("DROP FUNCTION kavach_audit_chain_head(text)")
