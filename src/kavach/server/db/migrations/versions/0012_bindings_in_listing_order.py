"""role bindings: a resource's bindings indexed in the members listing's order

The members listing pages a resource's bindings by role, then id. With the index on the
resource alone, a page of an organization with thousands of members sorted all of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLE = "role_bindings"
_INDEX = "ix_role_bindings_resource"


def upgrade() -> None:
    """Index a resource's bindings by role and id."""
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, ["resource_type", "resource_id", "role", "id"])


def downgrade() -> None:
    """Index a resource's bindings by the resource alone."""
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, ["resource_type", "resource_id"])
