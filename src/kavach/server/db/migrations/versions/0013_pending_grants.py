"""pending grants: roles granted to a login or e-mail before its first sign-in

A pending grant grants nothing until the person it names signs in, so, unlike role
bindings, it needs no access-epoch trigger: adding or removing one narrows nobody's access.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TABLE = "pending_grants"


def upgrade() -> None:
    """Add the pending grants table."""
    op.create_table(
        _TABLE,
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("invitee_type", sa.String(length=8), nullable=False),
        sa.Column("invitee", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "invitee_type IN ('login', 'email')", name=op.f("ck_pending_grants_invitee_type")
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"],
            ["users.id"],
            name=op.f("fk_pending_grants_granted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_pending_grants_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_grants")),
    )
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_grants_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "uq_pending_grants_invitee", ["resource_type", "resource_id", "invitee"], unique=True
        )
        batch_op.create_index("ix_pending_grants_by_invitee", ["invitee"], unique=False)


def downgrade() -> None:
    """Drop the pending grants table."""
    op.drop_table(_TABLE)
