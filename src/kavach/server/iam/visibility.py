"""Which organizations, secret groups and environments a user sees in listings, and their role.

A listing shows what the user holds a role on or under, with the role held there (inherited
from above or none). Each listing is a fixed number of queries whatever the number of rows
or of the user's bindings: the roles that can apply are read once, keyed by where they sit,
and which rows are seen is decided in SQL, so a name filter (and a page) is SQL's too. A
filter is either an exact name (`name`, the API's) or a part of one (`containing`, the
dashboard's search: without case, `%` and `_` taken as themselves).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kavach.server.access import ENVIRONMENT, ORGANIZATION, SECRET_GROUP, Scope
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.pages import Keyset, PageRequest
from kavach.server.rbac.models import RoleBinding
from kavach.server.rbac.policy import highest
from kavach.server.rbac.service import held_by, on_chain

Level = tuple[str, uuid.UUID]
T = TypeVar("T")
# Names are unique among siblings (organizations: everywhere).
ORGANIZATIONS = Keyset("organizations", Organization.name)
SECRET_GROUPS = Keyset("secret-groups", SecretGroup.name)
ENVIRONMENTS = Keyset("environments", Environment.name)


@dataclass(frozen=True)
class Holdings:
    """The roles a user holds, by the resource each sits on."""

    roles: dict[Level, list[str]]

    @classmethod
    async def read(cls, session: AsyncSession, where: ColumnElement[bool]) -> Holdings:
        """Read the user's bindings matching `where` (one query)."""
        found: defaultdict[Level, list[str]] = defaultdict(list)
        query = select(RoleBinding.resource_type, RoleBinding.resource_id, RoleBinding.role)
        for kind, resource_id, role in await session.execute(query.where(where)):
            found[(kind, resource_id)].append(role)
        return cls(dict(found))

    def role_at(self, scope: Scope) -> str | None:
        """Return the strongest role held on the scope or its ancestors."""
        return highest([role for level in scope.chain() for role in self.roles.get(level, ())])


@dataclass(frozen=True)
class Seen(Generic[T]):
    """A row of a listing and the user's role on it (None: seen for what lies beneath)."""

    row: T
    role: str | None


def named(
    column: InstrumentedAttribute[str], name: str | None, containing: str | None
) -> list[ColumnElement[bool]]:
    """Return the conditions of a name filter: the exact name, and a part of it without case."""
    found: list[ColumnElement[bool]] = []
    if name is not None:
        found.append(column == name)
    if containing is not None:
        # LIKE on lower() on SQLite, ILIKE on PostgreSQL; the escape keeps `%` and `_` literal.
        found.append(column.icontains(containing, autoescape=True))
    return found


async def organizations(
    session: AsyncSession,
    user_id: uuid.UUID,
    request: PageRequest,
    *,
    containing: str | None = None,
) -> tuple[list[Seen[Organization]], str | None]:
    """Return a page of the organizations the user holds a role in, by name."""
    held = held_by(user_id)
    roles = await Holdings.read(session, and_(held, RoleBinding.resource_type == ORGANIZATION))
    within = select(RoleBinding.organization_id).where(held)
    query = select(Organization).where(
        Organization.id.in_(within), *named(Organization.name, None, containing)
    )
    found = list(await session.scalars(ORGANIZATIONS.page(query, request)))
    orgs, after = ORGANIZATIONS.cut(found, request, _by_name)
    return [Seen(org, roles.role_at(Scope(org.id))) for org in orgs], after


async def secret_groups(
    session: AsyncSession,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    request: PageRequest,
    name: str | None = None,
    *,
    containing: str | None = None,
) -> tuple[list[Seen[SecretGroup]], str | None]:
    """Return a page of an organization's groups the user holds a role on or under."""
    held = and_(held_by(user_id), RoleBinding.organization_id == org_id)
    above_envs = RoleBinding.resource_type.in_((ORGANIZATION, SECRET_GROUP))
    roles = await Holdings.read(session, and_(held, above_envs))
    query = select(SecretGroup).where(SecretGroup.organization_id == org_id)
    if (ORGANIZATION, org_id) not in roles.roles:
        on_group = select(RoleBinding.resource_id).where(
            held, RoleBinding.resource_type == SECRET_GROUP
        )
        under_group = (
            select(Environment.secret_group_id)
            .join(RoleBinding, RoleBinding.resource_id == Environment.id)
            .where(held, RoleBinding.resource_type == ENVIRONMENT)
        )
        query = query.where(or_(SecretGroup.id.in_(on_group), SecretGroup.id.in_(under_group)))
    query = query.where(*named(SecretGroup.name, name, containing))
    found = list(await session.scalars(SECRET_GROUPS.page(query, request)))
    groups, after = SECRET_GROUPS.cut(found, request, _by_name)
    return [Seen(group, roles.role_at(Scope(org_id, group.id))) for group in groups], after


async def environments(
    session: AsyncSession,
    user_id: uuid.UUID,
    scope: Scope,
    request: PageRequest,
    name: str | None = None,
    *,
    containing: str | None = None,
) -> tuple[list[Seen[Environment]], str | None]:
    """Return a page of a secret group's environments the user holds a role on or under."""
    group_id = scope.secret_group_id
    assert group_id is not None  # noqa: S101 - the scope of a secret group
    org_id = scope.organization_id
    in_group = select(Environment.id).where(Environment.secret_group_id == group_id)
    levels = or_(
        and_(RoleBinding.resource_type == ORGANIZATION, RoleBinding.resource_id == org_id),
        and_(RoleBinding.resource_type == SECRET_GROUP, RoleBinding.resource_id == group_id),
        and_(RoleBinding.resource_type == ENVIRONMENT, RoleBinding.resource_id.in_(in_group)),
    )
    held = and_(held_by(user_id), RoleBinding.organization_id == org_id)
    roles = await Holdings.read(session, and_(held, levels))
    query = select(Environment).where(Environment.secret_group_id == group_id)
    if not roles.role_at(scope):  # no role above: only the environments held directly
        on_env = [rid for kind, rid in roles.roles if kind == ENVIRONMENT]
        query = query.where(Environment.id.in_(on_env) if on_env else false())
    query = query.where(*named(Environment.name, name, containing))
    found = list(await session.scalars(ENVIRONMENTS.page(query, request)))
    envs, after = ENVIRONMENTS.cut(found, request, _by_name)
    return [Seen(env, roles.role_at(Scope(org_id, group_id, env.id))) for env in envs], after


async def roles_along(
    session: AsyncSession, user_id: uuid.UUID, scope: Scope
) -> dict[Level, str | None]:
    """Return the user's role on each level of a scope's chain (held there or above, or none)."""
    roles = await Holdings.read(session, and_(held_by(user_id), on_chain(scope)))
    chain = scope.chain()
    ids = [resource_id for _, resource_id in chain]
    return {level: roles.role_at(Scope(*ids[: depth + 1])) for depth, level in enumerate(chain)}


def _by_name(row: Organization | SecretGroup | Environment) -> tuple[str]:
    return (row.name,)
