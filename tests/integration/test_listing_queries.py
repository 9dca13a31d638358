"""Each listing runs a fixed number of statements, whatever its page size and its length."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user


@contextmanager
def statements(server: InProcessServer) -> Iterator[list[str]]:
    """Collect the statements the server's engine runs meanwhile."""
    ran: list[str] = []

    def record(*args: Any) -> None:
        ran.append(args[2])

    engine = server.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _count(server: InProcessServer, api: Api, path: str, limit: int) -> int:
    """Statements a page runs once its caller's access is cached (the second call)."""
    paged = f"{path}{'&' if '?' in path else '?'}limit={limit}"
    await api.call("GET", paged, status=200)
    with statements(server) as ran:
        page = await api.call("GET", paged, status=200)
    assert len(page["items"]) <= limit
    return len(ran)


class World:
    """An organization whose every listing can be made longer by `grow`."""

    def __init__(self, server: InProcessServer, alice: Api, bob: Api) -> None:
        self.server, self.alice, self.bob = server, alice, bob
        self.rows = 0

    async def start(self) -> None:
        self.org = await self.alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
        self.group = await self._group("g0")
        self.env = await self._env("e0")
        self.team = await self.alice.call(
            "POST", "/user-groups/", {"organization_id": self.org["id"], "name": "t0"}, status=201
        )

    async def _group(self, name: str) -> Any:
        path = f"/organizations/{self.org['id']}/secret-groups"
        return await self.alice.call("POST", path, {"name": name}, status=201)

    async def _env(self, name: str) -> Any:
        path = f"/secret-groups/{self.group['id']}/environments"
        env = await self.alice.call("POST", path, {"name": name}, status=201)
        # Bob holds roles only on environments: his listings are decided from below.
        grant = {"user": "bob", "role": "viewer"}
        await self.alice.call("POST", f"/environments/{env['id']}/members", grant, status=200)
        return env

    async def grow(self, to: int) -> None:
        """Give every listing `to` rows (or more)."""
        org_id, env_id = self.org["id"], self.env["id"]
        for n in range(self.rows + 1, to + 1):
            await self.alice.call("POST", "/organizations/", {"name": f"org-{n}"}, status=201)
            await self._group(f"g{n}")
            await self._env(f"e{n}")
            team = await self.alice.call(
                "POST", "/user-groups/", {"organization_id": org_id, "name": f"t{n}"}, status=201
            )
            grant = {"user_group": team["name"], "role": "viewer"}
            await self.alice.call("POST", f"/environments/{env_id}/members", grant, status=200)
            await user(self.server, f"member-{n}")  # signing in makes the user
            join = {"user": f"member-{n}"}
            await self.alice.call(
                "POST", f"/user-groups/{self.team['id']}/members", join, status=201
            )
            invite = {"user": f"invitee-{n}", "role": "viewer"}
            await self.alice.call("POST", f"/environments/{env_id}/members", invite, status=202)
            token = {"name": f"ci-{n}", "role": "viewer"}
            await self.alice.call("POST", f"/environments/{env_id}/tokens", token, status=201)
            trust = {
                "name": f"ci-{n}",
                "issuer": "https://token.actions.githubusercontent.com",
                "audience": "https://kavach.example.com",
                "conditions": {"repository": f"acme/app-{n}"},
            }
            trusts = f"/environments/{env_id}/workload-trusts"
            await self.alice.call("POST", trusts, trust, status=201)
            change = {"message": f"v{n}", "set": {"N": str(n)}}
            await self.alice.call(
                "POST", f"/environments/{env_id}/secrets/versions", change, status=201
            )
        self.rows = to

    async def counts(self, limit: int) -> dict[str, int]:
        """Statements a page of each listing runs, by listing."""
        org, group, env = self.org["id"], self.group["id"], self.env["id"]
        listings = {
            "organizations": (self.alice, "/organizations/"),
            "secret groups": (self.alice, f"/organizations/{org}/secret-groups"),
            "secret groups seen from below": (self.bob, f"/organizations/{org}/secret-groups"),
            "environments": (self.alice, f"/secret-groups/{group}/environments"),
            "environments seen from below": (self.bob, f"/secret-groups/{group}/environments"),
            "environments by name": (self.bob, f"/secret-groups/{group}/environments?name=e1"),
            "organization members": (self.alice, f"/organizations/{org}/members"),
            "environment members": (self.alice, f"/environments/{env}/members"),
            "pending members": (self.alice, f"/environments/{env}/members/pending"),
            "user groups": (self.alice, f"/user-groups/?organization_id={org}"),
            "user group members": (self.alice, f"/user-groups/{self.team['id']}/members"),
            "tokens": (self.alice, f"/environments/{env}/tokens"),
            "workload trusts": (self.alice, f"/environments/{env}/workload-trusts"),
            "versions": (self.alice, f"/environments/{env}/secrets/versions"),
            "audit events": (self.alice, f"/audit?environment_id={env}"),
        }
        return {
            name: await _count(self.server, api, path, limit)
            for name, (api, path) in listings.items()
        }


async def test_a_page_runs_as_many_statements_whatever_its_size_and_the_rows(
    server: InProcessServer,
) -> None:
    world = World(server, await user(server, "alice"), await user(server, "bob"))
    await world.start()
    await world.grow(1)
    few = await world.counts(limit=100)
    await world.grow(12)
    assert await world.counts(limit=2) == few  # full pages of 2
    assert await world.counts(limit=10) == few  # full pages of 10
    assert await world.counts(limit=100) == few  # every row
    groups = await world.bob.call("GET", f"/organizations/{world.org['id']}/secret-groups")
    assert len(groups["items"]) == 1
    seen = await world.bob.call("GET", f"/secret-groups/{world.group['id']}/environments")
    assert {env["name"] for env in seen["items"]} == {f"e{n}" for n in range(13)}
    assert {env["role"] for env in seen["items"]} == {"viewer"}


async def test_pages_of_one_followed_by_cursor_give_every_listing_whole(
    server: InProcessServer,
) -> None:
    world = World(server, await user(server, "alice"), await user(server, "bob"))
    await world.start()
    await world.grow(3)
    org, group, env = world.org["id"], world.group["id"], world.env["id"]
    listings = [
        "/organizations/",
        f"/organizations/{org}/secret-groups",
        f"/secret-groups/{group}/environments",
        f"/environments/{env}/members",
        f"/environments/{env}/members/pending",
        f"/user-groups/?organization_id={org}",
        f"/user-groups/{world.team['id']}/members",
        f"/environments/{env}/tokens",  # keyed on the time made, then the id
        f"/environments/{env}/workload-trusts",  # the same
        f"/environments/{env}/secrets/versions",
        f"/audit?environment_id={env}",
    ]
    for path in listings:
        whole = await world.alice.call("GET", path, status=200)
        assert whole["next"] is None and len(whole["items"]) >= 3, path
        followed: list[object] = []
        cursor = ""
        while True:
            sep = "&" if "?" in path else "?"
            page = await world.alice.call("GET", f"{path}{sep}limit=1{cursor}", status=200)
            followed += page["items"]
            if page["next"] is None:
                break
            cursor = f"&cursor={page['next']}"
        assert followed == whole["items"], path


async def test_a_members_cursor_from_a_deeper_scope_is_refused(server: InProcessServer) -> None:
    world = World(server, await user(server, "alice"), await user(server, "bob"))
    await world.start()
    await world.grow(2)
    env_members = f"/environments/{world.env['id']}/members"
    levels = {b["resource_type"] for b in (await world.alice.call("GET", env_members))["items"]}
    assert levels == {"organization", "secret_group", "environment"}
    last = await world.alice.call("GET", f"{env_members}?limit=1", status=200)
    deeper = last["next"]
    while last["next"] is not None:  # the cursor of the last page names the environment level
        deeper = last["next"]
        last = await world.alice.call("GET", f"{env_members}?limit=1&cursor={deeper}", status=200)
    org_members = f"/organizations/{world.org['id']}/members?cursor={deeper}"
    refused = await world.alice.call("GET", org_members, status=422)
    assert refused["error_code"] == "validation_failed"
