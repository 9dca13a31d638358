"""Place an audit event in the tree (organization, group, environment) from its resource."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import ServiceToken
from kavach.server.iam.models import Environment, SecretGroup, UserGroup

# Resource types that live inside an organization; the rest (sessions, device
# authorizations, none) belong to the server as a whole.
SCOPED_TYPES = frozenset(
    {"organization", "secret_group", "environment", "user_group", "service_token"}
)


@dataclass(frozen=True)
class EventScope:
    """Where an event happened; all None for events outside any organization."""

    organization_id: uuid.UUID | None = None
    secret_group_id: uuid.UUID | None = None
    environment_id: uuid.UUID | None = None


_NOWHERE = EventScope()


async def _from_tree(session: AsyncSession, kind: str, rid: uuid.UUID) -> EventScope | None:
    if kind == "organization":
        return EventScope(rid)
    if kind == "secret_group":
        org = await session.scalar(select(SecretGroup.organization_id).where(SecretGroup.id == rid))
        return EventScope(org, rid) if org is not None else None
    if kind == "user_group":
        org = await session.scalar(select(UserGroup.organization_id).where(UserGroup.id == rid))
        return EventScope(org) if org is not None else None
    env_id = rid
    if kind == "service_token":
        token_env = await session.scalar(
            select(ServiceToken.environment_id).where(ServiceToken.id == rid)
        )
        if token_env is None:
            return None
        env_id = token_env
    row = (
        await session.execute(
            select(SecretGroup.organization_id, SecretGroup.id)
            .join(Environment, Environment.secret_group_id == SecretGroup.id)
            .where(Environment.id == env_id)
        )
    ).first()
    return EventScope(row[0], row[1], env_id) if row is not None else None


async def _from_history(session: AsyncSession, kind: str, resource_id: str) -> EventScope | None:
    # A resource deleted in this transaction is gone from the tree; its earlier events
    # (its creation at least) still say where it was.
    row = (
        await session.execute(
            select(
                AuditEvent.organization_id, AuditEvent.secret_group_id, AuditEvent.environment_id
            )
            .where(
                AuditEvent.resource_type == kind,
                AuditEvent.resource_id == resource_id,
                AuditEvent.organization_id.is_not(None),
            )
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    ).first()
    return EventScope(row[0], row[1], row[2]) if row is not None else None


async def resolve(
    session: AsyncSession, *, resource_type: str | None, resource_id: str | None
) -> EventScope:
    """Return the scope of the event's resource (as it is now, or as earlier events had it)."""
    if resource_type not in SCOPED_TYPES or resource_id is None:
        return _NOWHERE
    try:
        rid = uuid.UUID(resource_id)
    except ValueError:
        return _NOWHERE
    found = await _from_tree(session, resource_type, rid)
    if found is None:
        found = await _from_history(session, resource_type, resource_id)
    return found or _NOWHERE
