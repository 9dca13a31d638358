"""References between secrets: where a version's references lead, and their reverse index

A version's `links` (JSON text) says, for each secret holding a reference, the secrets it
pulls from and the versions of other environments they were at when it was committed;
versions from before have none and are read literally. `reference_edges` tells a commit
that removes a secret which environments may refer to it. A sync run records the revision
it pushed (the environment's version and those of the environments it refers to).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the links column, the edges table and the sync run's revision."""
    if op.get_bind().dialect.name == "postgresql":
        # Run in one transaction after 0010, whose writes leave the versions' deferred data
        # key checks pending: PostgreSQL alters no table with pending trigger events.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.add_column("secret_versions", sa.Column("links", sa.Text(), nullable=True))
    op.add_column("sync_runs", sa.Column("revision", sa.String(length=80), nullable=True))
    op.create_table(
        "reference_edges",
        sa.Column("source_environment_id", sa.Uuid(), nullable=False),
        sa.Column("target_environment_id", sa.Uuid(), nullable=False),
        sa.Column("target_name", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_environment_id"],
            ["environments.id"],
            name=op.f("fk_reference_edges_source_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_environment_id"],
            ["environments.id"],
            name=op.f("fk_reference_edges_target_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source_environment_id",
            "target_environment_id",
            "target_name",
            name=op.f("pk_reference_edges"),
        ),
    )
    op.create_index(
        "ix_reference_edges_target",
        "reference_edges",
        ["target_environment_id", "target_name"],
    )


def downgrade() -> None:
    """Drop them again (in place: a batch would rebuild the tables and lose triggers)."""
    op.drop_index("ix_reference_edges_target", table_name="reference_edges")
    op.drop_table("reference_edges")
    op.drop_column("sync_runs", "revision")
    op.drop_column("secret_versions", "links")
