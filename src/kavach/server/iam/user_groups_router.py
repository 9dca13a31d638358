"""HTTP routes for user groups and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.deps import OriginDep, SessionDep
from kavach.server.iam import user_groups
from kavach.server.iam.models import UserGroup
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


def _group(access: Access) -> UserGroup:
    assert isinstance(access.resource, UserGroup)  # noqa: S101 - Requirement loaded it
    return access.resource


async def _audit(
    session: SessionDep,
    access: Access,
    origin: OriginDep,
    action: str,
    group: UserGroup,
    **details: object,
) -> None:
    """Record an event on the user group, naming it."""
    await audit.record_request(
        session, access, origin, action, "user_group", group.id, name=group.name, **details
    )


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
    group = await user_groups.create(
        session,
        organization_id=body.organization_id,
        name=body.name,
        description=body.description,
    )
    await _audit(session, access, origin, "user_group.create", group)
    return ok(UserGroupPublic.model_validate(group))


@router.get("/{id}", response_model=Envelope[UserGroupPublic])
async def get_user_group(
    access: Annotated[Access, Depends(Requirement("user_group.read", "user_group"))],
) -> Envelope[UserGroupPublic]:
    """Return a user group."""
    return ok(UserGroupPublic.model_validate(_group(access)))


@router.patch("/{id}", response_model=Envelope[UserGroupPublic])
async def update_user_group(
    body: ResourceUpdate,
    access: Annotated[Access, Depends(Requirement("user_group.update", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[UserGroupPublic]:
    """Rename or describe a user group."""
    group = _group(access)
    before = await user_groups.update(
        session, group=group, changes=body, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.update", group, changed=sorted(before))
    return ok(UserGroupPublic.model_validate(group))


@router.delete("/{id}", response_model=Envelope[Deleted])
async def delete_user_group(
    access: Annotated[Access, Depends(Requirement("user_group.delete", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[Deleted]:
    """Delete a user group; the roles granted to it go with it."""
    group = _group(access)
    await user_groups.delete(session, group=group, caller_id=access.user.user.id)
    await _audit(session, access, origin, "user_group.delete", group)
    return ok(Deleted(id=group.id))


@router.get("/{id}/members", response_model=Envelope[Page[UserGroupMemberPublic]])
async def list_user_group_members(
    access: Annotated[Access, Depends(Requirement("user_group.read", "user_group"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[UserGroupMemberPublic]]:
    """List a user group's members, by login."""
    return ok(await user_groups.members(session, group=_group(access), request=page))


@router.post("/{id}/members", status_code=201, response_model=Envelope[UserGroupMemberPublic])
async def add_user_group_member(
    body: MemberChange,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[UserGroupMemberPublic]:
    """Add a user to a user group."""
    group = _group(access)
    member = await user_groups.add_member(
        session, group=group, login=body.user, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.member_add", group, user=body.user)
    return ok(member)


@router.delete("/{id}/members", response_model=Envelope[Removed])
async def remove_user_group_member(
    body: MemberChange,
    access: Annotated[Access, Depends(Requirement("user_group.members", "user_group"))],
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[Removed]:
    """Remove a user from a user group."""
    group = _group(access)
    await user_groups.remove_member(
        session, group=group, login=body.user, caller_id=access.user.user.id
    )
    await _audit(session, access, origin, "user_group.member_remove", group, user=body.user)
    return ok(Removed())
