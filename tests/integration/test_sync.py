"""The sync engine against an in-memory target: plan, ledger, prune, adopt, faults, locks."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, SecretStr
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from kavach.server.errors import ProviderError
from kavach.server.providers.base import RemoteSecret, SyncProvider, register
from kavach.server.providers.models import ProviderConfig
from kavach.server.sync.models import SyncRun
from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user


@dataclass
class Target:
    """What the in-memory target holds and how it misbehaves."""

    secrets: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[ProviderError]] = field(default_factory=lambda: defaultdict(list))
    writes: list[tuple[str, str]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)  # a write waits on hold


TARGETS: dict[str, Target] = {}


class MemoryConfig(BaseModel):
    """Which in-memory target."""

    target: str


class MemoryCredentials(BaseModel):
    """A token the memory target checks."""

    token: SecretStr


@register
class MemoryProvider(SyncProvider):
    """A target that lives in this test process."""

    name: ClassVar[str] = "memory"
    config_model: ClassVar[type[BaseModel]] = MemoryConfig
    credentials_model: ClassVar[type[BaseModel]] = MemoryCredentials
    credential_bound: ClassVar[frozenset[str]] = frozenset({"target"})

    @property
    def state(self) -> Target:
        assert isinstance(self.config, MemoryConfig)
        return TARGETS[self.config.target]

    def target_key(self) -> str:
        assert isinstance(self.config, MemoryConfig)
        return f"memory:{self.config.target}"

    def remote_name(self, name: str) -> str:
        return name.upper().replace(".", "_")

    async def test(self) -> None:
        assert isinstance(self.credentials, MemoryCredentials)
        if self.credentials.token.get_secret_value() != "good":
            raise ProviderError("the memory target refused the token")

    async def list_remote(self) -> dict[str, RemoteSecret]:
        return {name: RemoteSecret(name) for name in self.state.secrets}

    def _fail(self, remote_name: str) -> None:
        pending = self.state.failures[remote_name]
        if pending:
            raise pending.pop(0)

    async def put(self, remote_name: str, value: str) -> None:
        if self.state.hold is not None:
            self.state.holding.set()
            await self.state.hold.wait()
        self._fail(remote_name)
        self.state.writes.append(("put", remote_name))
        self.state.secrets[remote_name] = value

    async def delete(self, remote_name: str) -> None:
        self._fail(remote_name)
        self.state.writes.append(("delete", remote_name))
        self.state.secrets.pop(remote_name, None)


async def _setup(server: InProcessServer, target: str) -> tuple[Api, str, Target]:
    TARGETS[target] = state = Target()
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    await alice.call(
        "POST",
        f"/environments/{env['id']}/providers/",
        {"provider": "memory", "config": {"target": target}, "credentials": {"token": "good"}},
        status=201,
    )
    return alice, env["id"], state


async def _commit(api: Api, env_id: str, **body: Any) -> Any:
    return await api.call(
        "POST", f"/environments/{env_id}/secrets/versions", {"message": "m", **body}, status=201
    )


async def _sync(api: Api, env_id: str, status: int = 200, **body: Any) -> Any:
    return await api.call(
        "POST",
        f"/environments/{env_id}/secrets/sync",
        {"provider": "memory", **body},
        status=status,
    )


def _items(run: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {i["remote_name"]: (i["action"], i["status"]) for i in run["items"]}


async def test_provider_configuration_never_shows_credentials(server: InProcessServer) -> None:
    alice, env_id, _ = await _setup(server, "cfg")
    base = f"/environments/{env_id}/providers"
    shown = await alice.call("GET", f"{base}/memory", status=200)
    assert shown["config"] == {"target": "cfg"}
    assert shown["credential_fields"] == ["token"]
    assert "good" not in str(await alice.call("GET", f"{base}/", status=200))
    await alice.call("POST", f"{base}/memory/test", status=200)
    await alice.call("PATCH", f"{base}/memory", {"credentials": {"token": "bad"}}, status=200)
    failed = await alice.call("POST", f"{base}/memory/test", status=502)
    assert failed["error_code"] == "provider_error"
    still = await alice.call("GET", f"{base}/memory", status=200)
    assert still["config"] == {"target": "cfg"}  # the partial update kept the config
    moved = await alice.call("PATCH", f"{base}/memory", {"config": {"target": "evil"}}, status=422)
    assert "credentials" in moved["error"]
    await alice.call(
        "PATCH",
        f"{base}/memory",
        {"config": {"target": "cfg"}, "credentials": {"token": "bad"}},
        status=200,
    )
    bad = await alice.call("POST", f"{base}/", {"provider": "nope"}, status=422)
    assert "memory" in bad["error"]
    again = await alice.call(
        "POST",
        f"{base}/",
        {"provider": "memory", "config": {}, "credentials": {"token": "x"}},
        status=409,
    )
    assert again["error_code"] == "already_exists"
    async with server.runtime.sessionmaker() as session:
        record = await session.scalar(select(ProviderConfig))
        events = list(await session.scalars(select(AuditEvent)))
    assert record is not None and b"bad" not in record.credentials_encrypted
    assert {"provider.configure", "provider.update", "provider.test"} <= {e.action for e in events}
    # As words: ids in the details are hexadecimal, and "bad" is a hex word.
    leaked = re.compile(r"\b(bad|good)\b")
    assert not any(leaked.search(str(e.details)) for e in events)


async def test_sync_then_nothing_to_do(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "basic")
    await _commit(alice, env_id, set={"db.url": "postgres://x", "API_KEY": "k"})
    run = await _sync(alice, env_id)
    assert run["status"] == "succeeded"
    assert _items(run) == {"API_KEY": ("create", "succeeded"), "DB_URL": ("create", "succeeded")}
    assert state.secrets == {"API_KEY": "k", "DB_URL": "postgres://x"}
    state.writes.clear()
    again = await _sync(alice, env_id)
    assert set(_items(again).values()) == {("unchanged", "unchanged")}
    assert state.writes == []
    await _commit(alice, env_id, set={"API_KEY": "k2"})
    third = await _sync(alice, env_id)
    assert _items(third)["API_KEY"] == ("update", "succeeded")
    assert state.writes == [("put", "API_KEY")]


async def test_dry_run_writes_nothing(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "dry")
    await _commit(alice, env_id, set={"A": "1"})
    run = await _sync(alice, env_id, dry_run=True)
    assert (run["status"], _items(run)) == ("planned", {"A": ("create", "planned")})
    assert state.secrets == {} and state.writes == []


async def test_prune_removes_only_what_kavach_wrote(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "prune")
    state.secrets["HANDMADE"] = "keep me"
    await _commit(alice, env_id, set={"A": "1", "B": "2"})
    await _sync(alice, env_id)
    await _commit(alice, env_id, unset=["B"])
    without = await _sync(alice, env_id)
    assert "B" not in _items(without) and state.secrets["B"] == "2"
    pruned = await _sync(alice, env_id, prune=True)
    assert _items(pruned)["B"] == ("delete", "succeeded")
    assert state.secrets == {"A": "1", "HANDMADE": "keep me"}


async def test_unmanaged_remote_is_refused_unless_adopted(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "adopt")
    state.secrets["A"] = "someone else's"
    await _commit(alice, env_id, set={"A": "mine", "B": "2"})
    run = await _sync(alice, env_id)
    assert run["status"] == "partial"
    assert _items(run)["A"] == ("unmanaged", "refused")
    assert state.secrets["A"] == "someone else's"
    adopted = await _sync(alice, env_id, adopt=True)
    assert _items(adopted)["A"] == ("update", "succeeded")
    assert adopted["status"] == "succeeded"
    assert state.secrets["A"] == "mine"


async def test_partial_failure_is_reported_and_a_rerun_finishes(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "partial")
    state.failures["B"].append(ProviderError("permission denied on B"))
    await _commit(alice, env_id, set={"A": "1", "B": "2", "C": "3"})
    run = await _sync(alice, env_id)
    assert run["status"] == "partial"
    failed = next(i for i in run["items"] if i["remote_name"] == "B")
    assert (failed["status"], failed["error"], failed["attempts"]) == (
        "failed",
        "permission denied on B",
        1,
    )
    assert run["counts"]["failed"] == 1 and run["counts"]["succeeded"] == 2
    state.writes.clear()
    rerun = await _sync(alice, env_id)
    assert rerun["status"] == "succeeded"
    assert state.writes == [("put", "B")]


async def test_retryable_errors_are_retried_honouring_retry_after(
    server: InProcessServer,
) -> None:
    alice, env_id, state = await _setup(server, "retry")
    state.failures["A"] += [
        ProviderError("rate limited", retryable=True, retry_after=0.05),
        ProviderError("server error", retryable=True),
    ]
    state.failures["B"] += [ProviderError("down", retryable=True)] * 10
    await _commit(alice, env_id, set={"A": "1", "B": "2"})
    run = await _sync(alice, env_id)
    items = {i["remote_name"]: i for i in run["items"]}
    assert (items["A"]["status"], items["A"]["attempts"]) == ("succeeded", 3)
    max_attempts = server.runtime.settings.sync_max_attempts
    assert (items["B"]["status"], items["B"]["attempts"]) == ("failed", max_attempts)
    assert run["status"] == "partial"


async def test_name_collisions_are_refused_before_writing(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "clash")
    await _commit(alice, env_id, set={"db.url": "1", "DB_URL": "2"})
    refused = await _sync(alice, env_id, status=422)
    assert "DB_URL and db.url -> DB_URL" in refused["error"]
    assert state.writes == []


async def test_two_syncs_of_one_target_never_interleave(server: InProcessServer) -> None:
    alice, env_id, state = await _setup(server, "lock")
    await _commit(alice, env_id, set={"A": "1"})
    state.hold = asyncio.Event()
    first = asyncio.create_task(_sync(alice, env_id))
    # Only once the first sync is writing (and so holds the target) is the second sent.
    await asyncio.wait_for(state.holding.wait(), 30)
    busy = await _sync(alice, env_id, status=409)
    assert busy["error_code"] == "sync_in_progress"
    state.hold.set()
    assert (await first)["status"] == "succeeded"


async def test_runs_are_listed_and_audited(server: InProcessServer) -> None:
    alice, env_id, _ = await _setup(server, "runs")
    await _commit(alice, env_id, set={"A": "1"})
    run = await _sync(alice, env_id)
    page = await alice.call("GET", f"/environments/{env_id}/sync-runs", status=200)
    assert page["next"] is None
    listed = page["items"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert listed[0]["actor"]["label"] == "alice"
    detail = await alice.call("GET", f"/environments/{env_id}/sync-runs/{run['id']}", status=200)
    assert detail["items"][0]["remote_name"] == "A"
    assert "1" not in {i.get("value") for i in detail["items"]}
    async with server.runtime.sessionmaker() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "secret.sync"))
    assert event is not None and event.details["status"] == "succeeded"


async def test_a_run_its_server_left_running_is_marked_interrupted_by_the_next(
    server: InProcessServer,
) -> None:
    alice, env_id, _ = await _setup(server, "crashed")
    await _commit(alice, env_id, set={"A": "1"})
    first = await _sync(alice, env_id)
    # As if its server had stopped mid-run: the row still says running, and the target's
    # lock, held by that server only, is free.
    async with server.runtime.sessionmaker() as session, session.begin():
        stuck = await session.get(SyncRun, uuid.UUID(first["id"]))
        assert stuck is not None
        stuck.status, stuck.finished_at = "running", None
    runs = await alice.call("GET", f"/environments/{env_id}/sync-runs")
    assert runs["items"][0]["status"] == "running"

    await _sync(alice, env_id, dry_run=True)
    listed = await alice.call("GET", f"/environments/{env_id}/sync-runs/{first['id']}")
    assert listed["status"] == "interrupted"
    assert "stopped before it ended" in listed["error"]


async def test_syncs_push_resolved_values_and_a_referenced_change_marks_them_out_of_date(
    server: InProcessServer,
) -> None:
    alice, env_id, state = await _setup(server, "refs")
    env = await alice.call("GET", f"/environments/{env_id}", status=200)
    shared = await alice.call(
        "POST",
        f"/secret-groups/{env['secret_group_id']}/environments",
        {"name": "shared"},
        status=201,
    )
    status_path = f"/environments/{env_id}/sync-status"
    never = await alice.call("GET", status_path, status=200)
    assert [(s["provider"], s["up_to_date"], s["reason"]) for s in never] == [
        ("memory", False, "never synced")
    ]
    await _commit(alice, shared["id"], set={"HOST": "db.internal"})
    await _commit(alice, env_id, set={"DB_URL": "postgres://${shared.HOST}/app"})
    await _sync(alice, env_id)
    assert state.secrets == {"DB_URL": "postgres://db.internal/app"}
    events = await alice.call("GET", f"/audit?environment_id={shared['id']}&action=secret.read")
    assert [e["details"]["what"] for e in events["items"]] == ["reference"]
    (fresh,) = await alice.call("GET", status_path, status=200)
    assert fresh["up_to_date"] and fresh["synced_revision"] == fresh["current_revision"]

    await _commit(alice, shared["id"], set={"HOST": "db2.internal"})
    (stale,) = await alice.call("GET", status_path, status=200)
    assert (stale["up_to_date"], stale["reason"]) == (False, "a secret it refers to changed since")
    await _sync(alice, env_id)
    assert state.secrets == {"DB_URL": "postgres://db2.internal/app"}
    await _commit(alice, env_id, set={"OTHER": "1"})
    (behind,) = await alice.call("GET", status_path, status=200)
    assert behind["reason"].startswith("version 2 was committed since")
