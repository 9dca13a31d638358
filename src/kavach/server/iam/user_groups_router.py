"""HTTP routes for user groups and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam import user_group_usecases as usecases
from kavach.server.iam import user_groups
from kavach.server.iam.schemas import (
    Deleted,
    MemberChange,
    Removed,
    ResourceUpdate,
    UserGroupCreate,
    UserGroupMemberPublic,
    UserGroupPublic,
)
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac.deps import Requirement

router = api_router(prefix=f"{API_PREFIX}/user-groups", tags=["user groups"])


@router.get("/", response_model=Envelope[Page[UserGroupPublic]])
async def list_user_groups(
    access: Annotated[
        Access,
        Depends(
            Requirement("user_group.read", "organization", param="organization_id", source="query")
        ),
    ],
    session: SessionDep,
    page: PageDep,
    name: str | None = None,
) -> Envelope[Page[UserGroupPublic]]:
    """List an organization's user groups (?organization_id=), or the one named (?name=)."""
    assert access.scope is not None  # noqa: S101
    org_id = access.scope.organization_id
    return ok(await user_groups.list_in(session, organization_id=org_id, request=page, name=name))


@router.post("/", status_code=201, response_model=Envelope[UserGroupPublic])
async def create_user_group(
    body: UserGroupCreate,
    access: Annotated[
        Access,
        Depends(
            Requirement("user_group.create", "organization", param="organization_id", source="body")
        ),
    ],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[UserGroupPublic]:
    """Create a user group in an organization."""
    return ok(await usecases.create(session, access, origin, body))


@router.get("/{id}", response_model=Envelope[UserGroupPublic])
async def get_user_group(
    access: Annotated[Access, Depends(Requirement("user_group.read", "user_group"))],
) -> Envelope[UserGroupPublic]:
    """Return a user group."""
    return ok(UserGroupPublic.model_validate(usecases.group_of(access)))


@router.patch("/{id}", response_model=Envelope[UserGroupPublic])
async def update_user_group(
    body: ResourceUpdate,
    access: Annotated[Access, Depends(Requirement("user_group.update", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[UserGroupPublic]:
    """Rename or describe a user group."""
    return ok(await usecases.update(session, access, origin, body))


@router.delete("/{id}", response_model=Envelope[Deleted])
async def delete_user_group(
    access: Annotated[Access, Depends(Requirement("user_group.delete", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[Deleted]:
    """Delete a user group; the roles granted to it go with it."""
    group = await usecases.delete(session, access, origin)
    return ok(Deleted(id=group.id))


@router.get("/{id}/members", response_model=Envelope[Page[UserGroupMemberPublic]])
async def list_user_group_members(
    access: Annotated[Access, Depends(Requirement("user_group.read", "user_group"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[UserGroupMemberPublic]]:
    """List a user group's members, by login."""
    return ok(await user_groups.members(session, group=usecases.group_of(access), request=page))


@router.post("/{id}/members", status_code=201, response_model=Envelope[UserGroupMemberPublic])
async def add_user_group_member(
    body: MemberChange,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[UserGroupMemberPublic]:
    """Add a user to a user group."""
    return ok(await usecases.add_member(session, access, origin, body.user))


@router.delete("/{id}/members", response_model=Envelope[Removed])
async def remove_user_group_member(
    body: MemberChange,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[Removed]:
    """Remove a user from a user group."""
    await usecases.remove_member(session, access, origin, body.user)
    return ok(Removed())
