"""Commits served lean: a caller the access cache knows commits on the driver directly.

A commit through the general path runs about a dozen statements through the ORM and the
engine, each costing more Python than its database work. On PostgreSQL this one runs on
the driver (see secrets.commit_sql). When this server knows the environment's latest
version and the chain's head (secrets.latest, Runtime.chain_heads), the commits are made on
them and sent in one round trip, each statement checking under the locks that they are
still what is stored; otherwise, or if they are not, one statement takes the environment's
and the audit chain's locks and reads the latest secrets, the chain's head and the access
epoch, then one statement per commit writes its version, secrets and audit event.

Commits to one environment run one at a time under its lock, so those that arrive while
one is written wait together and are written in the next transaction (see batching):
each is made on the one before it, with its own version and event, and their statements
go to the database in one pipeline. A refusal (nothing changed, a name to unset that is
not set) is that commit's alone.

It answers only when the epoch is the one the cached answers were made under, and it gives
way to the general path (by returning None, having written nothing) for anything it does
not decide itself: a caller, grant or data key not cached, a moved epoch, a stale
parent_version (whose 409 lists what changed), a body that does not parse.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request

from kavach.server.api import is_json
from kavach.server.audit import service as audit
from kavach.server.audit.chain import AuditKey
from kavach.server.audit.service import RequestOrigin
from kavach.server.deps import origin_of, runtime_of
from kavach.server.errors import KavachError, ServiceUnavailable
from kavach.server.runtime import Runtime
from kavach.server.secrets import flows, service
from kavach.server.secrets.commit_sql import (
    CHECK_AT_HEAD,
    LOCK_FOR_COMMIT,
    WRITE_AT_HEAD,
    WRITE_VERSION,
)
from kavach.server.secrets.events import commit_event
from kavach.server.secrets.fast import CachedCaller, cached_caller, cached_values, sealed_of
from kavach.server.secrets.latest import KnownVersion
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.schemas import CommitRequest
from kavach.server.secrets.service import Sealed

WRITE_ACTION = "secret.write"


class _GiveWay(Exception):
    """The general path must answer these requests; the transaction rolls back."""


class _IdTaken(Exception):
    """A drawn version id was taken (about never): the batch is written again."""


_ATTEMPTS = 8
_VERSION_KEY = "pk_secret_versions"


@dataclass(frozen=True)
class _Pending:
    """A commit waiting for its batch."""

    runtime: Runtime
    caller: CachedCaller
    body: CommitRequest
    origin: RequestOrigin
    data_key: tuple[uuid.UUID, bytes]


@dataclass
class _Locked:
    """What a batch is made on (read under its locks, or known), advanced by each commit."""

    epoch: int | None
    latest: SecretVersion | None  # only its id, seq and environment are read
    current: dict[str, str]
    sealed: list[Sealed]  # the latest version's secrets as stored
    chain: str
    head: tuple[int, str]


Outcome = SecretVersion | None | Exception  # None: the general path answers


async def commit(request: Request) -> SecretVersion | None:
    """Commit for a cached caller and return the new version, or None for the general path."""
    runtime = runtime_of(request)
    content_type = request.headers.get("content-type")
    if runtime.driver_pool is None or request.scope["query_string"] or not is_json(content_type):
        return None
    caller = await cached_caller(request, WRITE_ACTION)
    if caller is None:
        return None
    try:
        body = CommitRequest.model_validate(await request.json())
    except ValueError:  # orjson's and pydantic's errors both are
        return None  # the general path words the error
    data_key = runtime.secret_keys.cached_for_writing(caller.environment_id)
    if data_key is None:
        return None
    pending = _Pending(runtime, caller, body, origin_of(request), data_key)
    # Concurrent commits to one environment queue on its lock anyway: wait there together.
    return await runtime.commit_batches.submit(caller.environment_id, pending, _write_batch)


async def _write_batch(batch: list[_Pending]) -> list[Outcome]:
    """Write a batch of commits to one environment, in order, in one transaction."""
    for _ in range(_ATTEMPTS):
        try:
            return await _try_batch(batch)
        except _IdTaken:
            continue  # nothing was written: draw every id again
        except _GiveWay:
            return [None] * len(batch)
        except ServiceUnavailable as error:  # nothing was written: each request hears it
            return [ServiceUnavailable(error.message) for _ in batch]
    return [ServiceUnavailable("no free version id was drawn; retry") for _ in batch]


async def _try_batch(batch: list[_Pending]) -> list[Outcome]:
    """Write the batch on what this server knows, or else under the commit's locks."""
    runtime = batch[0].runtime
    assert runtime.driver_pool is not None  # noqa: S101 - commit() checked
    async with runtime.driver_pool.connection() as driver:
        try:
            outcomes = await _at_head(driver, runtime, batch)
            if outcomes is None:
                outcomes = await _under_locks(driver, runtime, batch)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == _VERSION_KEY:
                raise _IdTaken from None
            raise
    return outcomes


async def _at_head(
    driver: asyncpg.Connection, runtime: Runtime, batch: list[_Pending]
) -> list[Outcome] | None:
    """Make the batch on the latest version and chain head this server knows; one round trip.

    Its statements go outside a transaction, in one pipeline, which the database runs as one
    transaction: each checks, under the commit's locks, that it is made on what is stored
    (CHECK_AT_HEAD). If anything moved (another server wrote), nothing is written and None
    says so. A batch that writes nothing is checked alone, so its refusals hold.
    """
    caller = batch[0].caller
    chain = _chain(caller)
    known = runtime.known_versions.get(caller.environment_id)
    head = runtime.chain_heads.get(chain)
    if known is None or head is None:
        return None
    current: dict[str, str] | None = {}
    if known.version is not None:
        current = cached_values(runtime.secret_keys, known.version, known.sealed)
    if current is None:
        return None
    locked = _Locked(caller.epoch, known.version, current, known.sealed, chain, head)
    expected = _expected(locked, caller.environment_id)
    outcomes, rows = _prepared(locked, batch)
    try:
        if rows:
            await driver.executemany(WRITE_AT_HEAD.sql, [WRITE_AT_HEAD.args(r) for r in rows])
        elif any(outcome is not None for outcome in outcomes):
            # Refusals write no event: the version and the epoch are what they rest on.
            await driver.fetchval(*CHECK_AT_HEAD.bound({**expected, "expected_seq": None}))
    except asyncpg.PostgresError as error:
        if error.sqlstate == audit.NOT_AT_HEAD:
            return None
        raise
    _remember(runtime, caller.environment_id, locked, head_checked=bool(rows))
    return outcomes


async def _under_locks(
    driver: asyncpg.Connection, runtime: Runtime, batch: list[_Pending]
) -> list[Outcome]:
    """Take the commit's locks, read what is stored, and write the batch on it."""
    async with driver.transaction():
        locked = await _lock(driver, runtime, batch[0].caller)
        outcomes, rows = _prepared(locked, batch)
        if rows:
            await driver.executemany(WRITE_VERSION.sql, [WRITE_VERSION.args(r) for r in rows])
    _remember(runtime, batch[0].caller.environment_id, locked, head_checked=True)
    return outcomes


def _remember(
    runtime: Runtime, environment_id: uuid.UUID, locked: _Locked, *, head_checked: bool
) -> None:
    """Keep what the batch left stored, for the next batch to be made on."""
    runtime.known_versions.put(environment_id, KnownVersion(locked.latest, locked.sealed))
    if head_checked:  # else the head is what was known, and may have moved on since
        runtime.chain_heads[locked.chain] = locked.head


def _chain(caller: CachedCaller) -> str:
    scope = caller.access.scope
    assert scope is not None  # noqa: S101 - a cached grant always carries its scope
    return audit.chain_of(scope.organization_id)


def _expected(locked: _Locked, environment_id: uuid.UUID) -> dict[str, Any]:
    """Return what CHECK_AT_HEAD expects stored before the next commit is written."""
    return {
        "environment_id": environment_id,
        "expected_version": locked.latest.id if locked.latest else None,
        "chain": locked.chain,
        "expected_seq": locked.head[0],
        "expected_hash": locked.head[1],
        "expected_epoch": locked.epoch,
    }


def _prepared(locked: _Locked, batch: list[_Pending]) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Make each commit of the batch on the one before; return the outcomes and rows to write."""
    outcomes, rows = [], []
    for pending in batch:
        outcome, row = _prepare(locked, pending)
        outcomes.append(outcome)
        if row is not None:
            rows.append(row)
    return outcomes, rows


def _prepare(locked: _Locked, pending: _Pending) -> tuple[Outcome, dict[str, Any] | None]:
    """Make one commit of a batch on the ones before it; return its outcome and row.

    A refusal is this commit's alone, and so is giving way (the general path will then
    find the environment as the batch left it).
    """
    runtime, caller, body = pending.runtime, pending.caller, pending.body
    if caller.epoch != locked.epoch:
        return None, None  # access may have changed since the cache's answers: check in full
    if flows.stale_parent(body, locked.latest) is not None:
        return None, None
    try:
        values = flows.next_values(body, locked.latest, locked.current, runtime.settings)
    except KavachError as refusal:
        return refusal, None
    new = service.NewVersion(
        values=values,
        message=body.message,
        author=caller.access.principal.actor,
        parent=locked.latest,
    )
    version = service.draft_version(caller.environment_id, new, pending.data_key[0])
    event = commit_event(caller.access, pending.origin, version, body)
    row = _expected(locked, caller.environment_id)
    row.update(_written(runtime.audit_key, locked, pending.data_key, version, values, event))
    return version, row


async def _lock(driver: asyncpg.Connection, runtime: Runtime, caller: CachedCaller) -> _Locked:
    """Take the commit's locks and read the latest secrets, the chain's head and the epoch."""
    chain = _chain(caller)
    found = await driver.fetch(
        *LOCK_FOR_COMMIT.bound({"environment_id": caller.environment_id, "chain": chain})
    )
    first = found[0]
    head = audit.chain_head(
        None if first["head_seq"] is None else (first["head_seq"], first["head_hash"])
    )
    if first["version_id"] is None:
        return _Locked(first["epoch"], None, {}, [], chain, head)
    latest = SecretVersion(
        id=first["version_id"],
        seq=first["version_seq"],
        environment_id=caller.environment_id,
        data_key_id=first["data_key_id"],
    )
    sealed = sealed_of(found)
    current = cached_values(runtime.secret_keys, latest, sealed)
    if current is None:
        raise _GiveWay
    return _Locked(first["epoch"], latest, current, sealed, chain, head)


def _written(
    audit_key: AuditKey,
    locked: _Locked,
    data_key: tuple[uuid.UUID, bytes],
    version: SecretVersion,
    values: dict[str, str],
    event: audit.NewEvent,
) -> dict[str, Any]:
    """Return what the write statements take for a version, its values and its event.

    The values are sealed and the event signed for this version's id; the latest version,
    its secrets and the chain's head move on to them.
    """
    _, key = data_key
    ciphertexts = service.sealed_values(version.environment_id, version.id, key, values)
    heads = {locked.chain: locked.head}
    (event_row,) = audit.driver_rows(audit_key, [event], heads)
    names = list(values)
    locked.latest, locked.current, locked.head = version, values, heads[locked.chain]
    locked.sealed = list(zip(names, ciphertexts, strict=True))
    return {
        **service.row_of(version),
        **{f"event_{name}": value for name, value in event_row.items()},
        "names": names,
        "ciphertexts": ciphertexts,
    }
