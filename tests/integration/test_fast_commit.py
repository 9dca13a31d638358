"""The lean commit (PostgreSQL): the same versions, refusals and audit trail as the general path."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy import func, select, text

from kavach.server.audit import integrity
from kavach.server.audit.chain import ChainReport
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.service import NewEvent
from kavach.server.secrets import events, fast_commit, service
from kavach.server.secrets.models import Secret, SecretVersion
from tests.conftest import InProcessServer
from tests.integration.test_access_cache import _setup
from tests.integration.test_resources import Api, user

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

Tree = dict[str, Any]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, for every commit, whether the lean path answered, refused or gave way."""
    answers: list[str] = []
    real = fast_commit.commit

    async def spy(request: Any) -> Any:
        try:
            answer = await real(request)
        except Exception:
            answers.append("refused")
            raise
        answers.append("general" if answer is None else "lean")
        return answer

    monkeypatch.setattr(fast_commit, "commit", spy)
    return answers


@pytest.fixture
async def alice(server: InProcessServer) -> Api:
    """Alice, signed in."""
    return await user(server, "alice")


@pytest.fixture
async def tree(alice: Api, served: list[str]) -> Tree:
    """Alice's tree with one version, and a second commit that warms the data key's cache."""
    made = await _setup(alice)
    await _commit(alice, made, {"message": "warm", "set": {"WARM": "1"}})
    assert served == ["general", "general"]  # the grant, then the data key, not yet cached
    served.clear()
    return made


async def _commit(api: Api, tree: Tree, body: dict[str, Any], status: int = 201) -> Any:
    return await api.call("POST", f"{tree['secrets']}/versions", body, status=status)


async def _versions(server: InProcessServer, env_id: str) -> list[SecretVersion]:
    async with server.runtime.sessionmaker() as session:
        found = await session.scalars(
            select(SecretVersion)
            .where(SecretVersion.environment_id == env_id)
            .order_by(SecretVersion.seq)
        )
        return list(found)


async def _commit_events(server: InProcessServer) -> list[AuditEvent]:
    async with server.runtime.sessionmaker() as session:
        found = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.commit").order_by(AuditEvent.id)
        )
        return list(found)


async def _last_commits_chain(server: InProcessServer) -> ChainReport:
    """Verify the chain of the organization the last commit was made in."""
    recorded = await _commit_events(server)
    async with server.runtime.sessionmaker() as session:
        return await integrity.verify_chain(session, organization_id=recorded[-1].organization_id)


async def test_a_lean_commit_writes_what_the_general_one_does(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    lean = await _commit(alice, tree, {"message": "rotate", "set": {"DB_PASSWORD": "s3cret"}})
    assert served == ["lean"]
    assert lean["message"] == "rotate" and lean["secret_count"] == 2
    assert lean["author"]["label"] == "alice"
    versions = await _versions(server, tree["env"]["id"])
    assert [v.seq for v in versions] == [1, 2, 3]
    assert lean["id"] == versions[-1].id and lean["parent_id"] == versions[-2].id
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"DB_PASSWORD": "s3cret", "WARM": "1"}
    assert read["version"] == lean
    general, event = (await _commit_events(server))[-2:]
    assert event.details == {
        "version_id": lean["id"],
        "seq": 3,
        "set": ["DB_PASSWORD"],
        "unset": [],
        "replace": False,
        "secret_count": 2,
    }
    same = ("actor_label", "environment_id", "organization_id", "secret_group_id", "chain")
    assert [getattr(event, k) for k in same] == [getattr(general, k) for k in same]
    async with server.runtime.sessionmaker() as session:
        report = await integrity.verify_chain(session, organization_id=event.organization_id)
    assert report.broken is None and report.events == report.head_seq


async def test_unset_replace_and_a_matching_parent_commit_lean(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    latest = (await alice.call("GET", tree["secrets"], status=200))["version"]["id"]
    body = {"message": "m", "unset": ["WARM"], "parent_version": latest}
    await _commit(alice, tree, body)
    await _commit(alice, tree, {"message": "m", "replace": True, "secrets": {"ONLY": "this"}})
    assert served == ["lean", "lean"]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"ONLY": "this"}
    versions = await _versions(server, tree["env"]["id"])
    assert [v.secret_count for v in versions] == [1, 2, 1, 1]
    assert versions[2].parent_id == latest


async def test_refusals_are_the_general_paths(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    before = await _versions(server, tree["env"]["id"])
    same = await _commit(alice, tree, {"message": "m", "set": {"WARM": "1"}}, status=422)
    assert same["error_code"] == "no_changes"
    missing = await _commit(alice, tree, {"message": "m", "unset": ["NOPE"]}, status=422)
    assert missing["error_code"] == "validation_failed" and "NOPE" in missing["error"]
    # A stale parent is left to the general path, whose 409 says what changed since.
    stale = await _commit(
        alice, tree, {"message": "m", "set": {"A": "1"}, "parent_version": before[0].id}, 409
    )
    assert stale["error_code"] == "version_conflict"
    assert stale["data"]["changed"] == ["WARM"]
    unparsed = await server.client.post(
        f"/api/v1{tree['secrets']}/versions",
        content=b'{"message": "m", "set": {"A": 1}}',
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert unparsed.status_code == 422
    assert served == ["refused", "refused", "general", "general"]
    assert len(await _versions(server, tree["env"]["id"])) == len(before)


async def test_concurrent_lean_commits_lose_nothing(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    names = [f"KEY_{n:02d}" for n in range(20)]
    await asyncio.gather(*(_commit(alice, tree, {"message": n, "set": {n: n}}) for n in names))
    assert served == ["lean"] * len(names)
    read = await alice.call("GET", tree["secrets"], status=200)
    assert set(names) <= read["secrets"].keys()
    versions = await _versions(server, tree["env"]["id"])
    assert [v.seq for v in versions] == list(range(1, len(names) + 3))
    assert [v.parent_id for v in versions[1:]] == [v.id for v in versions[:-1]]


async def test_moved_access_and_a_lost_role_are_checked_in_full(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    bob = await user(server, "bob")
    members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "editor"}, status=200)
    await _commit(bob, tree, {"message": "bob", "set": {"BOB": "1"}})
    await _commit(bob, tree, {"message": "bob", "set": {"BOB": "2"}})
    # Bob is made a viewer: the epoch moves, so his cached grant to write no longer counts.
    await alice.call("POST", members, {"user": "bob", "role": "viewer"}, status=200)
    refused = await _commit(bob, tree, {"message": "bob", "set": {"BOB": "3"}}, status=403)
    assert refused["error_code"] == "forbidden"
    # Access changed elsewhere after Alice's grant was cached: the lean path gives way.
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("UPDATE access_epoch SET value = value + 1"))
    await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    assert served == ["general", "lean", "general", "general"]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"]["BOB"] == "2"


async def test_an_event_the_database_refuses_writes_no_version(
    server: InProcessServer,
    backend: str,
    served: list[str],
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = events.commit_event

    def too_long(*args: Any) -> NewEvent:
        # The action column holds 64 characters: the event's insert fails in the database.
        return dataclasses.replace(real(*args), action="x" * 65)

    monkeypatch.setattr(fast_commit, "commit_event", too_long)
    refused = await _commit(alice, tree, {"message": "m", "set": {"A": "1"}}, status=503)
    assert refused["error_code"] == "service_unavailable"
    assert served == ["refused"]
    async with server.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(SecretVersion)) == 2
        assert await session.scalar(select(func.count()).select_from(Secret)) == 3


async def test_a_clashing_version_id_writes_nothing_and_is_drawn_again(
    server: InProcessServer,
    backend: str,
    served: list[str],
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = (await _versions(server, tree["env"]["id"]))[-1].id
    drawn = iter([taken, taken, "zz9zz9zz"])
    monkeypatch.setattr(service, "_new_version_id", lambda: next(drawn))
    made = await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    assert served == ["lean"]
    assert (made["id"], made["seq"], made["parent_id"]) == ("zz9zz9zz", 3, taken)
    recorded = await _commit_events(server)
    assert recorded[-1].details["version_id"] == "zz9zz9zz"
    assert len(recorded) == 3  # one per commit: none for the ids that clashed
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"A": "1", "DB_PASSWORD": "hunter2", "WARM": "1"}


async def test_a_batch_builds_each_commit_on_the_last_and_refuses_one_alone(
    server: InProcessServer,
    backend: str,
    served: list[str],
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes: list[int] = []
    real = fast_commit._write_batch

    async def spy(batch: list[Any]) -> Any:
        sizes.append(len(batch))
        return await real(batch)

    monkeypatch.setattr(fast_commit, "_write_batch", spy)
    bodies = [{"message": f"m{n}", "set": {f"K{n}": str(n)}} for n in range(8)]
    bodies.insert(4, {"message": "same", "set": {"WARM": "1"}})
    url = f"/api/v1{tree['secrets']}/versions"
    answers = await asyncio.gather(
        *(server.client.post(url, json=body, headers=alice.headers) for body in bodies)
    )
    assert [a.status_code for a in answers] == [201] * 4 + [422] + [201] * 4
    assert answers[4].json()["error_code"] == "no_changes"
    assert max(sizes) > 1 and sum(sizes) == len(bodies)
    versions = await _versions(server, tree["env"]["id"])
    assert [v.seq for v in versions] == list(range(1, 11))
    assert [v.parent_id for v in versions[1:]] == [v.id for v in versions[:-1]]
    assert [v.secret_count for v in versions[2:]] == list(range(3, 11))
    recorded = await _commit_events(server)
    assert [e.details["version_id"] for e in recorded[2:]] == [v.id for v in versions[2:]]
    report = await _last_commits_chain(server)
    assert report.broken is None


async def test_commits_on_what_another_server_changed_are_made_on_what_is_stored(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    """What this server knows of the latest version goes stale; the database says so."""
    await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})
    await _commit(alice, tree, {"message": "m", "set": {"A": "2"}})  # made on what it knows
    bob = await user(server, "bob")
    members = f"/environments/{tree['env']['id']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "editor"}, status=200)
    # Grants changed, so neither Bob's nor Alice's next commit is lean: both go the general
    # way, which this server does not remember, as if they were made on another server.
    await _commit(bob, tree, {"message": "bob", "set": {"B": "1"}})
    general = await _commit(alice, tree, {"message": "m", "set": {"C": "1"}})
    # Made on what this server knew, B would not be set: the check finds the newer version.
    unset = await _commit(alice, tree, {"message": "m", "unset": ["B"]})
    assert served == ["lean", "lean", "general", "general", "lean"]
    assert unset["parent_id"] == general["id"]
    read = await alice.call("GET", tree["secrets"], status=200)
    assert read["secrets"] == {"A": "2", "C": "1", "DB_PASSWORD": "hunter2", "WARM": "1"}
    versions = await _versions(server, tree["env"]["id"])
    assert [v.parent_id for v in versions[1:]] == [v.id for v in versions[:-1]]
    report = await _last_commits_chain(server)
    assert report.broken is None


async def test_a_batch_made_on_what_is_known_is_written_whole_or_not_at_all(
    server: InProcessServer,
    backend: str,
    served: list[str],
    alice: Api,
    tree: Tree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})  # now known
    taken = (await _versions(server, tree["env"]["id"]))[-1].id
    drawn = iter(["aaaaaaa1", "aaaaaaa2", taken, "bbbbbbb1", "bbbbbbb2", "bbbbbbb3"])
    monkeypatch.setattr(service, "_new_version_id", lambda: next(drawn))
    under_locks: list[int] = []
    real_under_locks = fast_commit._under_locks

    async def counted(*args: Any) -> Any:
        under_locks.append(1)
        return await real_under_locks(*args)

    monkeypatch.setattr(fast_commit, "_under_locks", counted)
    # Hold the three commits, then write them as one batch.
    held: list[Any] = []
    all_held = asyncio.Event()
    written: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    async def hold(key: Any, pending: Any, run: Any) -> Any:
        held.append(pending)
        if len(held) == 3:
            all_held.set()
        outcome = (await written)[held.index(pending)]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(server.runtime.commit_batches, "submit", hold)
    bodies = [{"message": f"m{n}", "set": {f"K{n}": "v"}} for n in range(3)]
    posts = [asyncio.create_task(_commit(alice, tree, body)) for body in bodies]
    await asyncio.wait_for(all_held.wait(), timeout=10)
    written.set_result(await fast_commit._write_batch(held))
    made = await asyncio.gather(*posts)
    assert [m["id"] for m in made] == ["bbbbbbb1", "bbbbbbb2", "bbbbbbb3"]
    assert under_locks == []  # both tries were made on what was known
    versions = await _versions(server, tree["env"]["id"])
    # The first try met a taken id at its third commit: none of its three was written.
    assert [v.id for v in versions[3:]] == ["bbbbbbb1", "bbbbbbb2", "bbbbbbb3"]
    assert [v.parent_id for v in versions[1:]] == [v.id for v in versions[:-1]]
    assert len(await _commit_events(server)) == 6


async def test_a_refusal_made_on_what_is_known_rests_on_the_epoch_too(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    await _commit(alice, tree, {"message": "m", "set": {"A": "1"}})  # now known
    # Access changed where this server's cache has not seen it yet.
    async with server.runtime.engine.begin() as connection:
        await connection.execute(text("UPDATE access_epoch SET value = value + 1"))
    refused = await _commit(alice, tree, {"message": "m", "unset": ["NOPE"]}, status=422)
    assert refused["error_code"] == "validation_failed"
    # Not refused lean: the check found the epoch moved, so access was checked in full.
    assert served == ["lean", "general"]


async def test_reads_and_commits_on_one_chain_keep_it_whole(
    server: InProcessServer, backend: str, served: list[str], alice: Api, tree: Tree
) -> None:
    await alice.call("GET", tree["secrets"], status=200)
    commits = [_commit(alice, tree, {"message": f"m{n}", "set": {f"K{n}": "v"}}) for n in range(6)]
    reads = [alice.call("GET", tree["secrets"], status=200) for _ in range(12)]
    await asyncio.gather(*commits, *reads)
    assert served == ["lean"] * 6
    report = await _last_commits_chain(server)
    assert report.broken is None
    assert report.events == report.head_seq
