"""Commits served lean: a caller the access cache knows commits on the driver directly.

A commit through the general path runs about a dozen statements through the ORM and the
engine, each costing more Python than its database work. On PostgreSQL this one runs on
the driver (see secrets.commit_sql): one statement takes the environment's and the audit
chain's locks and reads the latest secrets, the chain's head and the access epoch; then
one statement per commit writes its version, secrets and audit event.

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
from kavach.server.secrets.commit_sql import LOCK_FOR_COMMIT, WRITE_VERSION
from kavach.server.secrets.events import commit_event
from kavach.server.secrets.fast import CachedCaller, cached_caller, cached_values
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.schemas import CommitRequest

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
    """What a batch reads under its locks, advanced by each commit it writes."""

    epoch: int | None
    latest: SecretVersion | None  # only its id, seq and environment are read
    current: dict[str, str]
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
    """Prepare each commit on the one before it, then write them all in one pipeline."""
    runtime = batch[0].runtime
    assert runtime.driver_pool is not None  # noqa: S101 - commit() checked
    async with runtime.driver_pool.connection() as driver:
        try:
            async with driver.transaction():
                locked = await _lock(driver, runtime, batch[0].caller)
                prepared = [_prepare(locked, pending) for pending in batch]
                rows = [arguments for _, arguments in prepared if arguments is not None]
                if rows:
                    await driver.executemany(WRITE_VERSION.sql, rows)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == _VERSION_KEY:
                raise _IdTaken from None
            raise
    return [outcome for outcome, _ in prepared]


def _prepare(locked: _Locked, pending: _Pending) -> tuple[Outcome, list[Any] | None]:
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
    version = service.draft_version(caller.environment_id, new)
    event = commit_event(caller.access, pending.origin, version, body)
    arguments = _arguments(runtime.audit_key, locked, pending.data_key, version, values, event)
    locked.latest, locked.current = version, values
    return version, arguments


async def _lock(driver: asyncpg.Connection, runtime: Runtime, caller: CachedCaller) -> _Locked:
    """Take the commit's locks and read the latest secrets, the chain's head and the epoch."""
    scope = caller.access.scope
    assert scope is not None  # noqa: S101 - a cached grant always carries its scope
    chain = audit.chain_of(scope.organization_id)
    found = await driver.fetch(
        *LOCK_FOR_COMMIT.bound({"environment_id": caller.environment_id, "chain": chain})
    )
    first = found[0]
    head = audit.chain_head(
        None if first["head_seq"] is None else (first["head_seq"], first["head_hash"])
    )
    if first["version_id"] is None:
        return _Locked(first["epoch"], None, {}, chain, head)
    latest = SecretVersion(
        id=first["version_id"], seq=first["version_seq"], environment_id=caller.environment_id
    )
    current = cached_values(runtime.secret_keys, latest, found)
    if current is None:
        raise _GiveWay
    return _Locked(first["epoch"], latest, current, chain, head)


def _arguments(
    audit_key: AuditKey,
    locked: _Locked,
    data_key: tuple[uuid.UUID, bytes],
    version: SecretVersion,
    values: dict[str, str],
    event: audit.NewEvent,
) -> list[Any]:
    """Return WRITE_VERSION's arguments for a version, its values and its event.

    The values are sealed and the event signed for this version's id; the chain's head
    moves on to the event.
    """
    data_key_id, key = data_key
    ciphertexts = service.sealed_values(version.environment_id, version.id, key, values)
    heads = {locked.chain: locked.head}
    (event_row,) = audit.driver_rows(audit_key, [event], heads)
    locked.head = heads[locked.chain]
    return WRITE_VERSION.args(
        {
            **service.row_of(version),
            **{f"event_{name}": value for name, value in event_row.items()},
            "names": list(values),
            "data_key_ids": [data_key_id] * len(values),
            "ciphertexts": ciphertexts,
        }
    )
