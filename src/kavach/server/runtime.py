"""Everything a running server holds for its lifetime, built once per process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kavach.server.audit.batch import AuditBatcher
from kavach.server.audit.chain import AuditKey
from kavach.server.auth.tokens import AccessTokens
from kavach.server.batching import KeyedBatches
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.crypto.envelope import Keyring
from kavach.server.crypto.keys import KeyMaterial, load_keys
from kavach.server.db.driver import DriverPool
from kavach.server.db.engine import (
    create_engine,
    create_sessionmaker,
    read_only,
)
from kavach.server.metrics.pool import MeasuredQueuePool
from kavach.server.ratelimit import RateLimiter
from kavach.server.rbac.cache import AccessCache
from kavach.server.recent import Recent
from kavach.server.secrets.latest import KnownVersion
from kavach.server.secrets.models import SecretVersion
from kavach.server.settings import Settings

if TYPE_CHECKING:
    from kavach.server.metrics.registry import Metrics

# Commits one transaction may write together: it holds the organization's audit chain.
COMMIT_BATCH = 16
# Environments whose latest version a server remembers for lean commits.
KNOWN_VERSIONS = 1024


@dataclass
class Runtime:
    """The server's long-lived parts: settings, keys, database, limiter, outbound HTTP."""

    settings: Settings
    keys: KeyMaterial
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]  # GET requests: no transaction
    driver_pool: DriverPool | None  # PostgreSQL: the driver's pool for the hottest statements
    access_tokens: AccessTokens
    secret_keys: SecretKeys
    limiter: RateLimiter
    http: httpx.AsyncClient
    audit_batcher: AuditBatcher
    audit_key: AuditKey  # what the audit chain's hashes are made with (sessions carry it too)
    access_cache: AccessCache = field(default_factory=AccessCache)
    metrics: Metrics | None = None  # None: metrics are off
    # Each audit chain's head as this server last wrote or read it (see audit.batch).
    chain_heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Lean commits, per environment, and what they were last made on (see secrets.fast_commit).
    known_versions: Recent[uuid.UUID, KnownVersion] = field(
        default_factory=lambda: Recent(KNOWN_VERSIONS)
    )
    commit_batches: KeyedBatches[Any, SecretVersion | None] = field(
        default_factory=lambda: KeyedBatches(max_batch=COMMIT_BATCH)
    )

    async def close(self) -> None:
        """Commit the audit events still queued, then release connections."""
        await self.audit_batcher.close()
        await self.http.aclose()
        if self.driver_pool is not None:
            await self.driver_pool.close()
        await self.engine.dispose()


def build_runtime(settings: Settings, keys: KeyMaterial, metrics: Metrics | None = None) -> Runtime:
    """Create the runtime's parts (no I/O happens until first use)."""
    engine = create_engine(settings, measured=metrics is not None)
    sessionmaker = create_sessionmaker(engine)
    driver_pool = None
    if engine.dialect.name == "postgresql":
        size = settings.db.db_driver_pool_size
        driver_pool = DriverPool(
            settings, None if metrics is None else metrics.pool("driver", size)
        )
    if metrics is not None and isinstance(engine.pool, MeasuredQueuePool):
        engine.pool.gauges = metrics.pool("engine", engine.pool.capacity)
    auth = settings.auth
    chain_heads: dict[str, tuple[int, str]] = {}  # shared by read batches and lean commits
    audit_key = AuditKey.derive(keys)

    def reload_keyring() -> Keyring:
        # A key rotated by `kavach server rotate-key` while this process runs.
        return load_keys(settings).secret_keyring()

    return Runtime(
        settings=settings,
        keys=keys,
        engine=engine,
        sessionmaker=sessionmaker,
        read_sessionmaker=create_sessionmaker(read_only(engine)),
        driver_pool=driver_pool,
        access_tokens=AccessTokens(
            key=keys.jwt_signing_key,
            issuer=auth.jwt_issuer,
            audience=auth.jwt_audience,
            ttl_seconds=auth.access_token_ttl_seconds,
        ),
        secret_keys=SecretKeys(keys.secret_keyring(), reload_keyring if keys.generated else None),
        limiter=RateLimiter(
            {
                "device_code": auth.rate_limit_device_code,
                "device_token": auth.rate_limit_device_token,
                "device_approve": auth.rate_limit_device_approve,
                "refresh": auth.rate_limit_refresh,
                "api": auth.rate_limit_api,
            },
            redis_url=settings.redis_url,
            metrics=metrics,
        ),
        http=httpx.AsyncClient(timeout=auth.github_timeout_seconds, follow_redirects=False),
        audit_batcher=AuditBatcher(
            sessionmaker,
            driver_pool,
            audit_key,
            chain_heads,
            batches=None if metrics is None else metrics.group_commits("audit"),
        ),
        audit_key=audit_key,
        chain_heads=chain_heads,
        access_cache=AccessCache(counters=None if metrics is None else metrics.cache_counters()),
        commit_batches=KeyedBatches(
            max_batch=COMMIT_BATCH,
            batches=None if metrics is None else metrics.group_commits("secrets"),
        ),
        metrics=metrics,
    )
