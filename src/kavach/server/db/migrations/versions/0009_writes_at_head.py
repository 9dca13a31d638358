"""writes at head: appends and commits made on the state a server last saw, in one round trip

PostgreSQL only. Read batches guard their events' inserts with kavach_check_chain_head
(see audit.service.append_at_head), and lean commits their writes with kavach_check_at_head
(see secrets.fast_commit). A pipeline of statements sent outside a transaction is one
transaction: writes that find what they expected are locked, checked, written and
committed in one round trip.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 15:00:00.000000
"""

from __future__ import annotations

from alembic import op

from kavach.server.db import sql_files

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Each raises, failing the whole transaction it runs in, unless what it checks is what the
# caller expected. The locks are those of 0007, taken in the order every writer takes them
# (environment, then chain); no head is (0, the genesis hash), as audit.service.chain_head
# reads it. NULL expectations never pass by accident: comparisons are IS DISTINCT FROM.


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sql_files.load("kavach_check_chain_head", 1))
        # A commit's check: the environment's latest version and the access epoch, and the
        # chain's head unless p_seq is NULL (a batch that only refuses writes no event).
        op.execute(sql_files.load("kavach_check_at_head", 1))


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_check_at_head(uuid, text, text, bigint, text, bigint)")
        op.execute("DROP FUNCTION kavach_check_chain_head(text, bigint, text)")
