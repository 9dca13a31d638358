"""audit events: scope columns and the hash chain

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 04:48:24.587349
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("secret_group_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("environment_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("chain", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_audit_events_environment", ["environment_id", "id"], unique=False)
        batch_op.create_index(
            "ix_audit_events_organization", ["organization_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_secret_group", ["secret_group_id", "id"], unique=False
        )
        batch_op.create_unique_constraint("uq_audit_events_chain_seq", ["chain", "chain_seq"])
    _backfill_scope()


def _backfill_scope() -> None:
    """Give events recorded before this revision the scope of resources that still exist.

    Those events stay outside the hash chain (no key is at hand here); they only become
    visible in the audit listings of their organization, group or environment.
    """
    bind = op.get_bind()
    uid = sa.Uuid()
    groups = sa.table("secret_groups", sa.column("id", uid), sa.column("organization_id", uid))
    envs = sa.table("environments", sa.column("id", uid), sa.column("secret_group_id", uid))
    teams = sa.table("user_groups", sa.column("id", uid), sa.column("organization_id", uid))
    tokens = sa.table("service_tokens", sa.column("id", uid), sa.column("environment_id", uid))
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("resource_type", sa.String()),
        sa.column("resource_id", sa.String()),
        sa.column("organization_id", uid),
        sa.column("secret_group_id", uid),
        sa.column("environment_id", uid),
    )
    group_org = dict(bind.execute(sa.select(groups.c.id, groups.c.organization_id)).all())
    scopes: dict[tuple[str, str], tuple[object, object, object]] = {}
    for group, org in group_org.items():
        scopes["secret_group", str(group)] = (org, group, None)
    env_scope: dict[object, tuple[object, object, object]] = {}
    for env, group in bind.execute(sa.select(envs.c.id, envs.c.secret_group_id)).all():
        env_scope[env] = (group_org.get(group), group, env)
        scopes["environment", str(env)] = env_scope[env]
    for team, org in bind.execute(sa.select(teams.c.id, teams.c.organization_id)).all():
        scopes["user_group", str(team)] = (org, None, None)
    for token, env in bind.execute(sa.select(tokens.c.id, tokens.c.environment_id)).all():
        if env in env_scope:
            scopes["service_token", str(token)] = env_scope[env]
    rows = bind.execute(
        sa.select(events.c.id, events.c.resource_type, events.c.resource_id).where(
            events.c.resource_id.is_not(None)
        )
    ).all()
    updates = []
    for event_id, kind, resource_id in rows:
        scope = scopes.get((kind, resource_id))
        if scope is None and kind == "organization":
            scope = (_uuid(resource_id), None, None)
        if scope is not None and scope[0] is not None:
            org, group, env = scope
            updates.append({"_id": event_id, "org": org, "group": group, "env": env})
    if updates:
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("_id"))
            .values(
                organization_id=sa.bindparam("org", type_=uid),
                secret_group_id=sa.bindparam("group", type_=uid),
                environment_id=sa.bindparam("env", type_=uid),
            ),
            updates,
        )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_chain_seq", type_="unique")
        batch_op.drop_index("ix_audit_events_secret_group")
        batch_op.drop_index("ix_audit_events_organization")
        batch_op.drop_index("ix_audit_events_environment")
        batch_op.drop_column("key_id")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")
        batch_op.drop_column("chain")
        batch_op.drop_column("environment_id")
        batch_op.drop_column("secret_group_id")
        batch_op.drop_column("organization_id")
