"""HTTP routes of the resource tree: organizations, secret groups, environments.

No `from __future__ import annotations` here: the routes the levels share are built in
functions, and their annotations must be evaluated while those functions' arguments are in
scope.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam import tree
from kavach.server.iam import visibility as seen
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.iam.schemas import (
    Deleted,
    EnvironmentPublic,
    OrganizationPublic,
    ResourceCreate,
    ResourceUpdate,
    SecretGroupPublic,
)
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac.deps import Requirement, ResourceKind

router = api_router(prefix=API_PREFIX, tags=["resources"])
Node = TypeVar("Node", Organization, SecretGroup, Environment)
Public = TypeVar("Public", bound=OrganizationPublic)


def _org(org: Organization, role: str | None) -> OrganizationPublic:
    return OrganizationPublic.model_validate(org).model_copy(update={"role": role})


def _group(group: SecretGroup, role: str | None) -> SecretGroupPublic:
    return SecretGroupPublic.model_validate(group).model_copy(update={"role": role})


def _env(env: Environment, org_id: object, role: str | None) -> EnvironmentPublic:
    return EnvironmentPublic.model_validate(
        {
            **{
                c: getattr(env, c)
                for c in ("id", "name", "description", "created_at", "secret_group_id")
            },
            "organization_id": org_id,
            "role": role,
        }
    )


@dataclass(frozen=True)
class _Level(Generic[Node, Public]):
    """What sets one level of the tree apart in the routes that all levels have."""

    kind: ResourceKind  # also the resource type of its audit events
    path: str
    actions: str  # what its actions start with: "org" for org.read, org.update, ...
    label: str  # what errors call a node: "secret group"
    noun: str  # what route descriptions call a node: "a secret group"
    node: type[Node]
    envelope: type[Envelope[Public]]
    # The arguments: (node, its organization's id, the caller's role).
    public: Callable[[Node, uuid.UUID, str | None], Public]
    # (session, node, cascade, force), returning what was removed, by kind.
    delete: Callable[[AsyncSession, Node, bool, bool], Awaitable[dict[str, int]]]
    delete_description: str
    # (session, parent node, request body, creator): a node below one of the level above.
    create: Callable[[AsyncSession, Any, ResourceCreate, uuid.UUID], Awaitable[Node]] | None = None

    def node_of(self, access: Access) -> Node:
        """Return the node the route's Requirement loaded."""
        assert isinstance(access.resource, self.node)  # noqa: S101
        return access.resource

    def to_public(self, node: Node, access: Access, role: str | None) -> Public:
        """Return a node as the API shows it, in the organization the request acts in."""
        assert access.scope is not None  # noqa: S101
        return self.public(node, access.scope.organization_id, role)


_ORGANIZATIONS = _Level(
    kind="organization",
    path="organizations",
    actions="org",
    label="organization",
    noun="an organization",
    node=Organization,
    envelope=Envelope[OrganizationPublic],
    public=lambda org, _org_id, role: _org(org, role),
    # References never leave an organization: deleting one breaks none elsewhere.
    delete=lambda session, org, cascade, _force: tree.delete_organization(
        session, org=org, cascade=cascade
    ),
    delete_description="Delete an organization; with children only when cascade=true.",
)
_SECRET_GROUPS = _Level(
    kind="secret_group",
    path="secret-groups",
    actions="group",
    label="secret group",
    noun="a secret group",
    node=SecretGroup,
    envelope=Envelope[SecretGroupPublic],
    public=lambda group, _org_id, role: _group(group, role),
    delete=lambda session, group, cascade, force: tree.delete_secret_group(
        session, group=group, cascade=cascade, force=force
    ),
    delete_description="Delete a secret group; with environments only when cascade=true.",
    create=lambda session, org, body, creator: tree.create_secret_group(
        session, org=org, name=body.name, description=body.description, creator=creator
    ),
)
_ENVIRONMENTS = _Level(
    kind="environment",
    path="environments",
    actions="env",
    label="environment",
    noun="an environment",
    node=Environment,
    envelope=Envelope[EnvironmentPublic],
    public=_env,
    delete=lambda session, env, cascade, force: tree.delete_environment(
        session, env=env, cascade=cascade, force=force
    ),
    delete_description="Delete an environment.",
    create=lambda session, group, body, creator: tree.create_environment(
        session, group=group, name=body.name, description=body.description, creator=creator
    ),
)


def _add_node_routes(level: _Level[Node, Public]) -> None:
    """Register get, update and delete for a level's nodes, named after the level."""

    async def get_node(
        access: Annotated[Access, Depends(Requirement(f"{level.actions}.read", level.kind))],
    ) -> Envelope[Public]:
        """Return the node."""
        return ok(level.to_public(level.node_of(access), access, access.role))

    async def update_node(
        body: ResourceUpdate,
        access: Annotated[Access, Depends(Requirement(f"{level.actions}.update", level.kind))],
        session: SessionDep,
        origin: OriginDep,
    ) -> Envelope[Public]:
        """Rename or describe the node."""
        node = level.node_of(access)
        before = await tree.update_node(session, node=node, changes=body, what=level.label)
        await audit.record_request(
            session,
            access,
            origin,
            f"{level.kind}.update",
            level.kind,
            node.id,
            changed=sorted(before),
        )
        return ok(level.to_public(node, access, access.role))

    async def delete_node(
        access: Annotated[Access, Depends(Requirement(f"{level.actions}.delete", level.kind))],
        session: SessionDep,
        origin: OriginDep,
        cascade: bool = False,
        force: Annotated[
            bool,
            Query(
                description="Delete even though other environments' values refer to its "
                "secrets (their reads then fail)."
            ),
        ] = False,
    ) -> Envelope[Deleted]:
        """Delete the node, and what is below it only when cascade=true."""
        node = level.node_of(access)
        node_id, name = node.id, node.name
        removed = await level.delete(session, node, cascade, force)
        await audit.record_request(
            session,
            access,
            origin,
            f"{level.kind}.delete",
            level.kind,
            node_id,
            name=name,
            cascade=cascade,
            removed=removed,
        )
        return ok(Deleted(id=node_id))

    path, kind, envelope = f"/{level.path}/{{id}}", level.kind, level.envelope
    router.add_api_route(
        path,
        get_node,
        methods=["GET"],
        name=f"get_{kind}",
        response_model=envelope,
        description=f"Return {level.noun}.",
    )
    router.add_api_route(
        path,
        update_node,
        methods=["PATCH"],
        name=f"update_{kind}",
        response_model=envelope,
        description=f"Rename or describe {level.noun}.",
    )
    router.add_api_route(
        path,
        delete_node,
        methods=["DELETE"],
        name=f"delete_{kind}",
        response_model=Envelope[Deleted],
        description=level.delete_description,
    )


def _add_create_route(parent: _Level[Any, Any], level: _Level[Node, Public]) -> None:
    """Register the route that creates a level's nodes below those of the level above."""
    create = level.create
    assert create is not None  # noqa: S101

    async def create_node(
        body: ResourceCreate,
        access: Annotated[Access, Depends(Requirement(f"{level.actions}.create", parent.kind))],
        session: SessionDep,
        origin: OriginDep,
    ) -> Envelope[Public]:
        """Create a node below the parent; the caller becomes its owner."""
        above = parent.node_of(access)
        node = await create(session, above, body, access.user.user.id)
        parent_id = {f"{parent.kind}_id": str(above.id)}  # organization_id, secret_group_id
        await audit.record_request(
            session,
            access,
            origin,
            f"{level.kind}.create",
            level.kind,
            node.id,
            name=node.name,
            **parent_id,
        )
        return ok(level.to_public(node, access, "owner"))

    router.add_api_route(
        f"/{parent.path}/{{id}}/{level.path}",
        create_node,
        methods=["POST"],
        name=f"create_{level.kind}",
        status_code=201,
        response_model=level.envelope,
        description=f"Create {level.noun} in {parent.noun}; the caller becomes its owner.",
    )


# --- organizations -------------------------------------------------------------------------


@router.post("/organizations/", status_code=201, response_model=Envelope[OrganizationPublic])
async def create_organization(
    body: ResourceCreate,
    access: Annotated[Access, Depends(Requirement("org.create"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[OrganizationPublic]:
    """Create an organization; the caller becomes its owner."""
    org = await tree.create_organization(
        session, name=body.name, description=body.description, creator=access.user.user.id
    )
    await audit.record_request(
        session, access, origin, "organization.create", "organization", org.id, name=org.name
    )
    return ok(_org(org, "owner"))


@router.get("/organizations/", response_model=Envelope[Page[OrganizationPublic]])
async def list_organizations(
    access: Annotated[Access, Depends(Requirement("org.list"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[OrganizationPublic]]:
    """List the organizations the caller can see, with the caller's role on each."""
    found, after = await seen.organizations(session, access.user.user.id, page)
    return ok(Page(items=[_org(item.row, item.role) for item in found], next=after))


# By name: one request from the names a person types to the resource, for anyone who sees it
# (a role on or beneath it), and the same 404 for a resource they may not see as for none.
# Declared before /{id}, so the routes of the levels below cannot take a name for an id.
@router.get("/organizations/by-name/{name}", response_model=Envelope[OrganizationPublic])
async def get_organization_by_name(
    access: Annotated[Access, Depends(Requirement("org.read", "organization", names=("name",)))],
) -> Envelope[OrganizationPublic]:
    """Return an organization by its name."""
    return ok(_ORGANIZATIONS.to_public(_ORGANIZATIONS.node_of(access), access, access.role))


@router.get(
    "/organizations/by-name/{name}/secret-groups/{group}",
    response_model=Envelope[SecretGroupPublic],
)
async def get_secret_group_by_name(
    access: Annotated[
        Access, Depends(Requirement("group.read", "secret_group", names=("name", "group")))
    ],
) -> Envelope[SecretGroupPublic]:
    """Return a secret group by its organization's name and its own."""
    return ok(_SECRET_GROUPS.to_public(_SECRET_GROUPS.node_of(access), access, access.role))


@router.get(
    "/organizations/by-name/{name}/secret-groups/{group}/environments/{env}",
    response_model=Envelope[EnvironmentPublic],
)
async def get_environment_by_name(
    access: Annotated[
        Access, Depends(Requirement("env.read", "environment", names=("name", "group", "env")))
    ],
) -> Envelope[EnvironmentPublic]:
    """Return an environment by its organization's, its secret group's and its own names."""
    return ok(_ENVIRONMENTS.to_public(_ENVIRONMENTS.node_of(access), access, access.role))


# Each level's routes are added in its section: the order of routes is the order of the API
# description, and of matching.
_add_node_routes(_ORGANIZATIONS)


# --- secret groups ---------------------------------------------------------------------------


@router.get("/organizations/{id}/secret-groups", response_model=Envelope[Page[SecretGroupPublic]])
async def list_secret_groups(
    access: Annotated[Access, Depends(Requirement("group.read", "organization"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[SecretGroupPublic]]:
    """List the secret groups of an organization that the caller can see."""
    assert access.scope is not None  # noqa: S101
    org_id = access.scope.organization_id
    found, after = await seen.secret_groups(session, access.user.user.id, org_id, page, name)
    return ok(Page(items=[_group(item.row, item.role) for item in found], next=after))


_add_create_route(_ORGANIZATIONS, _SECRET_GROUPS)
_add_node_routes(_SECRET_GROUPS)


# --- environments ----------------------------------------------------------------------------


@router.get("/secret-groups/{id}/environments", response_model=Envelope[Page[EnvironmentPublic]])
async def list_environments(
    access: Annotated[Access, Depends(Requirement("env.read", "secret_group"))],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[EnvironmentPublic]]:
    """List the environments of a secret group that the caller can see."""
    scope = access.scope
    assert scope is not None  # noqa: S101
    found, after = await seen.environments(session, access.user.user.id, scope, page, name)
    return ok(
        Page(items=[_env(item.row, scope.organization_id, item.role) for item in found], next=after)
    )


_add_create_route(_SECRET_GROUPS, _ENVIRONMENTS)
_add_node_routes(_ENVIRONMENTS)
