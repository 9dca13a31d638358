"""Commits: one pipeline, the same versions, refusals and audit trail whether the cache is warm.

A cached caller is admitted without a query, provisionally; the store confirms the admission
against the access epoch read under the commit's lock, or the caller is decided again in
the database before anything is written. On PostgreSQL, commits to one environment that
arrive together are written in one transaction, each made on the one before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from kavach.server.app import create_app
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.service import NewEvent
from kavach.server.secrets import events, service
from kavach.server.secrets.models import DataKey, Secret, SecretVersion
from kavach.server.secrets.store_postgres import PostgresSecretStore
from tests.conftest import InProcessServer
from tests.integration.test_access_cache import _setup
from tests.integration.test_resources import Api, user
from tests.integration.test_secret_reads import Admissions, watch_admissions

Tree = dict[str, Any]
Body = dict[str, Any]


@pytest.fixture
def admitted(monkeypatch: pytest.MonkeyPatch) -> Admissions:
    """Every admission the gate gives during the test."""
    return watch_admissions(monkeypatch)


@pytest.fixture
async def alice(server: InProcessServer) -> Api:
    """Alice, signed in."""
    return await user(server, "alice")


@pytest.fixture
async def tree(alice: Api, admitted: Admissions) -> Tree:
    """Alice's tree with two versions: the second commit was admitted from the cache."""
    made = await _setup(alice)
    await _commit(alice, made, {"message": "warm", "set": {"WARM": "1"}})
    assert admitted.commits == [False, True]
    admitted.seen.clear()
    return made


@pytest.fixture
async def other(server: InProcessServer) -> AsyncIterator[InProcessServer]:
    """Another server on the same database, with the same settings and keys."""
    app = create_app(server.runtime.settings, keys=server.runtime.keys)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")
        async with client:
            yield InProcessServer(app=app, client=client)


def on(server: InProcessServer, api: Api) -> Api:
    """The same caller, talking to another server."""
    moved = Api(server, "")
    moved.headers = api.headers
    return moved


async def _commit(api: Api, tree: Tree, body: Body, status: int = 201) -> Any:
    return await api.call("POST", f"{tree['secrets']}/versions", body, status=status)


async def _post(server: InProcessServer, api: Api, tree: Tree, body: Body) -> httpx.Response:
    url = f"/api/v1{tree['secrets']}/versions"
    return await server.client.post(url, json=body, headers=api.headers)


async def _versions(server: InProcessServer, env_id: str) -> list[SecretVersion]:
    async with server.runtime.sessionmaker() as session:
        found = await session.scalars(
            select(SecretVersion)
            .where(SecretVersion.environment_id == uuid.UUID(env_id))
            .order_by(SecretVersion.seq)
        )
        return list(found)


async def _commit_events(server: InProcessServer) -> list[AuditEvent]:
    async with server.runtime.sessionmaker() as session:
        found = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.commit").order_by(AuditEvent.id)
        )
        return list(found)


async def _chain_intact(api: Api, tree: Tree) -> bool:
    """Verify the organization's audit chain through the API."""
    verified = await api.call(
        "GET", f"/audit/verify?organization_id={tree['org']['id']}", status=200
    )
    return bool(verified["intact"])


def _linked(versions: list[SecretVersion]) -> bool:
    """Say whether each version is made on the one before, with consecutive seqs."""
    seqs = [v.seq for v in versions]
    parents = [v.parent_id for v in versions[1:]]
    return seqs == list(range(1, len(versions) + 1)) and parents == [v.id for v in versions[:-1]]


async def test_a_warm_commit_writes_what_a_cold_one_does(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    server.runtime.access_cache.clear()
    cold = await _commit(alice, tree, {"message": "rotate", "set": {"DB_PASSWORD": "s3cret"}})
    warm = await _commit(alice, tree, {"message": "rotate", "set": {"DB_PASSWORD": "s3cre7"}})
    assert admitted.commits == [False, True]
    for made, seq in ((cold, 3), (warm, 4)):
        assert made["message"] == "rotate" and made["secret_count"] == 2
        assert made["author"]["label"] == "alice" and made["seq"] == seq
    versions = await _versions(server, tree["env"]["id"])
    assert _linked(versions)
    assert [cold["id"], warm["id"]] == [v.id for v in versions[-2:]]
    assert warm["parent_id"] == cold["id"]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"DB_PASSWORD": "s3cre7", "WARM": "1"}
    assert read["version"] == warm
    cold_event, warm_event = (await _commit_events(server))[-2:]
    for event, made in ((cold_event, cold), (warm_event, warm)):
        assert event.details == {
            "version_id": made["id"],
            "seq": made["seq"],
            "set": ["DB_PASSWORD"],
            "unset": [],
            "replace": False,
            "secret_count": 2,
        }
    same = (
        "actor_type",
        "actor_id",
        "actor_label",
        "outcome",
        "resource_type",
        "resource_id",
        "environment_id",
        "organization_id",
        "secret_group_id",
        "chain",
    )
    assert [getattr(warm_event, k) for k in same] == [getattr(cold_event, k) for k in same]
    assert warm_event.chain_seq == cold_event.chain_seq + 1  # type: ignore[operator]
    assert await _chain_intact(alice, tree)


async def test_unset_replace_and_a_matching_parent_commit_warm(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    latest = (await alice.call("GET", tree["secrets"], status=200))["version"]["id"]
    body = {"message": "m", "unset": ["WARM"], "parent_version": latest}
    unset = await _commit(alice, tree, body)
    await _commit(alice, tree, {"message": "m", "replace": True, "secrets": {"ONLY": "this"}})
    assert admitted.commits == [True, True]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"ONLY": "this"}
    versions = await _versions(server, tree["env"]["id"])
    assert [v.secret_count for v in versions] == [1, 2, 1, 1]
    assert versions[2].parent_id == latest and unset["parent_id"] == latest
    assert _linked(versions)


@pytest.mark.parametrize(
    "settings_overrides", [{"max_secrets_per_version": 3, "max_secret_value_bytes": 16}]
)
async def test_refusals_are_the_same_cold_and_warm(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    before = await _versions(server, tree["env"]["id"])
    refusals: list[tuple[Body | bytes, int, str]] = [
        ({"message": "m", "set": {"WARM": "1"}}, 422, "no_changes"),
        ({"message": "m", "unset": ["NOPE"]}, 422, "validation_failed"),
        (
            {"message": "m", "set": {"A": "1"}, "parent_version": before[0].id},
            409,
            "version_conflict",
        ),
        ({"message": "m", "set": {"A": "1", "B": "2"}}, 422, "too_many_secrets"),
        ({"message": "m", "set": {"A": "x" * 17}}, 413, "value_too_large"),
        (b'{"message": "m", "set": {"A": 1}}', 422, "validation_failed"),
    ]
    url = f"/api/v1{tree['secrets']}/versions"
    given: list[dict[str, Any]] = []
    for body, status, code in refusals:
        answers = []
        for warm in (False, True):
            if not warm:
                server.runtime.access_cache.clear()
            if isinstance(body, bytes):
                headers = {**alice.headers, "content-type": "application/json"}
                answer = await server.client.post(url, content=body, headers=headers)
            else:
                answer = await server.client.post(url, json=body, headers=alice.headers)
            assert (answer.status_code, answer.json()["error_code"]) == (status, code), body
            answers.append(answer.json())
        assert answers[0] == answers[1], body
        assert admitted.commits[-2:] == [False, True], body
        given.append(answers[0])
    assert "NOPE" in given[1]["error"]
    # The 409 says what changed since the parent it names.
    assert given[2]["data"]["changed"] == ["WARM"]
    assert given[2]["data"]["latest_version"]["id"] == before[-1].id
    # Nothing was written, and no commit was recorded.
    assert [v.id for v in await _versions(server, tree["env"]["id"])] == [v.id for v in before]
    assert len(await _commit_events(server)) == 2


async def test_concurrent_commits_lose_nothing(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    names = [f"KEY_{n:02d}" for n in range(20)]
    await asyncio.gather(*(_commit(alice, tree, {"message": n, "set": {n: n}}) for n in names))
    assert admitted.commits == [True] * len(names)
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {**{n: n for n in names}, "DB_PASSWORD": "hunter2", "WARM": "1"}
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == len(names) + 2 and _linked(versions)
    assert [v.secret_count for v in versions] == list(range(1, len(names) + 3))
    recorded = await _commit_events(server)
    assert [e.details["version_id"] for e in recorded] == [v.id for v in versions]
    assert await _chain_intact(alice, tree)


@pytest.mark.parametrize(
    ("change", "refused_as"), [("viewer", (403, "forbidden")), (None, (404, "not_found"))]
)
@pytest.mark.parametrize(
    "body",
    [
        {"message": "bob", "set": {"BOB": "3"}},
        # A refusal the change itself would raise is not told to a caller whose access is gone.
        {"message": "bob", "unset": ["NOPE"]},
    ],
)
async def test_a_role_lost_elsewhere_is_checked_again_under_the_commits_lock(
    server: InProcessServer,
    other: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    change: str | None,
    refused_as: tuple[int, str],
    body: Body,
) -> None:
    bob = await user(server, "bob")
    members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "editor"}, status=200)
    for n in range(2):
        await _commit(bob, tree, {"message": "bob", "set": {"BOB": str(n)}})
    assert admitted.commits == [False, True]
    written = await _versions(server, tree["env"]["id"])
    # On another server Bob is made a viewer, or loses his role: this server has not seen it.
    elsewhere = on(other, alice)
    if change is None:
        await elsewhere.call("DELETE", members, {"user": "bob"}, status=200)
    else:
        await elsewhere.call("POST", members, {"user": "bob", "role": change}, status=200)
    status, code = refused_as
    refused = await _commit(bob, tree, body, status=status)
    assert refused["error_code"] == code
    # Admitted from the cache, then stopped under the commit's lock and decided again.
    assert admitted.commits == [False, True, True]
    assert admitted.moved == 1
    assert [v.id for v in await _versions(server, tree["env"]["id"])] == [v.id for v in written]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"]["BOB"] == "1"
    assert len(await _commit_events(server)) == len(written)


async def test_a_caller_whose_access_moved_but_holds_commits_once(
    server: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    # Access changed elsewhere after Alice's grant was cached: she is decided again.
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("UPDATE access_epoch SET value = value + 1"))
    made = await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    assert admitted.commits == [True] and admitted.moved == 1
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == 3 and versions[-1].id == made["id"]
    assert len(await _commit_events(server)) == 3


async def test_an_event_the_database_refuses_writes_no_version(
    server: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = events.commit_event
    where = "kavach.server.secrets.usecases.commit_event"

    def refused(*args: Any) -> NewEvent:
        # The outcome column may not be NULL: the event's insert fails in the database.
        return dataclasses.replace(real(*args), outcome=None)  # type: ignore[arg-type]

    monkeypatch.setattr(where, refused)
    answer = await _post(server, alice, tree, {"message": "m", "set": {"A": "1"}})
    # Nothing is said to have been written (SQLite: 500; PostgreSQL's driver: 503).
    assert answer.status_code >= 500
    assert answer.json()["error_code"] in {"internal_error", "service_unavailable"}
    assert admitted.commits == [True]
    async with server.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(SecretVersion)) == 2
        assert await session.scalar(select(func.count()).select_from(Secret)) == 3
    assert len(await _commit_events(server)) == 2
    monkeypatch.setattr(where, real)
    made = await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    assert made["seq"] == 3
    assert await _chain_intact(alice, tree)


async def test_a_clashing_version_id_writes_nothing_and_is_drawn_again(
    server: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = (await _versions(server, tree["env"]["id"]))[-1].id
    drawn = iter([taken, taken, "zz9zz9zz"])
    monkeypatch.setattr(service, "_new_version_id", lambda: next(drawn))
    made = await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    assert admitted.commits == [True]
    assert (made["id"], made["seq"], made["parent_id"]) == ("zz9zz9zz", 3, taken)
    recorded = await _commit_events(server)
    assert recorded[-1].details["version_id"] == "zz9zz9zz"
    assert len(recorded) == 3  # one per commit: none for the ids that clashed
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"A": "1", "DB_PASSWORD": "hunter2", "WARM": "1"}
    assert await _chain_intact(alice, tree)


def _gathered_at_the_store(
    monkeypatch: pytest.MonkeyPatch, server: InProcessServer, expected: int
) -> list[int]:
    """Hold commits at the store until `expected` have reached it, so they go on together.

    Returns the sizes of the group commits they are written in (PostgreSQL; else empty).
    """
    store = type(server.runtime.secret_store)
    commit = store.commit
    arrived: list[int] = []
    all_arrived = asyncio.Event()
    sizes: list[int] = []

    async def gathered(self: Any, change: Any) -> Any:
        arrived.append(1)
        if len(arrived) >= expected:
            all_arrived.set()
        async with asyncio.timeout(10):
            await all_arrived.wait()
        return await commit(self, change)

    monkeypatch.setattr(store, "commit", gathered)
    if issubclass(store, PostgresSecretStore):
        write_batch = PostgresSecretStore._write_batch

        async def counted(self: PostgresSecretStore, batch: list[Any]) -> Any:
            sizes.append(len(batch))
            return await write_batch(self, batch)

        monkeypatch.setattr(PostgresSecretStore, "_write_batch", counted)
    return sizes


async def test_commits_made_together_build_each_on_the_last_and_refuse_one_alone(
    server: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies: list[Body] = [{"message": f"m{n}", "set": {f"K{n}": str(n)}} for n in range(8)]
    bodies.insert(4, {"message": "same", "set": {"WARM": "1"}})
    sizes = _gathered_at_the_store(monkeypatch, server, len(bodies))
    answers = await asyncio.gather(*(_post(server, alice, tree, body) for body in bodies))
    assert [a.status_code for a in answers] == [201] * 4 + [422] + [201] * 4
    assert answers[4].json()["error_code"] == "no_changes"
    if backend == "postgresql":  # written as group commits, at least one of several
        assert max(sizes) > 1 and sum(sizes) == len(bodies)
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == 10 and _linked(versions)
    assert [v.secret_count for v in versions[2:]] == list(range(3, 11))
    recorded = await _commit_events(server)
    assert [e.details["version_id"] for e in recorded] == [v.id for v in versions]
    assert await _chain_intact(alice, tree)


async def test_a_lost_role_among_commits_made_together_is_that_commits_alone(
    server: InProcessServer,
    other: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = await user(server, "bob")
    members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "editor"}, status=200)
    for n in range(2):
        await _commit(bob, tree, {"message": "bob", "set": {"BOB": str(n)}})
    # Granting Bob his role moved the epoch: Alice's grant is cached again.
    await _commit(alice, tree, {"message": "m", "set": {"ALICE": "1"}})
    assert admitted.commits[-2:] == [True, False]
    await on(other, alice).call("POST", members, {"user": "bob", "role": "viewer"}, status=200)
    admitted.seen.clear()
    callers = [alice] * 3 + [bob] + [alice] * 3
    bodies: list[Body] = [{"message": f"m{n}", "set": {f"K{n}": "v"}} for n in range(7)]
    sizes = _gathered_at_the_store(monkeypatch, server, len(bodies))
    answers = await asyncio.gather(
        *(_post(server, api, tree, body) for api, body in zip(callers, bodies, strict=True))
    )
    assert [a.status_code for a in answers] == [201] * 3 + [403] + [201] * 3
    # Every one was admitted from the cache under the old epoch and decided again.
    assert admitted.commits == [True] * len(bodies)
    assert admitted.moved == len(bodies)
    if backend == "postgresql":  # the first group commit held all, each to be rechecked
        assert sizes[0] == len(bodies) and sum(sizes) == 2 * len(bodies) - 1
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == 5 + 6 and _linked(versions)
    read = await alice.call("GET", tree["secrets"], status=200)
    assert "K3" not in read["secrets"] and read["secrets"]["BOB"] == "1"
    assert all(e.actor_label == "alice" for e in (await _commit_events(server))[-6:])
    assert {f"K{n}" for n in range(7) if n != 3} <= read["secrets"].keys()
    assert await _chain_intact(alice, tree)


async def test_of_two_commits_on_one_parent_the_second_is_told_what_the_first_changed(
    server: InProcessServer,
    admitted: Admissions,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = (await _versions(server, tree["env"]["id"]))[-1].id
    bodies: list[Body] = [
        {"message": f"m{n}", "set": {f"K{n}": "v"}, "parent_version": parent} for n in range(2)
    ]
    _gathered_at_the_store(monkeypatch, server, len(bodies))
    answers = await asyncio.gather(*(_post(server, alice, tree, body) for body in bodies))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409]
    made = next(a.json()["data"] for a in answers if a.status_code == 201)
    stale = next(a.json() for a in answers if a.status_code == 409)
    assert stale["error_code"] == "version_conflict"
    assert stale["data"]["latest_version"]["id"] == made["id"]
    first = next(body for body, a in zip(bodies, answers, strict=True) if a.status_code == 201)
    assert stale["data"]["changed"] == list(first["set"])
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == 3 and versions[-1].parent_id == parent
    assert admitted.commits == [True, True]


async def test_commits_after_another_server_changed_the_environment_are_made_on_what_is_stored(
    server: InProcessServer, other: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    elsewhere = on(other, alice)
    await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    seen = (await alice.call("GET", tree["secrets"], status=200))["version"]["id"]
    await _commit(elsewhere, tree, {"message": "there", "set": {"B": "1"}})
    there = await _commit(elsewhere, tree, {"message": "there", "set": {"C": "1"}})
    # Made on what this server last saw, B would not be set: the lock finds the newer one.
    unset = await _commit(alice, tree, {"message": "m", "unset": ["B"]})
    assert unset["parent_id"] == there["id"] and unset["seq"] == there["seq"] + 1
    # A parent read on this server before the other's commits is stale.
    stale = await _commit(
        alice, tree, {"message": "m", "set": {"D": "1"}, "parent_version": seen}, status=409
    )
    assert stale["error_code"] == "version_conflict"
    assert stale["data"]["changed"] == ["C"]
    assert stale["data"]["latest_version"]["id"] == unset["id"]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"A": "1", "C": "1", "DB_PASSWORD": "hunter2", "WARM": "1"}
    assert _linked(await _versions(server, tree["env"]["id"]))
    assert admitted.commits == [True, False, True, True, True]
    assert await _chain_intact(alice, tree)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_commits_are_made_on_what_the_server_knows_and_locked_only_when_it_moved(
    server: InProcessServer,
    other: InProcessServer,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a server knows an environment's head, a warm commit is one checked round trip."""
    locked: list[int] = []
    under_locks = PostgresSecretStore._under_locks

    async def counted(store: PostgresSecretStore, driver: Any, batch: Any) -> Any:
        locked.append(len(batch))
        return await under_locks(store, driver, batch)

    monkeypatch.setattr(PostgresSecretStore, "_under_locks", counted)
    await _commit(alice, tree, {"message": "m", "set": {"FIRST": "1"}})
    assert locked == [1]  # the first group commit here learns the head under the locks
    locked.clear()
    for n in range(3):
        await _commit(alice, tree, {"message": "m", "set": {f"K{n}": "1"}})
    assert locked == []  # each made on the last, checked by the database as it writes
    await _commit(on(other, alice), tree, {"message": "there", "set": {"B": "1"}})
    locked.clear()
    after = await _commit(alice, tree, {"message": "m", "unset": ["B"]})
    assert locked == [1]  # what it knew had moved: made again under the locks, on B
    await _commit(alice, tree, {"message": "m", "set": {"C": "1"}})
    assert locked == [1]
    versions = await _versions(server, tree["env"]["id"])
    assert _linked(versions) and versions[-2].id == after["id"]
    assert await _chain_intact(alice, tree)


async def test_reads_and_commits_on_one_chain_keep_it_intact(
    server: InProcessServer, other: InProcessServer, admitted: Admissions, alice: Api, tree: Tree
) -> None:
    elsewhere = on(other, alice)
    await alice.call("GET", tree["secrets"], status=200)
    await elsewhere.call("GET", tree["secrets"], status=200)
    commits = [
        _commit(api, tree, {"message": f"m{n}", "set": {f"K{n}": "v"}})
        for n, api in enumerate([alice, elsewhere] * 4)
    ]
    reads = [api.call("GET", tree["secrets"], status=200) for api in [alice, elsewhere] * 6]
    await asyncio.gather(*commits, *reads)
    versions = await _versions(server, tree["env"]["id"])
    assert len(versions) == 10 and _linked(versions)
    async with server.runtime.sessionmaker() as session:
        counted = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "secret.read")
        )
    assert counted == 14
    assert await _chain_intact(alice, tree)


async def test_first_commits_made_together_seal_with_one_data_key(
    server: InProcessServer,
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An environment keeps one data key for life, however its first commits arrive."""
    fresh = await alice.call(
        "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "new"}, 201
    )
    fresh_tree = {**tree, "env": fresh, "secrets": f"/environments/{fresh['id']}/secrets"}
    bodies: list[Body] = [{"message": f"m{n}", "set": {f"K{n}": "v"}} for n in range(6)]
    _gathered_at_the_store(monkeypatch, server, len(bodies))
    answers = await asyncio.gather(*(_post(server, alice, fresh_tree, body) for body in bodies))
    assert [a.status_code for a in answers] == [201] * len(bodies)
    versions = await _versions(server, fresh["id"])
    assert len(versions) == len(bodies) and _linked(versions)
    async with server.runtime.sessionmaker() as session:
        keys = await session.scalars(
            select(DataKey.id).where(DataKey.environment_id == uuid.UUID(fresh["id"]))
        )
        assert len(list(keys)) == 1
    assert {v.data_key_id for v in versions} == {versions[0].data_key_id}
    read = await alice.call("GET", fresh_tree["secrets"], status=200)
    assert read["secrets"] == {f"K{n}": "v" for n in range(len(bodies))}
