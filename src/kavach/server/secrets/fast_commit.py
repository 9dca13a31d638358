"""Commits served lean: a caller the access cache knows commits on the driver directly.

A commit through the general path runs about a dozen statements through the ORM and the
engine, each costing more Python than its database work. On PostgreSQL this one runs the
same transaction on the driver: the environment's lock, its latest version and the access
epoch in one statement, then its values, the new version, its secrets and the audit event.
It answers only when the epoch is the one the cached answers were made under, and it gives
way to the general path (by returning None, having written nothing) for anything it does
not decide itself: a caller, grant or data key not cached, a moved epoch, a stale
parent_version (whose 409 lists what changed), a body that does not parse.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import LargeBinary, Text, Uuid, bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from starlette.requests import Request

from kavach.server.api import is_json
from kavach.server.audit.service import append_with_driver
from kavach.server.db.driver import DriverStatement
from kavach.server.deps import origin_of, runtime_of
from kavach.server.runtime import Runtime
from kavach.server.secrets import flows, service
from kavach.server.secrets.events import commit_event
from kavach.server.secrets.fast import CachedCaller, cached_caller
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.schemas import CommitRequest

WRITE_ACTION = "secret.write"

# The access epoch, and the environment locked with its latest version (migration 0007).
# No epoch row means no caching: the statement then returns nothing, and the path gives way.
_LOCK_LATEST = DriverStatement.compile(
    text(
        "SELECT e.value AS epoch, v.* FROM access_epoch AS e"
        " LEFT JOIN LATERAL kavach_lock_environment(:environment_id) AS v ON true"
        " WHERE e.id = 1"
    )
)
_VALUES = DriverStatement.compile(service.ALL_VALUES)


def _write_statement() -> DriverStatement:
    """The new version and its secrets (given as arrays) in one statement.

    Returns the version's id, or nothing when the id was taken (then nothing is written).
    """
    version = service.INSERT_VERSION["postgresql"].cte("new_version")
    given = (
        func.unnest(
            bindparam("names", type_=ARRAY(Text)),
            bindparam("data_key_ids", type_=ARRAY(Uuid)),
            bindparam("ciphertexts", type_=ARRAY(LargeBinary)),
        )
        .table_valued("name", "data_key_id", "value_encrypted")
        .render_derived()
    )
    secrets = insert(service.SECRETS_TABLE).from_select(
        ["version_id", "name", "data_key_id", "value_encrypted"],
        select(version.c.id, given.c.name, given.c.data_key_id, given.c.value_encrypted),
    )
    return DriverStatement.compile(select(version.c.id).add_cte(secrets.cte("new_secrets")))


_WRITE = _write_statement()


class _GiveWay(Exception):
    """The general path must answer this request; the transaction rolls back."""


async def commit(request: Request) -> SecretVersion | None:
    """Commit for a cached caller and return the new version, or None for the general path."""
    runtime = runtime_of(request)
    pool = runtime.driver_pool
    content_type = request.headers.get("content-type")
    if pool is None or request.scope["query_string"] or not is_json(content_type):
        return None
    caller = await cached_caller(request, WRITE_ACTION)
    if caller is None:
        return None
    try:
        body = CommitRequest.model_validate(await request.json())
    except ValueError:  # orjson's and pydantic's errors both are
        return None  # the general path words the error
    try:
        async with pool.connection() as driver, driver.transaction():
            version = await _write(driver, runtime, caller, body)
            event = commit_event(caller.access, origin_of(request), version, body)
            await append_with_driver(driver, runtime.audit_key, [event])
    except _GiveWay:
        return None
    return version


async def _write(
    driver: asyncpg.Connection, runtime: Runtime, caller: CachedCaller, body: CommitRequest
) -> SecretVersion:
    """Lock the environment, build on its latest version and write the new one."""
    environment_id = caller.environment_id
    data_key = runtime.secret_keys.cached_for_writing(environment_id)
    if data_key is None:
        raise _GiveWay
    found = await driver.fetch(*_LOCK_LATEST.bound({"environment_id": environment_id}))
    if not found or found[0]["epoch"] != caller.epoch:
        raise _GiveWay  # access may have changed since the cache's answers: check in full
    latest = service.version_of(found[0]) if found[0]["id"] is not None else None
    if flows.stale_parent(body, latest) is not None:
        raise _GiveWay
    current = await _current_values(driver, runtime, latest) if latest else {}
    new = service.NewVersion(
        values=flows.next_values(body, latest, current, runtime.settings),
        message=body.message,
        author=caller.access.principal.actor,
        parent=latest,
    )
    data_key_id, key = data_key
    names = list(new.values)

    async def insert(row: dict[str, Any]) -> Any:
        # Sealed for each id drawn: a value's ciphertext is bound to its version's id.
        ciphertexts = service.sealed_values(environment_id, row["id"], key, new.values)
        arrays = {"names": names, "data_key_ids": [data_key_id] * len(names)}
        return await driver.fetchval(*_WRITE.bound({**row, **arrays, "ciphertexts": ciphertexts}))

    return await service.insert_version(insert, environment_id, new)


async def _current_values(
    driver: asyncpg.Connection, runtime: Runtime, latest: SecretVersion
) -> dict[str, str]:
    rows = await driver.fetch(*_VALUES.bound({"version_id": latest.id}))
    sealed = [(row["name"], row["data_key_id"], row["value_encrypted"]) for row in rows]
    data_keys = runtime.secret_keys.cached({data_key_id for _, data_key_id, _ in sealed})
    if data_keys is None:
        raise _GiveWay
    return service.decrypt_rows(data_keys, latest, sealed)
