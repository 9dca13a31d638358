"""Record audit events; callers pass what happened, never secret values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who acted: a user, a service token, the server itself or an anonymous caller."""

    type: str
    id: uuid.UUID | None = None
    label: str | None = None


ANONYMOUS = Actor(type="anonymous")
SYSTEM = Actor(type="system")


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, for the audit trail."""

    client_address: str | None = None
    request_id: str | None = None


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    origin: RequestOrigin | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction."""
    origin = origin or RequestOrigin()
    event = AuditEvent(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        outcome=outcome,
        client_address=origin.client_address,
        request_id=origin.request_id,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details or {},
    )
    session.add(event)
    await session.flush()
    return event
