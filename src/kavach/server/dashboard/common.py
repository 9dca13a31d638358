"""What the dashboard's pages share: where they live, paging, and a resource's frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from kavach.server.access import Access, Scope
from kavach.server.dashboard.pages import Crumb
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.pages import PageRequest
from kavach.server.rbac.policy import role_allows
from kavach.server.webhooks.models import Webhook

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


async def scope_crumbs(session: Any, scope: Scope) -> list[Crumb]:
    """The breadcrumbs from a scope's organization down to its own resource, by name."""
    levels = (
        ("organization", Organization, scope.organization_id),
        ("secret_group", SecretGroup, scope.secret_group_id),
        ("environment", Environment, scope.environment_id),
    )
    crumbs = []
    for kind, model, resource_id in levels:
        if resource_id is None:
            break
        found = await session.get(model, resource_id)
        # An environment's own page is its address with a slash (its tabs sit under it).
        url = resource_url(kind, resource_id) + ("/" if kind == "environment" else "")
        crumbs.append(Crumb(found.name if found else "?", url))
    return crumbs


async def resource_context(session: Any, access: Access, tab: str = "") -> dict[str, Any]:
    """The frame of a resource's pages: breadcrumbs, heading, role, and which tabs to offer.

    `tab` is the page's path under the resource, as `TABS` names it.
    """
    scope, resource = access.scope, access.resource
    # The requirement loads both; no page is a webhook's.
    assert scope is not None  # noqa: S101
    assert resource is not None  # noqa: S101
    assert not isinstance(resource, Webhook)  # noqa: S101
    return {
        "title": resource.name,
        "heading": resource.name,
        "crumbs": await scope_crumbs(session, scope),
        "role": access.role,
        "node_tabs": node_tabs(access, scope.resource_type, scope.resource_id, tab),
    }


async def environment_context(
    session: Any, access: Access, env: Environment, *, tab: str = ""
) -> dict[str, Any]:
    """The frame of an environment's pages, and whether the caller may change its secrets."""
    return {
        **await resource_context(session, access, f"/{tab}"),
        "can_write": may(access, WRITE),
        "env_id": env.id,
    }
