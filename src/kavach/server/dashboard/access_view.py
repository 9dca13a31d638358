"""What an access page shows: its frame, the roles held, the invites, the controls offered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import LABELS, ORGANIZATION, Access, Scope
from kavach.server.dashboard.common import (
    environment_context,
    may,
    resource_context,
    resource_url,
)
from kavach.server.dashboard.outcome import Notice
from kavach.server.dashboard.pages import Crumb
from kavach.server.iam import user_groups
from kavach.server.iam import visibility as seen
from kavach.server.iam.models import Environment
from kavach.server.pages import PageRequest
from kavach.server.rbac import holders, members, pending
from kavach.server.rbac.policy import ROLES, role_allows
from kavach.server.rbac.schemas import BindingPublic, PendingGrantPublic

MEMBERS_SHOWN = 50
INVITES_SHOWN = 100
GROUPS_OFFERED = 100


@dataclass(frozen=True)
class Held:
    """A role held here or above, where it is held (a link, if the caller may look), revocable."""

    binding: BindingPublic
    source_url: str | None
    revocable: bool


@dataclass(frozen=True)
class Invited:
    """An invite pending here, and whether the caller may withdraw it."""

    invite: PendingGrantPublic
    withdrawable: bool


def _allows(role: str | None, action: str) -> bool:
    return role is not None and role_allows(role, action)


def scope_of(access: Access) -> Scope:
    """Return where the resource of an admitted request sits."""
    assert access.scope is not None  # noqa: S101 - a requirement on a resource sets it
    return access.scope


def access_url(scope: Scope) -> str:
    """Return the address of the access page of a scope's resource."""
    return f"{resource_url(scope.resource_type, scope.resource_id)}/access"


async def frame(session: AsyncSession, access: Access) -> dict[str, Any]:
    """The page around the lists: breadcrumbs, heading and the resource's tabs."""
    if isinstance(access.resource, Environment):
        context = await environment_context(session, access, access.resource, tab="access")
    else:
        context = await resource_context(session, access, "/access")
    context["crumbs"].append(Crumb("Access", access_url(scope_of(access))))
    return context


async def lists(
    session: AsyncSession,
    access: Access,
    *,
    cursor: str | None = None,
    notice: Notice | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The roles held here and above, the invites pending here, and the controls offered."""
    scope = scope_of(access)
    shown = PageRequest(limit=MEMBERS_SHOWN, cursor=cursor)
    held = await members.describe(session, scope=scope, request=shown)
    invites = PageRequest(limit=INVITES_SHOWN)
    invited = await pending.describe(session, scope=scope, request=invites)
    # The caller's role on each level above: where they may look, which groups they manage.
    roles = await seen.roles_along(session, access.user.user.id, scope)
    readable = {rid for (_, rid), role in roles.items() if _allows(role, "members.read")}
    can_grant = may(access, "members.grant")
    org_role = roles[(ORGANIZATION, scope.organization_id)]
    groups = []
    if can_grant and _allows(org_role, "user_group.members"):
        offered = PageRequest(limit=GROUPS_OFFERED)
        found = await user_groups.list_in(
            session, organization_id=scope.organization_id, request=offered
        )
        groups = found.items
    url = access_url(scope)
    return {
        "access_url": url,
        "kind_label": LABELS[scope.resource_type],
        "members": [
            Held(
                binding=b,
                source_url=(
                    f"{resource_url(b.resource_type, b.resource_id)}/access"
                    if b.inherited and b.resource_id in readable
                    else None
                ),
                revocable=can_grant and not b.inherited and holders.may_grant(access.role, b.role),
            )
            for b in held.items
        ],
        "invites": [
            Invited(invite=i, withdrawable=can_grant and holders.may_grant(access.role, i.role))
            for i in invited.items
        ],
        "more_url": f"{url}?{urlencode({'cursor': held.next})}" if held.next else None,
        "can_grant": can_grant,
        "grantable": [role for role in ROLES if holders.may_grant(access.role, role)],
        "user_groups": groups,
        "notice": notice,
        "form": form or {},
    }
