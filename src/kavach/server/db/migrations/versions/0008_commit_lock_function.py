"""commit lock function: everything a commit reads under its locks, in one round trip

PostgreSQL only: the environment's lock and its latest version's secrets, the audit chain's
lock and head, and the access epoch, for the lean commit path (see secrets.fast_commit).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The locks are taken in the order every commit takes them (environment, then chain), by
# the functions of 0007. Each statement of a PL/pgSQL function reads with a fresh snapshot,
# so everything here is read after both locks are granted. One row per secret of the latest
# version (sorted by name), or one row without a secret when it holds none or there is none.
_LOCK_FOR_COMMIT = """
CREATE FUNCTION kavach_lock_for_commit(p_environment uuid, p_chain text)
RETURNS TABLE (
    epoch bigint,
    head_seq bigint,
    head_hash text,
    version_id text,
    version_seq integer,
    name text,
    data_key_id uuid,
    value_encrypted bytea
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latest secret_versions;
BEGIN
    SELECT * INTO latest FROM kavach_lock_environment(p_environment);
    SELECT h.head_seq, h.head_hash INTO head_seq, head_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    SELECT a.value INTO epoch FROM access_epoch AS a WHERE a.id = 1;
    RETURN QUERY
        SELECT epoch, head_seq, head_hash, latest.id::text, latest.seq,
               s.name::text, s.data_key_id, s.value_encrypted
        FROM (SELECT 1) AS one
        LEFT JOIN secrets AS s ON s.version_id = latest.id
        ORDER BY s.name;
END
$$
"""


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_LOCK_FOR_COMMIT)


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kavach_lock_for_commit(uuid, text)")
