"""Which resources a caller sees in listings, and with which role."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ENVIRONMENT, SECRET_GROUP, Scope
from kavach.server.iam.models import Environment
from kavach.server.rbac.models import RoleBinding
from kavach.server.rbac.policy import highest


def role_at(bindings: list[RoleBinding], scope: Scope) -> str | None:
    """Return the strongest role among bindings that sit on the scope or its ancestors."""
    chain = set(scope.chain())
    return highest([b.role for b in bindings if (b.resource_type, b.resource_id) in chain])


async def groups_seen_below(session: AsyncSession, bindings: list[RoleBinding]) -> set[uuid.UUID]:
    """Return the secret groups made visible by bindings on them or their environments."""
    seen = {b.resource_id for b in bindings if b.resource_type == SECRET_GROUP}
    env_ids = [b.resource_id for b in bindings if b.resource_type == ENVIRONMENT]
    if env_ids:
        rows = await session.scalars(
            select(Environment.secret_group_id).where(Environment.id.in_(env_ids))
        )
        seen.update(rows)
    return seen


def environments_seen_below(bindings: list[RoleBinding]) -> set[uuid.UUID]:
    """Return the environments that bindings sit on directly."""
    return {b.resource_id for b in bindings if b.resource_type == ENVIRONMENT}
