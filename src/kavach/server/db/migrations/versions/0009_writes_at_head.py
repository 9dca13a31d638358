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

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Each raises, failing the whole transaction it runs in, unless what it checks is what the
# caller expected. The locks are those of 0007, taken in the order every writer takes them
# (environment, then chain); no head is (0, the genesis hash), as audit.service.chain_head
# reads it. NULL expectations never pass by accident: comparisons are IS DISTINCT FROM.
_CHECK_CHAIN_HEAD = """
CREATE FUNCTION kavach_check_chain_head(p_chain text, p_seq bigint, p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found_seq bigint;
    found_hash text;
BEGIN
    SELECT h.head_seq, coalesce(h.head_hash, '') INTO found_seq, found_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    IF NOT FOUND THEN
        found_seq := 0;
        found_hash := repeat('0', 64);
    END IF;
    IF found_seq IS DISTINCT FROM p_seq OR found_hash IS DISTINCT FROM p_hash THEN
        RAISE EXCEPTION 'not at the expected head' USING ERRCODE = 'KV409';
    END IF;
    RETURN true;
END
$$
"""

# A commit's check: the environment's latest version and the access epoch, and the chain's
# head unless p_seq is NULL (a batch that only refuses writes no event).
_CHECK_AT_HEAD = """
CREATE FUNCTION kavach_check_at_head(
    p_environment uuid, p_version text, p_chain text, p_seq bigint, p_hash text, p_epoch bigint
)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latest secret_versions;
    epoch bigint;
BEGIN
    SELECT * INTO latest FROM kavach_lock_environment(p_environment);
    IF p_seq IS NOT NULL THEN
        PERFORM kavach_check_chain_head(p_chain, p_seq, p_hash);
    END IF;
    SELECT a.value INTO epoch FROM access_epoch AS a WHERE a.id = 1;
    IF latest.id IS DISTINCT FROM p_version OR epoch IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'not at the expected version' USING ERRCODE = 'KV409';
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CHECK_CHAIN_HEAD)
        op.execute(_CHECK_AT_HEAD)


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_check_at_head(uuid, text, text, bigint, text, bigint)")
        op.execute("DROP FUNCTION kavach_check_chain_head(text, bigint, text)")
