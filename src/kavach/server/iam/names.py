"""Find an organization, secret group or environment by the names on the way down to it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.iam.models import Environment, Organization, SecretGroup

# How many names lead to a resource of each kind: its organization's, its group's, its own.
DEPTH = {"organization": 1, "secret_group": 2, "environment": 3}


def _query(kind: str, names: Sequence[str]) -> Select[Any]:
    """Return the one statement that selects the id the names lead to."""
    if kind == "organization":
        return select(Organization.id).where(Organization.name == names[0])
    in_org = and_(
        Organization.id == SecretGroup.organization_id,
        Organization.name == names[0],
        SecretGroup.name == names[1],
    )
    if kind == "secret_group":
        return select(SecretGroup.id).join(Organization, in_org)
    return (
        select(Environment.id)
        .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
        .join(Organization, in_org)
        .where(Environment.name == names[2])
    )


async def find(session: AsyncSession, kind: str, names: Sequence[str]) -> uuid.UUID | None:
    """Return the id of the `kind` the names lead to (None: no such resource).

    Only where a resource is: whether the caller may see it is the gate's to decide.
    """
    if DEPTH.get(kind) != len(names):
        raise ValueError(f"a {kind} is named by {DEPTH.get(kind)} names, not {len(names)}")
    found = await session.scalar(_query(kind, names))
    return found if isinstance(found, uuid.UUID) else None
