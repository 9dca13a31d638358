"""What the dashboard's pages share: where they live, paging, and an environment's frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from kavach.server.access import Access
from kavach.server.dashboard.pages import Crumb
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.pages import PageRequest
from kavach.server.rbac.policy import role_allows

PREFIX = "/ui"
READ, WRITE = "secret.read", "secret.write"


@dataclass(frozen=True)
class Tab:
    """One of an environment's pages: its name, its address under the environment, its action."""

    name: str
    path: str
    action: str


# The pages of an organization, a secret group and an environment, under its address, each
# offered to the roles its action admits.
ENV_TABS = (
    Tab("Secrets", "/", READ),
    Tab("History", "/history", READ),
    Tab("Access", "/access", "members.read"),
    Tab("Tokens", "/tokens", "token.read"),
    Tab("Sync", "/sync", "provider.read"),
    Tab("Workload identities", "/trusts", "trust.read"),
    Tab("Audit", "/audit", "audit.read"),
)
ORG_TABS = (
    Tab("Secret groups", "", "group.read"),
    Tab("Access", "/access", "members.read"),
    Tab("User groups", "/user-groups", "user_group.read"),
    Tab("Audit", "/audit", "audit.read"),
)
GROUP_TABS = (
    Tab("Environments", "", "env.read"),
    Tab("Compare", "/compare", "env.read"),
    Tab("Access", "/access", "members.read"),
    Tab("Audit", "/audit", "audit.read"),
)
TABS = {"organization": ORG_TABS, "secret_group": GROUP_TABS, "environment": ENV_TABS}
# Where each kind of resource's pages live.
PATHS = {
    "organization": "organizations",
    "secret_group": "secret-groups",
    "environment": "environments",
}


@dataclass(frozen=True)
class Link:
    """A tab offered: its name, its address and whether it is the page shown."""

    name: str
    url: str
    current: bool


def resource_url(kind: str, resource_id: object) -> str:
    """Return the address of an organization's, secret group's or environment's page."""
    return f"{PREFIX}/{PATHS[kind]}/{resource_id}"


def node_tabs(access: Access, kind: str, resource_id: object, current: str = "") -> list[Link]:
    """Return the tabs of a resource's pages that the caller's role admits."""
    base = resource_url(kind, resource_id)
    tabs = TABS[kind]
    return [Link(t.name, base + t.path, t.path == current) for t in tabs if may(access, t.action)]


def listing(request: Request) -> PageRequest:
    """The page of a listing the request asks for (50 rows, after its cursor)."""
    cursor = request.query_params.get("cursor")
    return PageRequest(limit=50, cursor=cursor[:512] if cursor else None)


def next_url(request: Request, after: str | None) -> str | None:
    """The address of the listing's next page, the same query otherwise."""
    if after is None:
        return None
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    return f"{request.url.path}?{urlencode({**query, 'cursor': after})}"


def may(access: Access, action: str) -> bool:
    """Say whether the caller's role here grants an action (to show its controls)."""
    return access.role is not None and role_allows(access.role, action)


async def environment_context(
    session: Any, access: Access, env: Environment, *, tab: str = ""
) -> dict[str, Any]:
    """The frame of an environment's pages: breadcrumbs, role, and which tabs to offer."""
    scope = access.scope
    assert scope is not None  # noqa: S101
    org = await session.get(Organization, scope.organization_id)
    group = await session.get(SecretGroup, scope.secret_group_id)
    crumbs = [
        Crumb(org.name if org else "?", f"{PREFIX}/organizations/{scope.organization_id}"),
        Crumb(group.name if group else "?", f"{PREFIX}/secret-groups/{scope.secret_group_id}"),
        Crumb(env.name, f"{PREFIX}/environments/{env.id}/"),
    ]
    return {
        "title": env.name,
        "heading": env.name,
        "crumbs": crumbs,
        "role": access.role,
        "can_write": may(access, WRITE),
        "node_tabs": node_tabs(access, "environment", env.id, f"/{tab}"),
        "env_id": env.id,
    }
