"""The secret store's contract, run against each implementation on each database it supports."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from kavach.server.access import Actor
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.scope import EventScope
from kavach.server.audit.service import NewEvent
from kavach.server.batching import KeyedBatches
from kavach.server.errors import NoChanges
from kavach.server.secrets import service
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.service import Drafted, VersionFacts
from kavach.server.secrets.store import Change, Recheck, SecretStore, SqlSecretStore, Stale
from kavach.server.secrets.store_postgres import PostgresSecretStore
from tests.conftest import InProcessServer
from tests.integration.test_resources import user

pytestmark = pytest.mark.parametrize(
    ("backend", "kind"),
    [("sqlite", "sql"), ("postgresql", "sql"), ("postgresql", "driver")],
)
AUTHOR = Actor(type="system", label="store-test")


@pytest.fixture
def store(server: InProcessServer, kind: str) -> SecretStore:
    """The implementation under test, on the server's database and keys."""
    runtime = server.runtime
    parts = (runtime.sessionmaker, runtime.read_sessionmaker, runtime.secret_keys)
    if kind == "sql":
        return SqlSecretStore(*parts)
    assert runtime.driver_pool is not None
    return PostgresSecretStore(
        *parts,
        pool=runtime.driver_pool,
        audit_key=runtime.audit_key,
        chain_heads={},
        batches=KeyedBatches(max_batch=16),
    )


@pytest.fixture
async def where(server: InProcessServer) -> EventScope:
    """An organization, group and environment with no version yet."""
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "pay"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return EventScope(uuid.UUID(org["id"]), uuid.UUID(group["id"]), uuid.UUID(env["id"]))


def _change(
    where: EventScope,
    new: dict[str, str],
    *,
    parent: str | None = None,
    holds: bool = True,
    unset: tuple[str, ...] = (),
) -> Change:
    """A change setting `new` (and unsetting `unset`) on whatever is latest."""
    assert where.environment_id is not None and where.organization_id is not None

    def values(latest: VersionFacts | None, current: dict[str, str]) -> Drafted:
        merged = {name: v for name, v in {**current, **new}.items() if name not in unset}
        if latest is not None and merged == current:
            raise NoChanges("nothing changed")
        return Drafted(dict(sorted(merged.items())))

    def event(version: SecretVersion) -> NewEvent:
        details: dict[str, Any] = {"version_id": version.id, "seq": version.seq}
        return NewEvent(actor=AUTHOR, action="secret.commit", where=where, details=details)

    return Change(
        environment_id=where.environment_id,
        organization_id=where.organization_id,
        message="m",
        author=AUTHOR,
        parent_version=parent,
        values=values,
        event=event,
        holds=lambda _epoch: holds,
    )


async def _values(store: SecretStore, where: EventScope) -> tuple[int | None, dict[str, str]]:
    assert where.environment_id is not None
    snapshot = await store.latest(where.environment_id)
    if snapshot.version is None:
        return None, {}
    key = await store.data_key(snapshot.version)
    return snapshot.version.seq, service.decrypt_rows(key, snapshot.version, snapshot.sealed)


async def _commit_events(server: InProcessServer) -> int:
    async with server.runtime.read_sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(AuditEvent.action == "secret.commit")
        )
    return int(count or 0)


async def test_latest_of_an_empty_environment_carries_the_epoch(
    server: InProcessServer, store: SecretStore, where: EventScope
) -> None:
    assert where.environment_id is not None
    snapshot = await store.latest(where.environment_id)
    assert (snapshot.version, snapshot.sealed) == (None, [])
    async with server.runtime.read_sessionmaker() as session:
        epoch = await server.runtime.access_cache.sync(session)
    assert snapshot.epoch == epoch


async def test_a_commit_is_the_next_latest_with_its_event(
    server: InProcessServer, store: SecretStore, where: EventScope
) -> None:
    first = await store.commit(_change(where, {"B": "2", "A": "1"}))
    assert isinstance(first, SecretVersion) and first.seq == 1
    second = await store.commit(_change(where, {"C": "3"}, unset=("A",), parent=first.id))
    assert isinstance(second, SecretVersion) and second.parent_id == first.id
    assert await _values(store, where) == (2, {"B": "2", "C": "3"})
    assert await _commit_events(server) == 2


async def test_latest_describes_the_version_as_written_even_without_secrets(
    store: SecretStore, where: EventScope
) -> None:
    first = await store.commit(_change(where, {"Z": "26", "A": "1"}))
    assert isinstance(first, SecretVersion)
    assert where.environment_id is not None
    snapshot = await store.latest(where.environment_id)
    assert [name for name, _ in snapshot.sealed] == ["A", "Z"]  # sorted by name
    emptied = await store.commit(_change(where, {}, unset=("A", "Z")))
    assert isinstance(emptied, SecretVersion)
    snapshot = await store.latest(where.environment_id)
    assert snapshot.sealed == [] and snapshot.version is not None
    read = {key: getattr(snapshot.version, key) for key in service.VERSION_KEYS}
    assert read == {key: getattr(emptied, key) for key in service.VERSION_KEYS}
    assert (read["seq"], read["parent_id"], read["secret_count"]) == (2, first.id, 0)


async def test_refusals_write_nothing(
    server: InProcessServer, store: SecretStore, where: EventScope
) -> None:
    first = await store.commit(_change(where, {"A": "1"}))
    assert isinstance(first, SecretVersion)
    with pytest.raises(NoChanges):
        await store.commit(_change(where, {"A": "1"}))
    assert isinstance(await store.commit(_change(where, {"A": "2"}, holds=False)), Recheck)
    stale = await store.commit(_change(where, {"A": "3"}, parent="zzzzzzzz"))
    assert isinstance(stale, Stale) and stale.latest is not None
    assert stale.latest.id == first.id
    assert await _values(store, where) == (1, {"A": "1"})
    assert await _commit_events(server) == 1


async def test_concurrent_commits_each_land_on_the_last(
    server: InProcessServer, store: SecretStore, where: EventScope
) -> None:
    changes = [_change(where, {f"K{i}": str(i)}) for i in range(12)]
    written = await asyncio.gather(*(store.commit(change) for change in changes))
    assert sorted(v.seq for v in written if isinstance(v, SecretVersion)) == list(range(1, 13))
    seq, values = await _values(store, where)
    assert seq == 12 and values == {f"K{i}": str(i) for i in range(12)}
    assert await _commit_events(server) == 12
    verified = await (await user(server, "alice")).call(
        "GET", f"/audit/verify?organization_id={where.organization_id}", status=200
    )
    assert verified["intact"] is True
