"""Database work on the resource tree: organizations, secret groups and environments."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ENVIRONMENT, SECRET_GROUP, Scope
from kavach.server.errors import AlreadyExists, Conflict, HasChildren
from kavach.server.iam.models import Environment, Organization, SecretGroup, UserGroup
from kavach.server.iam.schemas import ResourceUpdate
from kavach.server.rbac import service as rbac_service
from kavach.server.secrets import linking
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.references import Place

TreeNode = TypeVar("TreeNode", Organization, SecretGroup, Environment, UserGroup)


async def flush_unique(session: AsyncSession, what: str, name: str) -> None:
    """Flush, turning a unique-name violation into 409 already_exists."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"{what} {name!r} already exists") from exc


async def create_organization(
    session: AsyncSession, *, name: str, description: str | None, creator: uuid.UUID
) -> Organization:
    """Create an organization; its creator becomes its owner."""
    if await session.scalar(select(Organization.id).where(Organization.name == name)):
        raise AlreadyExists(f"organization {name!r} already exists")
    org = Organization(name=name, description=description, created_by=creator)
    session.add(org)
    await flush_unique(session, "organization", name)
    await rbac_service.put_binding(
        session,
        scope=Scope(org.id),
        user_id=creator,
        user_group_id=None,
        role="owner",
        granted_by=creator,
    )
    return org


async def create_secret_group(
    session: AsyncSession,
    *,
    org: Organization,
    name: str,
    description: str | None,
    creator: uuid.UUID,
) -> SecretGroup:
    """Create a secret group; its creator becomes its owner."""
    exists = select(SecretGroup.id).where(
        SecretGroup.organization_id == org.id, SecretGroup.name == name
    )
    if await session.scalar(exists):
        raise AlreadyExists(f"secret group {name!r} already exists in {org.name!r}")
    group = SecretGroup(
        organization_id=org.id, name=name, description=description, created_by=creator
    )
    session.add(group)
    await flush_unique(session, "secret group", name)
    await rbac_service.put_binding(
        session,
        scope=Scope(org.id, group.id),
        user_id=creator,
        user_group_id=None,
        role="owner",
        granted_by=creator,
    )
    return group


async def create_environment(
    session: AsyncSession,
    *,
    group: SecretGroup,
    name: str,
    description: str | None,
    creator: uuid.UUID,
) -> Environment:
    """Create an environment; its creator becomes its owner."""
    exists = select(Environment.id).where(
        Environment.secret_group_id == group.id, Environment.name == name
    )
    if await session.scalar(exists):
        raise AlreadyExists(f"environment {name!r} already exists in {group.name!r}")
    env = Environment(
        secret_group_id=group.id, name=name, description=description, created_by=creator
    )
    session.add(env)
    await flush_unique(session, "environment", name)
    await rbac_service.put_binding(
        session,
        scope=Scope(group.organization_id, group.id, env.id),
        user_id=creator,
        user_group_id=None,
        role="owner",
        granted_by=creator,
    )
    return env


async def update_node(
    session: AsyncSession, *, node: TreeNode, changes: ResourceUpdate, what: str
) -> dict[str, str | None]:
    """Apply a partial update; return the changed fields' old values for the audit trail."""
    before: dict[str, str | None] = {}
    for field in changes.model_fields_set:
        value = getattr(changes, field)
        if field == "name" and value is None:
            continue
        if getattr(node, field) != value:
            before[field] = getattr(node, field)
            setattr(node, field, value)
    await flush_unique(session, what, node.name)
    return before


async def list_groups(session: AsyncSession, *, org_id: uuid.UUID) -> list[SecretGroup]:
    """Return an organization's secret groups by name."""
    return list(
        await session.scalars(
            select(SecretGroup)
            .where(SecretGroup.organization_id == org_id)
            .order_by(SecretGroup.name)
        )
    )


async def list_environments(session: AsyncSession, *, group_id: uuid.UUID) -> list[Environment]:
    """Return a secret group's environments by name."""
    return list(
        await session.scalars(
            select(Environment)
            .where(Environment.secret_group_id == group_id)
            .order_by(Environment.name)
        )
    )


async def _count(session: AsyncSession, query: object) -> int:
    return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


class EnvironmentReferenced(Conflict):
    """Deleting environments whose secrets other environments' values refer to."""

    error_code = "environment_referenced"


async def _refuse_if_referenced(
    session: AsyncSession, env_ids: list[uuid.UUID], *, force: bool
) -> int:
    """Refuse deleting environments other environments' values refer to, unless forced.

    Return how many references the delete breaks (forced: their reads then fail).
    """
    going = {str(env_id) for env_id in env_ids}
    hits: list[tuple[Place, str, str]] = []
    for env_id in env_ids:
        for name, places in (await linking.dependents(session, env_id)).items():
            hits += [(p, str(env_id), name) for p in places if p.environment not in going]
    if hits and not force:
        named = await linking.labels(session, {p.environment for p, _, _ in hits} | going)
        listed = sorted(
            f"{named.get(p.environment)}.{p.name} -> {named.get(env)}.{name}"
            for p, env, name in hits
        )
        raise EnvironmentReferenced(
            "other environments' values refer to secrets this would delete (pass force=true "
            f"to delete it anyway): {'; '.join(listed)}",
            data={"dependents": listed},
        )
    return len(hits)


async def delete_environment(
    session: AsyncSession, *, env: Environment, cascade: bool, force: bool = False
) -> dict[str, int]:
    """Delete an environment; with secret versions only when cascading; refused while other
    environments refer to its secrets, unless forced."""
    versions = await _count(
        session,
        select(func.count())
        .select_from(SecretVersion)
        .where(SecretVersion.environment_id == env.id),
    )
    if versions and not cascade:
        raise HasChildren(
            f"environment {env.name!r} has {versions} secret version(s); pass cascade=true"
        )
    broken = await _refuse_if_referenced(session, [env.id], force=force)
    bindings = await rbac_service.delete_bindings_on(
        session, resource_type=ENVIRONMENT, resource_ids=[env.id]
    )
    await session.delete(env)
    await session.flush()
    removed = {"environments": 1, "versions": versions, "bindings": bindings}
    return removed | ({"broken_references": broken} if broken else {})


async def delete_secret_group(
    session: AsyncSession, *, group: SecretGroup, cascade: bool, force: bool = False
) -> dict[str, int]:
    """Delete a secret group; with children only when cascading."""
    env_ids = list(
        await session.scalars(select(Environment.id).where(Environment.secret_group_id == group.id))
    )
    if env_ids and not cascade:
        raise HasChildren(
            f"secret group {group.name!r} has {len(env_ids)} environment(s); "
            "delete them first or pass cascade=true"
        )
    broken = await _refuse_if_referenced(session, env_ids, force=force)
    bindings = await rbac_service.delete_bindings_on(
        session, resource_type=ENVIRONMENT, resource_ids=env_ids
    )
    bindings += await rbac_service.delete_bindings_on(
        session, resource_type=SECRET_GROUP, resource_ids=[group.id]
    )
    await session.execute(delete(Environment).where(Environment.secret_group_id == group.id))
    await session.delete(group)
    await session.flush()
    removed = {"secret_groups": 1, "environments": len(env_ids), "bindings": bindings}
    return removed | ({"broken_references": broken} if broken else {})


async def delete_organization(
    session: AsyncSession, *, org: Organization, cascade: bool
) -> dict[str, int]:
    """Delete an organization; with children only when cascading."""
    groups = await _count(
        session,
        select(func.count()).select_from(SecretGroup).where(SecretGroup.organization_id == org.id),
    )
    if groups and not cascade:
        raise HasChildren(
            f"organization {org.name!r} has {groups} secret group(s); "
            "delete them first or pass cascade=true"
        )
    envs = await _count(
        session,
        select(func.count())
        .select_from(Environment)
        .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
        .where(SecretGroup.organization_id == org.id),
    )
    # The database cascades from the organization to groups, environments, user groups,
    # tokens and bindings (every binding row names its organization).
    await session.delete(org)
    await session.flush()
    return {"organizations": 1, "secret_groups": groups, "environments": envs}
