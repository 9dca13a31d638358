"""OpenID Connect: sign-ins in progress, linked identities, mapped groups, workload trusts

A membership brought by a provider's group mapping is marked with the provider (so the
next sign-in may take it away again); the memberships' epoch trigger already moves the
epoch when one goes. A token a workload exchanged its platform token for is a service
token that names its trust: deleting the trust deletes the token, which the service
tokens' trigger already counts as narrowing access. (No foreign key: SQLite would rebuild
the service tokens' table for one, and its epoch triggers with it; deleting a trust deletes
its tokens in the same transaction instead.)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _id_and_created() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    """Add the OpenID Connect tables and columns."""
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("device_authorization_id", sa.Uuid(), nullable=True),
        sa.Column("return_to", sa.String(length=512), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        *_id_and_created(),
        sa.ForeignKeyConstraint(
            ["device_authorization_id"],
            ["device_authorizations.id"],
            name=op.f("fk_oidc_logins_device_authorization_id_device_authorizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_logins")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oidc_logins_state_hash")),
    )
    op.create_table(
        "user_identities",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        *_id_and_created(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
        sa.UniqueConstraint("provider", "subject", name="uq_user_identities_subject"),
    )
    with op.batch_alter_table("user_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_identities_user_id"), ["user_id"], unique=False)
    op.create_table(
        "workload_trusts",
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("audience", sa.String(length=512), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        *_id_and_created(),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_workload_trusts_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_workload_trusts_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workload_trusts")),
        sa.UniqueConstraint("environment_id", "name", name="uq_workload_trusts_name"),
    )
    with op.batch_alter_table("workload_trusts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workload_trusts_environment_id"), ["environment_id"], unique=False
        )
    with op.batch_alter_table("device_authorizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_provider", sa.String(length=32), nullable=True))
    with op.batch_alter_table("user_group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=32), nullable=True))
    with op.batch_alter_table("service_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workload_trust_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=255), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_service_tokens_workload_trust_id"), ["workload_trust_id"], unique=False
        )


def downgrade() -> None:
    """Drop them again."""
    # Dropped one by one, not in batch mode: on SQLite a batch would rebuild these tables
    # and lose their access-epoch triggers (SQLite 3.35 and later drop a column in place).
    op.drop_index(op.f("ix_service_tokens_workload_trust_id"), table_name="service_tokens")
    op.drop_column("service_tokens", "subject")
    op.drop_column("service_tokens", "workload_trust_id")
    op.drop_column("user_group_members", "source")
    op.drop_column("device_authorizations", "identity_provider")
    op.drop_table("workload_trusts")
    op.drop_table("user_identities")
    op.drop_table("oidc_logins")
