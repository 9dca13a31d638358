"""data keys, secret versions, secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 04:01:48.396031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "data_keys",
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("kek_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_data_keys_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_keys_environment_id"), ["environment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_data_keys_kek_id"), ["kek_id"], unique=False)

    op.create_table(
        "secret_versions",
        sa.Column("id", sa.String(length=8), nullable=False),
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.String(length=8), nullable=True),
        sa.Column("author_type", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("author_label", sa.String(length=255), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("secret_count", sa.Integer(), nullable=False),
        sa.Column("rollback_of", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_secret_versions_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_versions")),
        sa.UniqueConstraint("environment_id", "seq", name="uq_secret_versions_seq"),
    )
    op.create_table(
        "secrets",
        sa.Column("version_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("data_key_id", sa.Uuid(), nullable=False),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["data_keys.id"],
            name=op.f("fk_secrets_data_key_id_data_keys"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["secret_versions.id"],
            name=op.f("fk_secrets_version_id_secret_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_secrets")),
    )
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_secrets_data_key_id"), ["data_key_id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_data_key_id"))

    op.drop_table("secrets")
    op.drop_table("secret_versions")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_keys_kek_id"))
        batch_op.drop_index(batch_op.f("ix_data_keys_environment_id"))

    op.drop_table("data_keys")
