"""Every route, role and way of holding it, checked against the role table of DESIGN §4.

Each case is sent cold: the access cache emptied first, so who the caller is and what they
may do come from the database. On PostgreSQL it is then sent warm, at once again, answered
from what the first send cached: the hottest routes are then admitted by the gate without a
query. The gate is the same code on SQLite: there each case is sent once, cold.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kavach.server.access import caller_key
from kavach.server.app import create_app
from kavach.server.db.base import utcnow
from kavach.server.gate import AccessGate, Admission, Ticket
from kavach.server.rbac.cache import AccessCache
from tests.conftest import InProcessServer, make_settings, random_keys
from tests.integration.routes import Declared, api_routes, declared_action, route_key
from tests.integration.test_resources import Api, user
from tests.integration.test_sync import TARGETS, Target

_MEMORY: dict[str, Any] = {"provider": "memory", "credentials": {"token": "good"}}
_HOOK = "https://hooks.example.com/kavach"  # never called: no dispatcher runs here

# DESIGN §4, written out independently of the server's policy file.
ROLES = ["viewer", "editor", "admin", "owner"]
RANK = {role: rank for rank, role in enumerate(ROLES)}
PUBLIC_PREFIXES = (
    "/api/v1/auth/",
    "/healthz",
    "/device",
    "/api/v1/info",
    "/api/v1/docs",
    "/oidc/",  # the ways out to an OpenID provider and back: they sign people in
)
# The root page (it names the server and links to the docs) and the sign-in pages. The
# dashboard's account pages show and end the caller's own sessions, as /api/v1/auth/ does.
PUBLIC_PATHS = {
    "/",
    "/login",
    "/login/code",
    "/login/code/wait",
    "/ui/sign-out",
    "/ui/account",
    "/ui/account/sessions/{session_id}/end",
}


@dataclass(frozen=True)
class Case:
    """A route, the level of the resource in its path, and the weakest role allowed."""

    level: str  # org, group, env, user_group
    minimum: str
    destructive: bool = False
    # The answer to a caller whose only roles sit beneath the resource: it sees the way
    # down (the node and those of its children it holds a role on or under), nothing more.
    below: int | str = 403


MATRIX: dict[str, Case] = {
    "GET /api/v1/organizations/by-name/{name}": Case("org", "viewer", below="ok"),
    "GET /api/v1/organizations/by-name/{name}/secret-groups/{group}": Case(
        "group", "viewer", below="ok"
    ),
    "GET /api/v1/organizations/by-name/{name}/secret-groups/{group}/environments/{env}": Case(
        "env", "viewer"
    ),
    "GET /api/v1/organizations/{id}": Case("org", "viewer", below="ok"),
    "PATCH /api/v1/organizations/{id}": Case("org", "admin"),
    "DELETE /api/v1/organizations/{id}": Case("org", "owner", destructive=True),
    "GET /api/v1/organizations/{id}/secret-groups": Case("org", "viewer", below="ok"),
    "POST /api/v1/organizations/{id}/secret-groups": Case("org", "admin"),
    "GET /api/v1/organizations/{id}/members": Case("org", "admin"),
    "POST /api/v1/organizations/{id}/members": Case("org", "admin"),
    "DELETE /api/v1/organizations/{id}/members": Case("org", "admin"),
    "GET /api/v1/organizations/{id}/members/pending": Case("org", "admin"),
    "DELETE /api/v1/organizations/{id}/members/pending": Case("org", "admin"),
    "GET /api/v1/secret-groups/{id}": Case("group", "viewer", below="ok"),
    "PATCH /api/v1/secret-groups/{id}": Case("group", "admin"),
    "DELETE /api/v1/secret-groups/{id}": Case("group", "owner", destructive=True),
    "GET /api/v1/secret-groups/{id}/environments": Case("group", "viewer", below="ok"),
    "POST /api/v1/secret-groups/{id}/environments": Case("group", "admin"),
    "GET /api/v1/secret-groups/{id}/members": Case("group", "admin"),
    "POST /api/v1/secret-groups/{id}/members": Case("group", "admin"),
    "DELETE /api/v1/secret-groups/{id}/members": Case("group", "admin"),
    "GET /api/v1/secret-groups/{id}/members/pending": Case("group", "admin"),
    "DELETE /api/v1/secret-groups/{id}/members/pending": Case("group", "admin"),
    "GET /api/v1/environments/{id}": Case("env", "viewer"),
    "PATCH /api/v1/environments/{id}": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}": Case("env", "owner", destructive=True),
    "GET /api/v1/environments/{id}/members": Case("env", "admin"),
    "POST /api/v1/environments/{id}/members": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}/members": Case("env", "admin"),
    "GET /api/v1/environments/{id}/members/pending": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}/members/pending": Case("env", "admin"),
    "GET /api/v1/environments/{id}/tokens": Case("env", "admin"),
    "POST /api/v1/environments/{id}/tokens": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}/tokens/{token_id}": Case("env", "admin"),
    "GET /api/v1/environments/{id}/workload-trusts": Case("env", "admin"),
    "POST /api/v1/environments/{id}/workload-trusts": Case("env", "admin"),
    "GET /api/v1/environments/{id}/workload-trusts/{trust_id}": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}/workload-trusts/{trust_id}": Case("env", "admin"),
    "GET /api/v1/organizations/{id}/webhooks": Case("org", "admin"),
    "POST /api/v1/organizations/{id}/webhooks": Case("org", "admin"),
    "GET /api/v1/environments/{id}/webhooks": Case("env", "admin"),
    "POST /api/v1/environments/{id}/webhooks": Case("env", "admin"),
    # A webhook's own routes: decided where it sits. An organization's is unseen (404) from
    # beneath, as a user group is.
    "GET /api/v1/webhooks/{id}/deliveries": Case("org", "admin", below=404),
    "POST /api/v1/webhooks/{id}/test": Case("org", "admin", below=404),
    "DELETE /api/v1/webhooks/{id}": Case("env", "admin"),
    "GET /api/v1/environments/{id}/secrets": Case("env", "viewer"),
    "POST /api/v1/environments/{id}/secrets/versions": Case("env", "editor"),
    "GET /api/v1/environments/{id}/secrets/versions": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/secrets/versions/{version_id}": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/secrets/diff": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/secrets/names": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/changes": Case("env", "viewer"),
    # The dashboard's pages: the same requirements as the API routes they mirror.
    "GET /ui/organizations/{id}": Case("org", "viewer", below="ok"),
    "GET /ui/secret-groups/{id}": Case("group", "viewer", below="ok"),
    "GET /ui/environments/{id}/": Case("env", "viewer"),
    "GET /ui/environments/{id}/value": Case("env", "viewer"),
    "POST /ui/environments/{id}/versions": Case("env", "editor"),
    "GET /ui/environments/{id}/history": Case("env", "viewer"),
    "GET /ui/environments/{id}/access": Case("env", "admin"),
    "GET /ui/environments/{id}/tokens": Case("env", "admin"),
    "POST /ui/environments/{id}/tokens": Case("env", "admin"),
    "POST /ui/environments/{id}/tokens/{token_id}/revoke": Case("env", "admin"),
    "POST /ui/environments/{id}/rollback": Case("env", "editor"),
    "GET /ui/environments/{id}/sync": Case("env", "viewer"),
    "POST /ui/environments/{id}/sync": Case("env", "editor"),
    "GET /ui/environments/{id}/sync-runs/{run_id}": Case("env", "viewer"),
    "GET /ui/secret-groups/{id}/compare": Case("group", "viewer", below="ok"),
    "GET /ui/environments/{id}/trusts": Case("env", "admin"),
    "POST /ui/environments/{id}/trusts": Case("env", "admin"),
    "POST /ui/environments/{id}/trusts/{trust_id}/delete": Case("env", "admin"),
    "POST /ui/environments/{id}/access/grant": Case("env", "admin"),
    "POST /ui/environments/{id}/access/revoke": Case("env", "admin"),
    "POST /ui/environments/{id}/access/withdraw": Case("env", "admin"),
    "GET /ui/organizations/{id}/access": Case("org", "admin"),
    "POST /ui/organizations/{id}/access/grant": Case("org", "admin"),
    "POST /ui/organizations/{id}/access/revoke": Case("org", "admin"),
    "POST /ui/organizations/{id}/access/withdraw": Case("org", "admin"),
    "GET /ui/secret-groups/{id}/access": Case("group", "admin"),
    "POST /ui/secret-groups/{id}/access/grant": Case("group", "admin"),
    "POST /ui/secret-groups/{id}/access/revoke": Case("group", "admin"),
    "POST /ui/secret-groups/{id}/access/withdraw": Case("group", "admin"),
    "GET /ui/organizations/{id}/user-groups": Case("org", "viewer"),
    "POST /ui/organizations/{id}/user-groups": Case("org", "admin"),
    "GET /ui/user-groups/{id}": Case("user_group", "viewer", below=404),
    "POST /ui/user-groups/{id}/members": Case("user_group", "admin", below=404),
    "POST /ui/user-groups/{id}/members/remove": Case("user_group", "admin", below=404),
    "GET /ui/organizations/{id}/audit": Case("org", "admin"),
    "GET /ui/organizations/{id}/audit/verify": Case("org", "admin"),
    "GET /ui/secret-groups/{id}/audit": Case("group", "admin"),
    "GET /ui/environments/{id}/audit": Case("env", "admin"),
    "POST /api/v1/environments/{id}/secrets/rollback": Case("env", "editor"),
    "GET /api/v1/environments/{id}/secrets/{name}/history": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/providers/": Case("env", "viewer"),
    "POST /api/v1/environments/{id}/providers/": Case("env", "admin"),
    "GET /api/v1/environments/{id}/providers/{provider}": Case("env", "viewer"),
    "PATCH /api/v1/environments/{id}/providers/{provider}": Case("env", "admin"),
    "DELETE /api/v1/environments/{id}/providers/{provider}": Case("env", "admin"),
    "POST /api/v1/environments/{id}/providers/{provider}/test": Case("env", "admin"),
    "POST /api/v1/environments/{id}/secrets/sync": Case("env", "editor"),
    "GET /api/v1/environments/{id}/sync-runs": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/sync-status": Case("env", "viewer"),
    "GET /api/v1/environments/{id}/sync-runs/{run_id}": Case("env", "viewer"),
    "GET /api/v1/user-groups/": Case("user_group", "viewer"),
    "POST /api/v1/user-groups/": Case("user_group", "admin"),
    "GET /api/v1/user-groups/{id}": Case("user_group", "viewer", below=404),
    "PATCH /api/v1/user-groups/{id}": Case("user_group", "admin", below=404),
    "DELETE /api/v1/user-groups/{id}": Case("user_group", "owner", destructive=True, below=404),
    "GET /api/v1/user-groups/{id}/members": Case("user_group", "viewer", below=404),
    "POST /api/v1/user-groups/{id}/members": Case("user_group", "admin", below=404),
    "DELETE /api/v1/user-groups/{id}/members": Case("user_group", "admin", below=404),
    # The audit trail names its scope in the query: here an environment, held at any level.
    "GET /api/v1/audit": Case("env", "admin"),
    "GET /api/v1/audit/verify": Case("org", "admin"),
}
# Routes open to any signed-in user (no resource to hold a role on).
ANY_USER = {"POST /api/v1/organizations/", "GET /api/v1/organizations/", "GET /ui/"}
# How a role can be held for a resource at each level: where the binding sits, and whether
# it is held through a user group; the "below" ways hold it only beneath the resource.
HOLDINGS = {
    "org": [
        ("direct", "org", False),
        ("user group", "org", True),
        ("below, on a group", "group", False),
        ("below, on an environment", "env", False),
        ("below, on an environment through a user group", "env", True),
    ],
    "user_group": [
        ("direct", "org", False),
        ("user group", "org", True),
        ("below, on a group", "group", False),
        ("below, on an environment", "env", False),
    ],
    "group": [
        ("direct", "group", False),
        ("from organization", "org", False),
        ("user group", "group", True),
        ("below, on an environment", "env", False),
        ("below, on an environment through a user group", "env", True),
    ],
    "env": [
        ("direct", "env", False),
        ("from group", "group", False),
        ("from organization", "org", False),
        ("user group", "env", True),
    ],
}
DEPTH = {"org": 0, "user_group": 0, "group": 1, "env": 2}
# Routes whose allowed send itself moves the access epoch (the triggers of migration 0006):
# it adds, changes or removes a role binding (a new group or environment binds its creator
# as owner) or a user group's member, or revokes a service token. The next request finds
# the epoch moved and empties the caches, so after an allowed send the second is checked
# the same way but served cold. Allowed deletes of organizations, groups, environments and
# user groups are not sent twice at all (see _check).
MOVES_THE_EPOCH = {
    "POST /api/v1/organizations/{id}/secret-groups",
    "POST /api/v1/organizations/{id}/members",
    "DELETE /api/v1/organizations/{id}/members",
    "POST /api/v1/secret-groups/{id}/environments",
    "POST /api/v1/secret-groups/{id}/members",
    "DELETE /api/v1/secret-groups/{id}/members",
    "POST /api/v1/environments/{id}/members",
    "DELETE /api/v1/environments/{id}/members",
    "DELETE /api/v1/environments/{id}/tokens/{token_id}",
    "POST /ui/environments/{id}/tokens/{token_id}/revoke",
    "POST /api/v1/user-groups/{id}/members",
    "DELETE /api/v1/user-groups/{id}/members",
    "POST /ui/environments/{id}/access/grant",
    "POST /ui/environments/{id}/access/revoke",
    "POST /ui/organizations/{id}/access/grant",
    "POST /ui/organizations/{id}/access/revoke",
    "POST /ui/secret-groups/{id}/access/grant",
    "POST /ui/secret-groups/{id}/access/revoke",
    "POST /ui/user-groups/{id}/members",
    "POST /ui/user-groups/{id}/members/remove",
}
# Routes whose warm, allowed sends the gate admits from the cache without a query.
LEAN = {
    "GET /api/v1/environments/{id}/secrets",
    "POST /api/v1/environments/{id}/secrets/versions",
    "GET /ui/environments/{id}/value",
    "POST /ui/environments/{id}/versions",
    "GET /ui/secret-groups/{id}/compare",  # each environment compared is a read
}
# The matrix takes minutes in one test; in this many it is spread over the test workers.
SHARDS = 6


def shard_routes(shard: int) -> list[str]:
    """Return the routes of one shard: every SHARDS-th, so slow neighbours are spread out."""
    return list(MATRIX)[shard::SHARDS]


def test_every_route_declares_an_action(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, None), keys=random_keys())
    undeclared = [
        route_key(route)
        for route in api_routes(app)
        if not (route.path.startswith(PUBLIC_PREFIXES) or route.path in PUBLIC_PATHS)
        and declared_action(route) is None
    ]
    assert undeclared == []


def test_the_matrix_covers_every_route(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, None), keys=random_keys())
    secured = {route_key(route) for route in api_routes(app) if declared_action(route) is not None}
    assert secured == set(MATRIX) | ANY_USER


class World:
    """Alice's resources and one user per (role, where it is held)."""

    def __init__(self, server: InProcessServer, alice: Api) -> None:
        self.server = server
        self.alice = alice
        self.counter = itertools.count()
        self.users: dict[tuple[str, str, bool], Api] = {}

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    async def tree(self) -> dict[str, dict[str, Any]]:
        """Create a fresh organization, group, environment and user group owned by alice."""
        call = self.alice.call
        org = await call("POST", "/organizations/", {"name": self.name("org")}, status=201)
        group = await call(
            "POST", f"/organizations/{org['id']}/secret-groups", {"name": "g"}, status=201
        )
        env = await call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": "e"}, status=201
        )
        team = await call(
            "POST", "/user-groups/", {"organization_id": org["id"], "name": "t"}, status=201
        )
        version = await call(
            "POST",
            f"/environments/{env['id']}/secrets/versions",
            {"message": "base", "set": {"BASE": "1"}},
            status=201,
        )
        TARGETS[org["name"]] = Target()
        provider = f"/environments/{env['id']}/providers/"
        await call("POST", provider, _MEMORY | {"config": {"target": org["name"]}}, status=201)
        run = await call(
            "POST", f"/environments/{env['id']}/secrets/sync", {"provider": "memory"}, status=200
        )
        return {
            "org": org,
            "group": group,
            "env": env,
            "user_group": team,
            "version": version,
            "run": run,
        }

    async def bind(
        self, tree: dict[str, dict[str, Any]], login: str, role: str, at: str, via_group: bool
    ) -> None:
        """Give a user a role at a level of the tree, directly or through a user group."""
        paths = {"org": "organizations", "group": "secret-groups", "env": "environments"}
        target = f"/{paths[at]}/{tree[at]['id']}/members"
        if via_group:
            # One user group per (role, level), so each holds exactly one role.
            holders = await self.alice.call(
                "POST",
                "/user-groups/",
                {"organization_id": tree["org"]["id"], "name": f"h-{role}-{at}"},
            )
            if holders.get("error_code") == "already_exists":
                org_id, name = tree["org"]["id"], f"h-{role}-{at}"
                listed = await self.alice.call(
                    "GET", f"/user-groups/?organization_id={org_id}&name={name}", status=200
                )
                (holders,) = listed["items"]
            await self.alice.call(
                "POST", f"/user-groups/{holders['id']}/members", {"user": login}, status=201
            )
            await self.alice.call(
                "POST", target, {"user_group": holders["id"], "role": role}, status=200
            )
        else:
            await self.alice.call("POST", target, {"user": login, "role": role}, status=200)


Request = tuple[str, str, Any]


class Form(dict[str, Any]):
    """A body sent as an HTML form (the dashboard's), not as JSON."""


async def _prepare(world: World, key: str, tree: dict[str, dict[str, Any]]) -> Request:
    """Return (method, path, body) for a route against the tree, setting up what it needs."""
    method, path = key.split(" ", 1)
    level = MATRIX[key].level
    path = path.removeprefix("/api/v1").replace("{version_id}", tree["version"]["id"])
    if path.startswith("/webhooks/{id}"):
        where = {"org": "organizations", "env": "environments"}[level]
        made = await world.alice.call(
            "POST", f"/{where}/{tree[level]['id']}/webhooks", {"url": _HOOK}, status=201
        )
        path = path.replace("{id}", made["id"])
    path = path.replace("{name}", "BASE" if "/secrets" in path else tree["org"]["name"])
    path = path.replace("{group}", tree["group"]["name"]).replace("{env}", tree["env"]["name"])
    path = path.replace("{id}", tree[level]["id"])
    path = path.replace("{provider}", "memory").replace("{run_id}", tree["run"]["id"])
    alice = world.alice.call
    providers = f"/environments/{tree['env']['id']}/providers/"
    body: Any = None
    if "/providers/" in path and method != "GET":
        # Each call starts from a configured memory provider (POST: from none).
        await alice("DELETE", f"{providers}memory")
        if method == "POST" and path == providers:
            body = _MEMORY | {"config": {"target": tree["org"]["name"]}}
        else:
            await alice(
                "POST", providers, _MEMORY | {"config": {"target": tree["org"]["name"]}}, status=201
            )
            body = {"config": {"target": tree["org"]["name"]}} if method == "PATCH" else None
    elif path.endswith("/secrets/sync"):
        body = {"provider": "memory"}
    elif path.endswith("/webhooks") and method == "POST":
        body = {"url": _HOOK}
    elif key == "GET /api/v1/user-groups/":
        path = f"/user-groups/?organization_id={tree['org']['id']}"
    elif key == "POST /api/v1/user-groups/":
        body = {"organization_id": tree["org"]["id"], "name": world.name("ug")}
    elif method == "PATCH":
        body = {"description": world.name("d")}
    elif method == "POST" and path.endswith(("/secret-groups", "/environments")):
        body = {"name": world.name("n")}
    elif path.endswith("/members/pending") and method == "DELETE":
        body = {"user": "newcomer"}  # nobody signs in as newcomer: the invite stays pending
        await alice("POST", path.removesuffix("/pending"), body | {"role": "viewer"}, status=202)
    elif key.startswith("POST /ui/") and "/access/" in key:
        members = path.removeprefix("/ui").rsplit("/access/", 1)[0] + "/members"
        if key.endswith("/grant"):
            body = Form(who="carol", role="viewer")
        elif key.endswith("/revoke"):
            await alice("POST", members, {"user": "carol", "role": "viewer"}, status=200)
            body = Form(user="carol", role="viewer")
        else:  # nobody signs in as newcomer: the invite stays pending
            await alice("POST", members, {"user": "newcomer", "role": "viewer"}, status=202)
            body = Form(user="newcomer", role="viewer")
    elif key == "POST /ui/organizations/{id}/user-groups":
        body = Form(name=world.name("ug"))
    elif key.startswith("POST /ui/user-groups/"):
        body = Form(user="carol")
        members = path.removeprefix("/ui").removesuffix("/remove")
        await alice("POST" if key.endswith("/remove") else "DELETE", members, {"user": "carol"})
    elif path.endswith("/members") and level == "user_group":
        body = {"user": "carol"}
        if method == "DELETE":
            await alice("POST", path, body)
        else:
            await alice("DELETE", path, body)
    elif path.endswith("/members") and method != "GET":
        body = {"user": "carol", "role": "viewer"}
        if method == "DELETE":
            await alice("POST", path, body, status=200)
    elif key == "POST /ui/environments/{id}/versions":
        body = Form(name=[world.name("K")], action=["set"], value=["v"], message="matrix")
    elif key == "POST /ui/environments/{id}/tokens":
        body = Form(name=world.name("t"), role="viewer", days="1")
    elif key == "POST /ui/environments/{id}/rollback":
        await alice(
            "POST",
            f"/environments/{tree['env']['id']}/secrets/versions",
            {"message": "matrix", "set": {world.name("R"): "v"}},
            status=201,
        )
        body = Form(version_id=tree["version"]["id"], message="matrix")
    elif key == "POST /ui/environments/{id}/sync":
        body = Form(provider="memory", mode="run")
    elif key == "GET /ui/environments/{id}/value":
        path += "?name=BASE"
    elif key == "POST /ui/environments/{id}/trusts":
        trust = _trust(world)
        ((claim, pattern),) = trust.pop("conditions").items()
        body = Form(**trust, claim=[claim], pattern=[pattern], role="viewer", ttl="15")
    elif key.endswith("/secrets/versions") and method == "POST":
        body = {"message": "matrix", "set": {world.name("K"): "v"}}
    elif key.endswith("/rollback"):
        # Something to undo first: rolling back to what is already latest changes nothing (422).
        await alice(
            "POST",
            f"/environments/{tree['env']['id']}/secrets/versions",
            {"message": "matrix", "set": {world.name("R"): "v"}},
            status=201,
        )
        body = {"version_id": tree["version"]["id"], "commit_message": "matrix"}
    elif key.endswith("/tokens") and method == "POST":
        body = {"name": world.name("t"), "role": "viewer"}
    elif key.endswith("/workload-trusts") and method == "POST":
        body = _trust(world)
    elif "{trust_id}" in path:
        trusts = f"/environments/{tree['env']['id']}/workload-trusts"
        made = await alice("POST", trusts, _trust(world), status=201)
        path = path.replace("{trust_id}", made["id"])
    elif "{token_id}" in path:
        made = await alice(
            "POST",
            f"/environments/{tree['env']['id']}/tokens",
            {"name": world.name("t"), "role": "viewer"},
            status=201,
        )
        path = path.replace("{token_id}", made["id"])
    elif key.startswith("GET /api/v1/audit"):
        scope = {"org": "organization_id", "group": "secret_group_id", "env": "environment_id"}
        path += f"?{scope[level]}={tree[level]['id']}"
    elif key.startswith("DELETE") and level in ("org", "group", "env"):
        path += "?cascade=true"
    return method, path, body


def _trust(world: World) -> dict[str, Any]:
    return {
        "name": world.name("trust"),
        "issuer": "https://token.actions.githubusercontent.com",
        "audience": "https://kavach.example.com",
        "conditions": {"repository": "acme/app"},
    }


def _expected(case: Case, role: str | None, at: str) -> int | str:
    if role is None:
        return 404
    if DEPTH[at] > DEPTH[case.level]:
        return case.below
    return "ok" if RANK[role] >= RANK[case.minimum] else 403


Outcome = int | str  # "ok" for any 2xx, else the status


@dataclass
class Run:
    """How the matrix is sent, and what it saw."""

    requirements: dict[str, Declared]
    postgresql: bool  # each case sent twice
    lean: list[str]  # every admission made from the cache alone, noted by the spy
    failures: list[str] = field(default_factory=list)
    served_cold_again: set[str] = field(default_factory=set)  # routes, see MOVES_THE_EPOCH
    served_lean: set[str] = field(default_factory=set)  # routes admitted from the cache


async def _send(run: Run, caller: Api, request: Request) -> tuple[Outcome, bool]:
    """Send a request; return its outcome and whether the gate admitted it without a query."""
    method, path, body = request
    answered = len(run.lean)
    url = path if path.startswith("/ui/") else f"/api/v1{path}"
    sent = {"data": body} if isinstance(body, Form) else {"json": body}
    response = await caller.server.client.request(method, url, headers=caller.headers, **sent)
    assert response.status_code != 500, response.text
    status = response.status_code
    return ("ok" if 200 <= status < 300 else status), len(run.lean) > answered


def _cached(
    cache: AccessCache, caller: Api, requirement: Declared, env_id: str, granted: bool
) -> bool:
    """Whether the cache knows the caller, and its grant if one was cached, right now."""
    epoch = cache.epoch
    token = caller.headers["Authorization"].removeprefix("Bearer ")
    principal = None if epoch is None else cache.principal(epoch, token, utcnow())
    if epoch is None or principal is None:
        return False
    if not (requirement.cached and granted):
        return True
    grant = cache.grant(epoch, caller_key(principal), requirement.action, uuid.UUID(env_id))
    return grant is not None


async def _check(
    world: World,
    run: Run,
    key: str,
    tree: dict[str, dict[str, Any]],
    caller: Api,
    role: str | None,
    holding: tuple[str, str],
) -> None:
    mode, at = holding
    case, label = MATRIX[key], f"{key} as {role} ({mode})"
    expected = _expected(case, role, at)
    cache = world.server.runtime.access_cache
    request = await _prepare(world, key, tree)
    cache.clear()
    cold, lean = await _send(run, caller, request)
    if cold != expected:
        run.failures.append(f"{label}: expected {expected}, got {cold} cold")
    if lean:
        run.failures.append(f"{label}: admitted from the cache with the cache emptied")
    if not run.postgresql:
        return
    if cold == "ok" and case.destructive:
        # Not sent twice: what it deleted is gone, and the delete moved the access epoch. A
        # fresh resource to delete would be no warmer: creating it binds its owner, which
        # moves the epoch too.
        return
    if cold == "ok" and request[0] != "GET":
        # The change is made afresh: a new commit, a new token to revoke, carol back to remove.
        request = await _prepare(world, key, tree)
    # A refusal leaves the caller cached, an allowed cached check its grant too; both stay
    # unless the epoch moves before the second send (see MOVES_THE_EPOCH).
    epoch = cache.epoch
    warm = _cached(cache, caller, run.requirements[key], tree["env"]["id"], cold == "ok")
    again, lean = await _send(run, caller, request)
    warm = warm and cache.epoch == epoch  # it found the epoch unmoved: the caches answered
    if again != expected:
        run.failures.append(f"{label}: expected {expected}, got {again} warm ({cold} cold)")
    if cold == "ok" and key in MOVES_THE_EPOCH and not warm:
        run.served_cold_again.add(key)
    elif not warm:
        run.failures.append(f"{label}: the second send found nothing cached")
    if lean:
        run.served_lean.add(key)
    if lean != (key in LEAN and warm and again == "ok"):
        answered = "admitted from the cache" if lean else "not admitted from the cache"
        run.failures.append(f"{label}: {answered} the second send")


@pytest.fixture
def auth_overrides() -> dict[str, object]:
    """Alice prepares every case: more requests a minute than the API's default limit."""
    return {"rate_limit_api": "100000/minute"}


@pytest.fixture
def lean_answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Note every admission the gate makes from the cache alone, by the action asked."""
    answers: list[str] = []
    admit = AccessGate.admit_provisionally

    async def spy(gate: AccessGate, ticket: Ticket) -> Admission:
        admission = await admit(gate, ticket)
        if not admission.checked:
            answers.append({"secret.read": "read", "secret.write": "commit"}[ticket.action])
        return admission

    monkeypatch.setattr(AccessGate, "admit_provisionally", spy)
    return answers


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_authorization_matrix(
    server: InProcessServer, backend: str, lean_answers: list[str], shard: int
) -> None:
    alice = await user(server, "alice")
    await user(server, "carol")
    world = World(server, alice)
    outsider = await user(server, "outsider")
    shared = await world.tree()
    callers: dict[tuple[str, str, bool], Api] = {}
    for held, at, via_group in itertools.product(ROLES, ("org", "group", "env"), (False, True)):
        login = f"{held}-{at}-{'ug' if via_group else 'direct'}"
        callers[(held, at, via_group)] = await user(server, login)
        await world.bind(shared, login, held, at, via_group)

    requirements = {
        route_key(route): found
        for route in api_routes(server.app)
        if (found := declared_action(route)) is not None
    }
    run = Run(requirements, postgresql=backend == "postgresql", lean=lean_answers)
    cases = 0
    routes = shard_routes(shard)
    for key in routes:
        case = MATRIX[key]
        for role in [None, *ROLES]:
            holdings = HOLDINGS[case.level] if role else [("none", "org", False)]
            for mode, at, via_group in holdings:
                tree = shared
                caller = outsider if role is None else callers[(role, at, via_group)]
                if case.destructive:
                    tree = await world.tree()
                    if role is not None:
                        holder = f"{role}-{at}-{'ug' if via_group else 'direct'}"
                        await world.bind(tree, holder, role, at, via_group)
                await _check(world, run, key, tree, caller, role, (mode, at))
                cases += 1
    assert run.failures == [], "\n".join(run.failures)
    assert cases == sum(1 + len(ROLES) * len(HOLDINGS[MATRIX[key].level]) for key in routes)
    if run.postgresql:
        assert run.served_cold_again == MOVES_THE_EPOCH & set(routes)
        assert run.served_lean == LEAN & set(routes)
    else:
        assert run.served_cold_again == set() and run.lean == []


async def test_a_role_beneath_shows_the_way_down_and_nothing_else(
    server: InProcessServer,
) -> None:
    alice, carol, dave = [await user(server, name) for name in ("alice", "carol", "dave")]
    call = alice.call
    org = await call("POST", "/organizations/", {"name": "acme"}, status=201)
    groups, envs = {}, {}
    for group_name, env_names in (("web", ("dev", "prod")), ("api", ("dev",))):
        groups[group_name] = await call(
            "POST", f"/organizations/{org['id']}/secret-groups", {"name": group_name}, status=201
        )
        for env_name in env_names:
            envs[group_name, env_name] = await call(
                "POST",
                f"/secret-groups/{groups[group_name]['id']}/environments",
                {"name": env_name},
                status=201,
            )
    web, api, prod = groups["web"], groups["api"], envs["web", "prod"]
    await call("POST", f"/environments/{prod['id']}/members", {"user": "carol", "role": "viewer"})
    await call("POST", f"/secret-groups/{web['id']}/members", {"user": "dave", "role": "viewer"})

    def seen(page: dict[str, Any]) -> list[tuple[str, str | None]]:
        assert page["next"] is None
        return [(row["name"], row["role"]) for row in page["items"]]

    # Carol, viewer of web/prod only: the organization and web by id and by name, no role
    # on them, and in each listing only what leads to prod.
    assert seen(await carol.call("GET", "/organizations/", status=200)) == [("acme", None)]
    by_name = await carol.call("GET", "/organizations/by-name/acme", status=200)
    assert (by_name["id"], by_name["role"]) == (org["id"], None)
    listed = await carol.call("GET", f"/organizations/{org['id']}/secret-groups", status=200)
    assert seen(listed) == [("web", None)]
    named = f"/organizations/{org['id']}/secret-groups?name="
    assert seen(await carol.call("GET", f"{named}web", status=200)) == [("web", None)]
    assert seen(await carol.call("GET", f"{named}api", status=200)) == []
    assert (await carol.call("GET", f"/secret-groups/{web['id']}", status=200))["role"] is None
    environments = f"/secret-groups/{web['id']}/environments"
    assert seen(await carol.call("GET", environments, status=200)) == [("prod", "viewer")]
    assert seen(await carol.call("GET", f"{environments}?name=prod")) == [("prod", "viewer")]
    assert seen(await carol.call("GET", f"{environments}?name=dev", status=200)) == []
    for hidden in (
        f"/secret-groups/{api['id']}",
        f"/secret-groups/{api['id']}/environments",
        f"/environments/{envs['web', 'dev']['id']}",
        f"/environments/{envs['api', 'dev']['id']}/secrets",
    ):
        assert (await carol.call("GET", hidden, status=404))["error_code"] == "not_found"
    for refused in (
        f"/organizations/{org['id']}/members",
        f"/secret-groups/{web['id']}/members",
        f"/user-groups/?organization_id={org['id']}",
        f"/audit?organization_id={org['id']}",
    ):
        assert (await carol.call("GET", refused, status=403))["error_code"] == "forbidden"
    await carol.call("GET", f"/environments/{prod['id']}/secrets", status=200)

    # Dave, viewer of the web group: from the organization he sees web only, and all of it.
    listed = await dave.call("GET", f"/organizations/{org['id']}/secret-groups", status=200)
    assert seen(listed) == [("web", "viewer")]
    assert seen(await dave.call("GET", environments, status=200)) == [
        ("dev", "viewer"),
        ("prod", "viewer"),
    ]
    await dave.call("GET", f"/secret-groups/{api['id']}", status=404)


def test_the_shards_deal_out_every_route_once() -> None:
    dealt = [key for shard in range(SHARDS) for key in shard_routes(shard)]
    assert sorted(dealt) == sorted(MATRIX)
