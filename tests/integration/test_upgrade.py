"""A database left by an earlier release upgrades to head and keeps everything it held.

Each fixture was filled through an earlier release's API (scripts/upgrade_fixtures.py);
here it is loaded into a fresh database, migrated as `kavach server migrate` does, and
read back through today's API with the keys it was made with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from kavach.server.app import create_app
from kavach.server.audit.offline import verify_all
from kavach.server.db.engine import create_engine
from kavach.server.db.migrate import migrate, migration_state
from kavach.server.db.registry import metadata
from kavach.server.iam.models import User, UserGroupMember, UserIdentity
from kavach.server.providers.models import ProviderConfig
from kavach.server.settings import Settings
from tests.conftest import BACKENDS, InProcessServer
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions
from tests.integration.helpers import login
from tests.integration.test_resources import Api
from tests.integration.test_sql_files import assert_functions_are_their_newest_files
from tests.integration.upgrade_check import check_secrets, every
from tests.integration.upgrade_fixtures import (
    REVISIONS,
    Fixture,
    fixture,
    loaded,
    renew_expiries,
)


def test_the_newest_fixture_has_every_table_of_head() -> None:
    for backend in BACKENDS:
        missing = set(metadata.tables) - fixture(REVISIONS[-1], backend).tables
        assert not missing, (
            f"no upgrade fixture holds {sorted(missing)}: add the release that has them to "
            "RELEASES in scripts/upgrade_fixtures.py, fill them there and regenerate"
        )


async def _migrate(found: Fixture, settings: Settings) -> None:
    """Migrate to head; every table the release had still holds rows."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert (await migration_state(connection)).current == (found.revision,)
        assert (await migrate(engine, settings)).at_head
        async with engine.connect() as connection:
            for name in sorted(found.tables):
                count = select(func.count()).select_from(metadata.tables[name])
                assert await connection.scalar(count), f"{name} is empty after the upgrade"
            if connection.dialect.name == "postgresql":
                # Whatever the release ran to create its functions, the files now hold them.
                await assert_functions_are_their_newest_files(connection)
        await renew_expiries(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[InProcessServer]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")
        async with client:
            yield InProcessServer(app=app, client=client)


async def _refreshed(server: InProcessServer, refresh_token: str) -> Api:
    """Sign in again with the session the earlier release issued."""
    answer = await server.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert answer.status_code == 200, answer.text
    return Api(server, answer.json()["data"]["access_token"])


async def _check_tree(server: InProcessServer, alice: Api, made: dict[str, Any]) -> None:
    """Listings, roles through a user group and directly, service tokens."""
    org, group = made["organization"]["id"], made["secret_group"]["id"]
    prod = made["environments"]["prod"]
    assert [o["id"] for o in await every(alice, "/organizations/")] == [org]
    environments = await every(alice, f"/secret-groups/{group}/environments")
    referring = made.get("references", {}).get("environment")
    assert {e["name"]: e["id"] for e in environments if e["id"] != referring} == made[
        "environments"
    ]
    team = await every(alice, f"/user-groups/{made['user_group']}/members")
    assert [m["login"] for m in team] == ["bob"]
    members = await every(alice, f"/environments/{prod}/members")
    held = {(m["user"] or m["user_group"])["login" if m["user"] else "name"]: m for m in members}
    assert (held["carol"]["role"], held["carol"]["inherited"]) == ("editor", False)
    assert (held["backend"]["role"], held["backend"]["inherited"]) == ("viewer", True)
    tokens = await every(alice, f"/environments/{prod}/tokens")
    named = [t for t in tokens if not t.get("workload_trust_id")]  # workloads': see below
    assert {t["name"]: t["revoked_at"] is not None for t in named} == {"ci": False, "old": True}

    # bob reads through the user group, the service token with its own role.
    latest = made["versions"]["prod"][-1]["secrets"]
    bob = Api(server, (await login(server, "bob"))["access_token"])
    assert [g["id"] for g in await every(bob, f"/organizations/{org}/secret-groups")] == [group]
    assert (await bob.call("GET", f"/environments/{prod}/secrets", status=200))["secrets"] == latest
    ci = Api(server, made["service_token"]["token"])
    assert (await ci.call("GET", f"/environments/{prod}/secrets", status=200))["secrets"] == latest
    refused = await bob.call("POST", f"/environments/{prod}/secrets/versions", {}, status=403)
    assert refused["error_code"] == "forbidden"


async def _check_invites(server: InProcessServer, alice: Api, made: dict[str, Any]) -> None:
    """An invite made before the upgrade is still pending, and is the role at first sign-in."""
    for invite in made.get("invites", []):
        pending = f"/environments/{invite['resource_id']}/members/pending"
        listed = await every(alice, pending)
        assert [(i["id"], i["login"], i["role"]) for i in listed] == [
            (invite["id"], invite["login"], invite["role"])
        ]
        invited = Api(server, (await login(server, invite["login"]))["access_token"])
        env = await invited.call("GET", f"/environments/{invite['resource_id']}", status=200)
        assert env["role"] == invite["role"]
        assert await every(alice, pending) == []


async def _check_openid(server: InProcessServer, alice: Api, made: dict[str, Any]) -> None:
    """A mapped membership, a linked identity, a trust and its token all survive."""
    openid = made.get("openid")
    if openid is None:
        return
    prod = made["environments"]["prod"]
    team = await every(alice, f"/user-groups/{openid['mapped_group']}/members")
    assert [m["login"] for m in team] == [openid["mapped_login"]]
    async with server.runtime.sessionmaker() as session:
        members = (await session.scalars(select(UserGroupMember.source))).all()
        linked = (
            await session.execute(
                select(User.login, UserIdentity.subject).join(
                    UserIdentity, UserIdentity.user_id == User.id
                )
            )
        ).all()
    assert "oidc:corp" in members
    assert [tuple(row) for row in linked] == [
        (openid["linked"]["login"], openid["linked"]["subject"])
    ]
    trusts = await every(alice, f"/environments/{prod}/workload-trusts")
    assert [t["name"] for t in trusts] == [openid["trust"]]
    workload = Api(server, openid["workload_token"])
    latest = made["versions"]["prod"][-1]["secrets"]
    assert (await workload.call("GET", f"/environments/{prod}/secrets"))["secrets"] == latest


async def _check_sync(server: InProcessServer, alice: Api, made: dict[str, Any]) -> None:
    """The earlier runs are listed; the stored credentials still sync (to today's fake)."""
    prod = made["environments"]["prod"]
    runs = await every(alice, f"/environments/{prod}/sync-runs")
    assert made["sync_run"] in [run["id"] for run in runs]
    run = await alice.call("GET", f"/environments/{prod}/sync-runs/{made['sync_run']}")
    assert sorted(item["remote_name"] for item in run["items"]) == made["synced"]

    state = FakeActionsState()
    state.add_repo("acme", "payments")
    with serve_fake_github_actions(state) as url:
        # The fake the fixture synced to is gone: point the provider at this one.
        async with server.runtime.engine.begin() as connection:
            (config,) = (await connection.execute(select(ProviderConfig.config))).one()
            moved = update(ProviderConfig).values(config={**config, "api_url": url})
            await connection.execute(moved)
        await alice.call("POST", f"/environments/{prod}/providers/github/test", status=200)
        body = {"provider": "github"}
        done = await alice.call("POST", f"/environments/{prod}/secrets/sync", body, status=200)
        assert {item["status"] for item in done["items"]} == {"succeeded"}, done
        for name, value in made["versions"]["prod"][-1]["secrets"].items():
            assert state.plaintext("acme", "payments", None, name) == value


async def _check_audit(alice: Api, made: dict[str, Any], revision: str) -> None:
    """The organization's chain verifies; events from before chaining count as legacy."""
    org = made["organization"]["id"]
    verified = await alice.call("GET", f"/audit/verify?organization_id={org}", status=200)
    assert verified["intact"], verified
    assert verified["events"] > 0
    listed = await every(alice, f"/audit?organization_id={org}", limit=200)
    statuses = {event["chain_status"] for event in listed}
    chained_before = revision >= "0005"
    assert statuses == ({"chained"} if chained_before else {"chained", "legacy"})
    assert (verified["legacy_events"] == 0) is chained_before


async def _check_references(alice: Api, made: dict[str, Any]) -> None:
    """References still resolve, and a webhook still lists its deliveries."""
    referring = made.get("references")
    if referring is None:
        return
    read = await alice.call("GET", f"/environments/{referring['environment']}/secrets")
    assert read["secrets"] == referring["secrets"]
    deliveries = await alice.call("GET", f"/webhooks/{made['webhook']}/deliveries", status=200)
    assert deliveries["items"]


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_database_of_an_earlier_release_upgrades_keeping_everything(
    revision: str, backend: str, tmp_path: Path
) -> None:
    found = fixture(revision, backend)
    made = found.manifest
    async with loaded(found, backend, tmp_path / "data") as settings:
        await _migrate(found, settings)
        async with _serving(settings) as server:
            alice = await _refreshed(server, made["refresh_token"])
            carol = Api(server, (await login(server, "carol"))["access_token"])
            await _check_tree(server, alice, made)
            await _check_invites(server, alice, made)
            await _check_openid(server, alice, made)
            await _check_sync(server, alice, made)
            await _check_references(alice, made)
            for name, env_id in made["environments"].items():
                writer = carol if name == "prod" else alice
                await check_secrets(alice, writer, env_id, made["versions"][name])
            await _check_audit(alice, made, revision)
        reports = await asyncio.to_thread(verify_all, settings)
        assert [r.chain for r in reports if not r.intact] == []
        assert len(reports) == 2  # the server's chain and the organization's
