"""Database work for role bindings: effective roles, grants, revocations, listings."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ENVIRONMENT, ORGANIZATION, SECRET_GROUP, Scope
from kavach.server.iam.models import Environment, Organization, SecretGroup, UserGroupMember
from kavach.server.rbac.models import PendingGrant, RoleBinding
from kavach.server.rbac.policy import highest

_NAMED: dict[str, type[Organization] | type[SecretGroup] | type[Environment]] = {
    ORGANIZATION: Organization,
    SECRET_GROUP: SecretGroup,
    ENVIRONMENT: Environment,
}


def held_by(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Match bindings held by a user directly or through any of their user groups."""
    groups = select(UserGroupMember.user_group_id).where(UserGroupMember.user_id == user_id)
    return or_(RoleBinding.user_id == user_id, RoleBinding.user_group_id.in_(groups))


def on_chain(scope: Scope) -> ColumnElement[bool]:
    """Match bindings on the scope or any of its ancestors."""
    levels = [
        and_(RoleBinding.resource_type == kind, RoleBinding.resource_id == rid)
        for kind, rid in scope.chain()
    ]
    return and_(RoleBinding.organization_id == scope.organization_id, or_(false(), *levels))


async def effective_role(session: AsyncSession, *, user_id: uuid.UUID, scope: Scope) -> str | None:
    """Return the strongest role a user holds on a scope, directly or inherited."""
    roles = await session.scalars(select(RoleBinding.role).where(on_chain(scope), held_by(user_id)))
    return highest(list(roles))


async def sees_below(session: AsyncSession, *, user_id: uuid.UUID, scope: Scope) -> bool:
    """Say whether a user holds any role somewhere beneath the scope (so it is visible)."""
    if scope.environment_id is not None:
        return False
    query = select(func.count()).select_from(RoleBinding).where(held_by(user_id))
    if scope.secret_group_id is None:
        query = query.where(RoleBinding.organization_id == scope.organization_id)
    else:
        envs = select(Environment.id).where(Environment.secret_group_id == scope.secret_group_id)
        query = query.where(
            RoleBinding.resource_type == ENVIRONMENT, RoleBinding.resource_id.in_(envs)
        )
    return bool(await session.scalar(query))


async def user_bindings(
    session: AsyncSession, *, user_id: uuid.UUID, organization_id: uuid.UUID | None = None
) -> list[RoleBinding]:
    """Return every binding a user holds, optionally within one organization."""
    query = select(RoleBinding).where(held_by(user_id))
    if organization_id is not None:
        query = query.where(RoleBinding.organization_id == organization_id)
    return list(await session.scalars(query))


async def bindings_on_chain(session: AsyncSession, *, scope: Scope) -> list[RoleBinding]:
    """Return the bindings on a scope and its ancestors."""
    return list(await session.scalars(select(RoleBinding).where(on_chain(scope))))


async def find_binding(
    session: AsyncSession,
    *,
    scope: Scope,
    user_id: uuid.UUID | None,
    user_group_id: uuid.UUID | None,
) -> RoleBinding | None:
    """Return the binding of one subject directly on a scope."""
    return await session.scalar(
        select(RoleBinding).where(
            RoleBinding.resource_type == scope.resource_type,
            RoleBinding.resource_id == scope.resource_id,
            RoleBinding.user_id == user_id if user_id else RoleBinding.user_id.is_(None),
            RoleBinding.user_group_id == user_group_id
            if user_group_id
            else RoleBinding.user_group_id.is_(None),
        )
    )


async def lock_organization(session: AsyncSession, *, organization_id: uuid.UUID) -> None:
    """Hold the organization's row until the transaction ends, so owner changes queue."""
    # PostgreSQL only: SQLite runs one writing transaction at a time already. FOR NO KEY
    # UPDATE lets rows that merely reference the organization be inserted meanwhile.
    await session.execute(
        select(Organization.id)
        .where(Organization.id == organization_id)
        .with_for_update(key_share=True)
    )


async def count_owners(session: AsyncSession, *, organization_id: uuid.UUID) -> int:
    """Count the users holding owner on an organization, directly or through a user group."""
    owner_bindings = and_(
        RoleBinding.resource_type == ORGANIZATION,
        RoleBinding.resource_id == organization_id,
        RoleBinding.role == "owner",
    )
    direct = select(RoleBinding.user_id.label("user_id")).where(
        owner_bindings, RoleBinding.user_id.is_not(None)
    )
    through_groups = (
        select(UserGroupMember.user_id.label("user_id"))
        .join(RoleBinding, RoleBinding.user_group_id == UserGroupMember.user_group_id)
        .where(owner_bindings)
    )
    owners = union(direct, through_groups).subquery()
    return int(await session.scalar(select(func.count()).select_from(owners)) or 0)


async def group_bindings(session: AsyncSession, *, user_group_id: uuid.UUID) -> list[RoleBinding]:
    """Return every binding a user group holds."""
    return list(
        await session.scalars(select(RoleBinding).where(RoleBinding.user_group_id == user_group_id))
    )


async def resource_name(
    session: AsyncSession, *, resource_type: str, resource_id: uuid.UUID
) -> str:
    """Return the name of an organization, secret group or environment."""
    model = _NAMED[resource_type]
    return str(await session.scalar(select(model.name).where(model.id == resource_id)))


async def chain_names(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, str]:
    """Return the names of a scope and its ancestors, by id, in one query."""
    parts = [
        select(_NAMED[kind].id, _NAMED[kind].name).where(_NAMED[kind].id == resource_id)
        for kind, resource_id in scope.chain()
    ]
    return {row.id: row.name for row in await session.execute(union_all(*parts))}


async def scope_of(session: AsyncSession, binding: RoleBinding) -> Scope:
    """Return the scope a binding sits on."""
    if binding.resource_type == ORGANIZATION:
        return Scope(binding.organization_id)
    if binding.resource_type == SECRET_GROUP:
        return Scope(binding.organization_id, binding.resource_id)
    group_id = await session.scalar(
        select(Environment.secret_group_id).where(Environment.id == binding.resource_id)
    )
    return Scope(binding.organization_id, group_id, binding.resource_id)


async def put_binding(
    session: AsyncSession,
    *,
    scope: Scope,
    user_id: uuid.UUID | None,
    user_group_id: uuid.UUID | None,
    role: str,
    granted_by: uuid.UUID | None,
) -> RoleBinding:
    """Create a binding, or change the role of the existing one."""
    binding = await find_binding(session, scope=scope, user_id=user_id, user_group_id=user_group_id)
    if binding is None:
        binding = RoleBinding(
            organization_id=scope.organization_id,
            resource_type=scope.resource_type,
            resource_id=scope.resource_id,
            user_id=user_id,
            user_group_id=user_group_id,
        )
        session.add(binding)
    binding.role = role
    binding.granted_by = granted_by
    await session.flush()
    return binding


async def delete_bindings_on(
    session: AsyncSession, *, resource_type: str, resource_ids: list[uuid.UUID]
) -> int:
    """Remove every binding on the given resources, and the grants pending there.

    Used when the resources are deleted; return how many bindings went.
    """
    if not resource_ids:
        return 0
    await session.execute(
        delete(PendingGrant).where(
            PendingGrant.resource_type == resource_type, PendingGrant.resource_id.in_(resource_ids)
        )
    )
    result = await session.execute(
        delete(RoleBinding).where(
            RoleBinding.resource_type == resource_type, RoleBinding.resource_id.in_(resource_ids)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
