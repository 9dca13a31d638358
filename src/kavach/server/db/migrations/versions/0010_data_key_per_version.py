"""data key per version: a version's secrets name their data key once, on the version

Every secret of a version is sealed with one data key, the environment's key for writing
when the version was made. Recorded on each secret, that key cost a commit one foreign-key
check and one index entry per secret; recorded on the version, it costs one of each.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kavach.server.db import sql_files

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FK_VERSIONS = "fk_secret_versions_data_key_id_data_keys"
_FK_SECRETS = "fk_secrets_data_key_id_data_keys"

# Versions holding secrets sealed with more than one data key: none are ever written, and
# one found means the rows are not what this migration assumes, so it stops.
_MIXED = """
SELECT version_id FROM secrets
GROUP BY version_id
HAVING COUNT(DISTINCT data_key_id) > 1
LIMIT 1
"""
_FILL_VERSIONS = """
UPDATE secret_versions SET data_key_id = (
    SELECT s.data_key_id FROM secrets AS s WHERE s.version_id = secret_versions.id LIMIT 1
)
"""
_FILL_SECRETS = """
UPDATE secrets SET data_key_id = (
    SELECT v.data_key_id FROM secret_versions AS v WHERE v.id = secrets.version_id
)
"""

# kavach_lock_for_commit reads the data key from the version after this migration (its
# version 2), from each secret before it (version 1, 0008's).
_DROP_LOCK_FOR_COMMIT = "DROP FUNCTION kavach_lock_for_commit(uuid, text)"


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Apply this migration."""
    mixed = op.get_bind().execute(sa.text(_MIXED)).first()
    if mixed is not None:
        raise RuntimeError(f"version {mixed[0]} holds secrets sealed with different data keys")
    if _on_postgresql():
        op.execute(_DROP_LOCK_FOR_COMMIT)
    with op.batch_alter_table("secret_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_key_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f(_FK_VERSIONS),
            "data_keys",
            ["data_key_id"],
            ["id"],
            deferrable=True,
            initially="DEFERRED",
        )
        batch_op.create_index(
            batch_op.f("ix_secret_versions_data_key_id"), ["data_key_id"], unique=False
        )
    op.execute(_FILL_VERSIONS)
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_data_key_id"))
        batch_op.drop_constraint(batch_op.f(_FK_SECRETS), type_="foreignkey")
        batch_op.drop_column("data_key_id")
    if _on_postgresql():
        op.execute(sql_files.load("kavach_lock_for_commit", 2))


def downgrade() -> None:
    """Revert this migration."""
    if _on_postgresql():
        op.execute(_DROP_LOCK_FOR_COMMIT)
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_key_id", sa.Uuid(), nullable=True))
    op.execute(_FILL_SECRETS)
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.alter_column("data_key_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f(_FK_SECRETS),
            "data_keys",
            ["data_key_id"],
            ["id"],
            deferrable=True,
            initially="DEFERRED",
        )
        batch_op.create_index(batch_op.f("ix_secrets_data_key_id"), ["data_key_id"], unique=False)
    with op.batch_alter_table("secret_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secret_versions_data_key_id"))
        batch_op.drop_constraint(batch_op.f(_FK_VERSIONS), type_="foreignkey")
        batch_op.drop_column("data_key_id")
    if _on_postgresql():
        op.execute(sql_files.load("kavach_lock_for_commit", 1))
