"""The hottest request, served lean: a caller the access cache knows reads the latest secrets.

The general path (FastAPI's dependencies, an ORM session, a statement for the access epoch
and another for the data) costs several times the work itself. On PostgreSQL this one asks
the driver for the epoch and the data in one statement, and answers only when the epoch is
the one the cached answers about the caller were made under, so it is exactly as current
as the general path. Anything else (a caller or grant not cached, a moved epoch, a service
token due to record its use, a query string, a data key not yet unwrapped, SQLite) returns
None and goes the general way, which checks everything in the database and fills the cache.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy import select
from starlette.requests import Request

from kavach.server.auth.service import touch_due
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.db.base import utcnow
from kavach.server.db.driver import DriverPool, DriverStatement
from kavach.server.deps import TokenPrincipal, bearer_token, runtime_of
from kavach.server.rbac.cache import AccessEpoch
from kavach.server.rbac.deps import Access, caller_key, count_api_request
from kavach.server.secrets import service
from kavach.server.secrets.models import Secret, SecretVersion
from kavach.server.secrets.service import Sealed

READ_ACTION = "secret.read"


def _latest_statement() -> DriverStatement:
    """The access epoch, and the latest version with its secrets, in one statement."""
    latest = service.LATEST_ID.scalar_subquery()
    query = (
        select(
            AccessEpoch.value.label("epoch"),
            *service.VERSION_COLUMNS,
            Secret.name,
            Secret.value_encrypted,
        )
        .select_from(AccessEpoch)
        .outerjoin(SecretVersion, SecretVersion.id == latest)
        .outerjoin(Secret, Secret.version_id == SecretVersion.id)
        .where(AccessEpoch.id == 1)
        .order_by(Secret.name)
    )
    return DriverStatement.compile(query)


_LATEST = _latest_statement()


@dataclass(frozen=True)
class FastRead:
    """What the lean path found: the caller's access, the latest version, its sealed values."""

    access: Access
    version: SecretVersion | None
    sealed: list[Sealed]
    key: bytes | None  # the version's data key, unwrapped (None: nothing to decrypt)

    def values(self) -> dict[str, str]:
        """Decrypt the values, sorted by name."""
        if self.version is None or self.key is None:
            return {}
        return service.decrypt_rows(self.key, self.version, self.sealed)


def _environment_id(request: Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.path_params["id"])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class CachedCaller:
    """A caller the access cache knows, with its grant, under the epoch the cache holds."""

    access: Access
    epoch: int
    environment_id: uuid.UUID


async def cached_caller(request: Request, action: str) -> CachedCaller | None:
    """Return the caller and its grant of `action` on the path's environment, if cached.

    A caller found is counted against the API rate limit here, once: should the lean path
    give way later, the general one does not count it again.
    """
    runtime = runtime_of(request)
    cache = runtime.access_cache
    epoch, token = cache.epoch, bearer_token(request)
    environment_id = _environment_id(request)
    if runtime.driver_pool is None:
        return None
    if epoch is None or token is None or environment_id is None:
        return None
    now = utcnow()
    principal = cache.principal(epoch, token, now)
    if principal is None:
        return None
    if isinstance(principal, TokenPrincipal) and touch_due(principal.token, now):
        return None
    grant = cache.grant(epoch, caller_key(principal), action, environment_id)
    if grant is None:
        return None
    await count_api_request(request, principal)
    access = Access(principal=principal, scope=grant.scope, role=grant.role)
    return CachedCaller(access, epoch, environment_id)


async def read_latest(request: Request) -> FastRead | None:
    """Read the latest secrets for a cached caller, or return None for the general path."""
    runtime = runtime_of(request)
    if runtime.driver_pool is None or request.scope["query_string"]:
        return None
    caller = await cached_caller(request, READ_ACTION)
    if caller is None:
        return None
    rows = await _fetch(runtime.driver_pool, caller.environment_id)
    if not rows or rows[0]["epoch"] != caller.epoch:
        return None  # access may have changed since the cache's answers: check in full
    if rows[0]["id"] is None:
        return FastRead(access=caller.access, version=None, sealed=[], key=None)
    version, sealed = service.version_of(rows[0]), sealed_of(rows)
    key = cached_key(runtime.secret_keys, version) if sealed else None
    if sealed and key is None:
        return None
    return FastRead(access=caller.access, version=version, sealed=sealed, key=key)


async def _fetch(pool: DriverPool, environment_id: uuid.UUID) -> list[asyncpg.Record]:
    """Run the one statement on the driver, outside any transaction."""
    async with pool.connection() as driver:
        rows: list[asyncpg.Record] = await driver.fetch(
            *_LATEST.bound({"environment_id": environment_id})
        )
        return rows


def sealed_of(rows: list[asyncpg.Record]) -> list[Sealed]:
    """Return the sealed secrets of driver rows (name, value_encrypted).

    A row without a name holds no secret (a version without any, or no version).
    """
    return [(row["name"], row["value_encrypted"]) for row in rows if row["name"] is not None]


def cached_key(keys: SecretKeys, version: SecretVersion) -> bytes | None:
    """Return the data key of a version holding secrets, if cached."""
    return keys.cached(service.data_key_of(version))


def cached_values(
    keys: SecretKeys, version: SecretVersion, sealed: list[Sealed]
) -> dict[str, str] | None:
    """Decrypt a version's sealed secrets; None if its data key is not cached."""
    if not sealed:
        return {}
    key = cached_key(keys, version)
    return None if key is None else service.decrypt_rows(key, version, sealed)
