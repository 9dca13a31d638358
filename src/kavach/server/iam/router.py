"""HTTP routes of the resource tree: organizations, secret groups, environments."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy import select

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
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.deps import Access, Requirement
from kavach.server.rbac.service import Scope

router = api_router(prefix=API_PREFIX, tags=["resources"])


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


async def _audit(
    session: SessionDep,
    access: Access,
    origin: OriginDep,
    action: str,
    kind: str,
    resource_id: object,
    **details: object,
) -> None:
    await audit.record(
        session,
        actor=access.principal.actor,
        action=action,
        origin=origin,
        resource_type=kind,
        resource_id=str(resource_id),
        details=details,
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
    await _audit(
        session, access, origin, "organization.create", "organization", org.id, name=org.name
    )
    return ok(_org(org, "owner"))


@router.get("/organizations/", response_model=Envelope[list[OrganizationPublic]])
async def list_organizations(
    access: Annotated[Access, Depends(Requirement("org.list"))], session: SessionDep
) -> Envelope[list[OrganizationPublic]]:
    """List the organizations the caller can see, with the caller's role on each."""
    bindings = await rbac_service.user_bindings(session, user_id=access.user.user.id)
    org_ids = {b.organization_id for b in bindings}
    orgs = await session.scalars(
        select(Organization).where(Organization.id.in_(org_ids)).order_by(Organization.name)
    )
    return ok([_org(org, seen.role_at(bindings, Scope(org.id))) for org in orgs])


@router.get("/organizations/by-name/{name}", response_model=Envelope[OrganizationPublic])
async def get_organization_by_name(
    access: Annotated[
        Access, Depends(Requirement("org.read", "organization", param="name", by_name=True))
    ],
) -> Envelope[OrganizationPublic]:
    """Return an organization by its name."""
    assert isinstance(access.resource, Organization)  # noqa: S101
    return ok(_org(access.resource, access.role))


@router.get("/organizations/{id}", response_model=Envelope[OrganizationPublic])
async def get_organization(
    access: Annotated[Access, Depends(Requirement("org.read", "organization"))],
) -> Envelope[OrganizationPublic]:
    """Return an organization."""
    assert isinstance(access.resource, Organization)  # noqa: S101
    return ok(_org(access.resource, access.role))


@router.patch("/organizations/{id}", response_model=Envelope[OrganizationPublic])
async def update_organization(
    body: ResourceUpdate,
    access: Annotated[Access, Depends(Requirement("org.update", "organization"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[OrganizationPublic]:
    """Rename or describe an organization."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101
    before = await tree.update_node(session, node=org, changes=body, what="organization")
    await _audit(
        session,
        access,
        origin,
        "organization.update",
        "organization",
        org.id,
        changed=sorted(before),
    )
    return ok(_org(org, access.role))


@router.delete("/organizations/{id}", response_model=Envelope[Deleted])
async def delete_organization(
    access: Annotated[Access, Depends(Requirement("org.delete", "organization"))],
    session: SessionDep,
    origin: OriginDep,
    cascade: bool = False,
) -> Envelope[Deleted]:
    """Delete an organization; with children only when cascade=true."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101
    org_id, name = org.id, org.name
    removed = await tree.delete_organization(session, org=org, cascade=cascade)
    await _audit(
        session,
        access,
        origin,
        "organization.delete",
        "organization",
        org_id,
        name=name,
        cascade=cascade,
        removed=removed,
    )
    return ok(Deleted(id=org_id))


# --- secret groups ---------------------------------------------------------------------------


@router.get("/organizations/{id}/secret-groups", response_model=Envelope[list[SecretGroupPublic]])
async def list_secret_groups(
    access: Annotated[Access, Depends(Requirement("group.read", "organization"))],
    session: SessionDep,
    name: str | None = None,
) -> Envelope[list[SecretGroupPublic]]:
    """List the secret groups of an organization that the caller can see."""
    assert access.scope is not None  # noqa: S101
    org_id = access.scope.organization_id
    bindings = await rbac_service.user_bindings(
        session, user_id=access.user.user.id, organization_id=org_id
    )
    below = await seen.groups_seen_below(session, bindings)
    result = []
    for group in await tree.list_groups(session, org_id=org_id):
        role = seen.role_at(bindings, Scope(org_id, group.id))
        if (role or group.id in below) and (name is None or group.name == name):
            result.append(_group(group, role))
    return ok(result)


@router.post(
    "/organizations/{id}/secret-groups", status_code=201, response_model=Envelope[SecretGroupPublic]
)
async def create_secret_group(
    body: ResourceCreate,
    access: Annotated[Access, Depends(Requirement("group.create", "organization"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[SecretGroupPublic]:
    """Create a secret group in an organization; the caller becomes its owner."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101
    group = await tree.create_secret_group(
        session,
        org=org,
        name=body.name,
        description=body.description,
        creator=access.user.user.id,
    )
    await _audit(
        session,
        access,
        origin,
        "secret_group.create",
        "secret_group",
        group.id,
        name=group.name,
        organization_id=str(org.id),
    )
    return ok(_group(group, "owner"))


@router.get("/secret-groups/{id}", response_model=Envelope[SecretGroupPublic])
async def get_secret_group(
    access: Annotated[Access, Depends(Requirement("group.read", "secret_group"))],
) -> Envelope[SecretGroupPublic]:
    """Return a secret group."""
    assert isinstance(access.resource, SecretGroup)  # noqa: S101
    return ok(_group(access.resource, access.role))


@router.patch("/secret-groups/{id}", response_model=Envelope[SecretGroupPublic])
async def update_secret_group(
    body: ResourceUpdate,
    access: Annotated[Access, Depends(Requirement("group.update", "secret_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[SecretGroupPublic]:
    """Rename or describe a secret group."""
    group = access.resource
    assert isinstance(group, SecretGroup)  # noqa: S101
    before = await tree.update_node(session, node=group, changes=body, what="secret group")
    await _audit(
        session,
        access,
        origin,
        "secret_group.update",
        "secret_group",
        group.id,
        changed=sorted(before),
    )
    return ok(_group(group, access.role))


@router.delete("/secret-groups/{id}", response_model=Envelope[Deleted])
async def delete_secret_group(
    access: Annotated[Access, Depends(Requirement("group.delete", "secret_group"))],
    session: SessionDep,
    origin: OriginDep,
    cascade: bool = False,
) -> Envelope[Deleted]:
    """Delete a secret group; with environments only when cascade=true."""
    group = access.resource
    assert isinstance(group, SecretGroup)  # noqa: S101
    group_id, name = group.id, group.name
    removed = await tree.delete_secret_group(session, group=group, cascade=cascade)
    await _audit(
        session,
        access,
        origin,
        "secret_group.delete",
        "secret_group",
        group_id,
        name=name,
        cascade=cascade,
        removed=removed,
    )
    return ok(Deleted(id=group_id))


# --- environments ----------------------------------------------------------------------------


@router.get("/secret-groups/{id}/environments", response_model=Envelope[list[EnvironmentPublic]])
async def list_environments(
    access: Annotated[Access, Depends(Requirement("env.read", "secret_group"))],
    session: SessionDep,
    name: str | None = None,
) -> Envelope[list[EnvironmentPublic]]:
    """List the environments of a secret group that the caller can see."""
    scope = access.scope
    assert scope is not None  # noqa: S101
    assert scope.secret_group_id is not None  # noqa: S101
    bindings = await rbac_service.user_bindings(
        session, user_id=access.user.user.id, organization_id=scope.organization_id
    )
    direct = seen.environments_seen_below(bindings)
    result = []
    for env in await tree.list_environments(session, group_id=scope.secret_group_id):
        role = seen.role_at(bindings, Scope(scope.organization_id, env.secret_group_id, env.id))
        if (role or env.id in direct) and (name is None or env.name == name):
            result.append(_env(env, scope.organization_id, role))
    return ok(result)


@router.post(
    "/secret-groups/{id}/environments", status_code=201, response_model=Envelope[EnvironmentPublic]
)
async def create_environment(
    body: ResourceCreate,
    access: Annotated[Access, Depends(Requirement("env.create", "secret_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[EnvironmentPublic]:
    """Create an environment in a secret group; the caller becomes its owner."""
    group = access.resource
    assert isinstance(group, SecretGroup)  # noqa: S101
    env = await tree.create_environment(
        session,
        group=group,
        name=body.name,
        description=body.description,
        creator=access.user.user.id,
    )
    await _audit(
        session,
        access,
        origin,
        "environment.create",
        "environment",
        env.id,
        name=env.name,
        secret_group_id=str(group.id),
    )
    return ok(_env(env, group.organization_id, "owner"))


@router.get("/environments/{id}", response_model=Envelope[EnvironmentPublic])
async def get_environment(
    access: Annotated[Access, Depends(Requirement("env.read", "environment"))],
) -> Envelope[EnvironmentPublic]:
    """Return an environment."""
    assert isinstance(access.resource, Environment)  # noqa: S101
    assert access.scope is not None  # noqa: S101
    return ok(_env(access.resource, access.scope.organization_id, access.role))


@router.patch("/environments/{id}", response_model=Envelope[EnvironmentPublic])
async def update_environment(
    body: ResourceUpdate,
    access: Annotated[Access, Depends(Requirement("env.update", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[EnvironmentPublic]:
    """Rename or describe an environment."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101
    assert access.scope is not None  # noqa: S101
    before = await tree.update_node(session, node=env, changes=body, what="environment")
    await _audit(
        session, access, origin, "environment.update", "environment", env.id, changed=sorted(before)
    )
    return ok(_env(env, access.scope.organization_id, access.role))


@router.delete("/environments/{id}", response_model=Envelope[Deleted])
async def delete_environment(
    access: Annotated[Access, Depends(Requirement("env.delete", "environment"))],
    session: SessionDep,
    origin: OriginDep,
    cascade: bool = False,
) -> Envelope[Deleted]:
    """Delete an environment."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101
    env_id, name = env.id, env.name
    removed = await tree.delete_environment(session, env=env, cascade=cascade)
    await _audit(
        session,
        access,
        origin,
        "environment.delete",
        "environment",
        env_id,
        name=name,
        cascade=cascade,
        removed=removed,
    )
    return ok(Deleted(id=env_id))
