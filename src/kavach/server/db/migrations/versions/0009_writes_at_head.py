"""writes at head: appends and commits made on the state a server last saw, in one round trip

PostgreSQL only. Read batches append their events with kavach_append_at_head (see
audit.batch), and lean commits guard their writes with kavach_check_at_head (see
secrets.fast_commit). A statement, or a pipeline of them, sent outside a transaction is a
transaction of its own: a write that finds what it expected is locked, checked, written
and committed in one round trip.

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

# The lock and the head are those of kavach_audit_chain_head (0007): no head is (0, the
# genesis hash), as audit.service.chain_head reads it. The events arrive signed, chained
# on the head the caller expects; if the head has moved (another server appended), nothing
# is written and the head found is returned, to chain and sign the events again on.
_APPEND_AT_HEAD = """
CREATE FUNCTION kavach_append_at_head(
    p_chain text, p_seq bigint, p_hash text, p_events jsonb
)
RETURNS TABLE (head_seq bigint, head_hash text, appended boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT h.head_seq, coalesce(h.head_hash, '') INTO head_seq, head_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    appended := head_seq = p_seq AND head_hash = p_hash;
    IF appended THEN
        INSERT INTO audit_events (
            occurred_at, actor_type, actor_id, actor_label, action, resource_type,
            resource_id, outcome, client_address, request_id, details, organization_id,
            secret_group_id, environment_id, chain, chain_seq, prev_hash, hash, key_id
        )
        SELECT
            e.occurred_at, e.actor_type, e.actor_id, e.actor_label, e.action, e.resource_type,
            e.resource_id, e.outcome, e.client_address, e.request_id, e.details,
            e.organization_id, e.secret_group_id, e.environment_id, e.chain, e.chain_seq,
            e.prev_hash, e.hash, e.key_id
        FROM jsonb_populate_recordset(NULL::audit_events, p_events) AS e;
    END IF;
    RETURN NEXT;
END
$$
"""


# Takes a commit's locks in the order every commit takes them (environment, then chain; the
# functions of 0007) and raises, failing the whole transaction, unless the environment's
# latest version, the chain's head and the access epoch are the ones the caller expected.
_CHECK_AT_HEAD = """
CREATE FUNCTION kavach_check_at_head(
    p_environment uuid, p_version text, p_chain text, p_seq bigint, p_hash text, p_epoch bigint
)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latest secret_versions;
    found_seq bigint;
    found_hash text;
    epoch bigint;
BEGIN
    SELECT * INTO latest FROM kavach_lock_environment(p_environment);
    SELECT h.head_seq, coalesce(h.head_hash, '') INTO found_seq, found_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    IF NOT FOUND THEN
        found_seq := 0;
        found_hash := repeat('0', 64);
    END IF;
    SELECT a.value INTO epoch FROM access_epoch AS a WHERE a.id = 1;
    IF latest.id IS DISTINCT FROM p_version OR found_seq <> p_seq OR found_hash <> p_hash
            OR epoch IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'not at the expected head' USING ERRCODE = 'KV409';
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_AT_HEAD)
        op.execute(_CHECK_AT_HEAD)


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_check_at_head(uuid, text, text, bigint, text, bigint)")
        op.execute("DROP FUNCTION kavach_append_at_head(text, bigint, text, jsonb)")
