"""Everything a running server holds for its lifetime, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from kavach.server.gate import AccessGate
from kavach.server.metrics.pool import MeasuredQueuePool
from kavach.server.oidc.fetch import egress_fetcher, provider_fetcher
from kavach.server.oidc.keys import IssuerKeys
from kavach.server.providers.egress import Egress
from kavach.server.ratelimit import RateLimiter
from kavach.server.rbac.cache import AccessCache
from kavach.server.secrets.store import SecretStore, SqlSecretStore
from kavach.server.secrets.store_postgres import COMMIT_BATCH, PostgresSecretStore
from kavach.server.secrets.usecases import SecretUseCases
from kavach.server.settings import Settings
from kavach.server.webhooks.dispatcher import WebhookDispatcher

if TYPE_CHECKING:
    from kavach.server.metrics.registry import Metrics


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
    access_cache: AccessCache
    gate: AccessGate  # the one place callers are authenticated and admitted
    secret_store: SecretStore
    secrets: SecretUseCases
    # OpenID providers' discovery documents and keys (the operator's providers only).
    oidc_issuers: IssuerKeys
    # Workload trusts' issuers (which environment admins name): fetched under the egress
    # rules of sync providers, and cached for the process.
    workload_issuers: IssuerKeys
    metrics: Metrics | None = None  # None: metrics are off
    # Sends webhooks' deliveries (None: this process does not; see start_background).
    webhooks: WebhookDispatcher | None = None
    # Each audit chain's head as this server last wrote or read it (see audit.batch).
    chain_heads: dict[str, tuple[int, str]] = field(default_factory=dict)

    def start_background(self) -> None:
        """Start the work that runs beside requests (once the database is migrated)."""
        if self.webhooks is not None:
            self.webhooks.start()

    async def close(self) -> None:
        """Stop background work, commit the audit events still queued, release connections."""
        if self.webhooks is not None:
            await self.webhooks.close()
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
    chain_heads: dict[str, tuple[int, str]] = {}  # shared by read batches and commits
    audit_key = AuditKey.derive(keys)

    def reload_keyring() -> Keyring:
        # A key rotated by `kavach server rotate-key` while this process runs.
        return load_keys(settings).secret_keyring()

    secret_keys = SecretKeys(keys.secret_keyring(), reload_keyring if keys.generated else None)
    limiter = RateLimiter(
        {
            "device_code": auth.rate_limit_device_code,
            "device_token": auth.rate_limit_device_token,
            "device_approve": auth.rate_limit_device_approve,
            "refresh": auth.rate_limit_refresh,
            "oidc_login": auth.rate_limit_oidc_login,
            "oidc_token": auth.rate_limit_oidc_token,
            "api": auth.rate_limit_api,
        },
        redis_url=settings.redis_url,
        metrics=metrics,
    )
    access_tokens = AccessTokens(
        key=keys.jwt_signing_key,
        issuer=auth.jwt_issuer,
        audience=auth.jwt_audience,
        ttl_seconds=auth.access_token_ttl_seconds,
    )
    read_sessionmaker = create_sessionmaker(read_only(engine))
    access_cache = AccessCache(counters=None if metrics is None else metrics.cache_counters())
    gate = AccessGate(
        cache=access_cache,
        limiter=limiter,
        access_tokens=access_tokens,
        read_sessions=read_sessionmaker,
    )
    audit_batcher = AuditBatcher(
        sessionmaker,
        driver_pool,
        audit_key,
        chain_heads,
        batches=None if metrics is None else metrics.group_commits("audit"),
    )
    store: SecretStore
    if driver_pool is None:
        store = SqlSecretStore(sessionmaker, read_sessionmaker, secret_keys)
    else:
        store = PostgresSecretStore(
            sessionmaker,
            read_sessionmaker,
            secret_keys,
            pool=driver_pool,
            audit_key=audit_key,
            chain_heads=chain_heads,
            batches=KeyedBatches(
                max_batch=COMMIT_BATCH,
                batches=None if metrics is None else metrics.group_commits("secrets"),
            ),
        )
    http = httpx.AsyncClient(timeout=auth.github_timeout_seconds, follow_redirects=False)
    return Runtime(
        settings=settings,
        keys=keys,
        engine=engine,
        sessionmaker=sessionmaker,
        read_sessionmaker=read_sessionmaker,
        driver_pool=driver_pool,
        access_tokens=access_tokens,
        secret_keys=secret_keys,
        limiter=limiter,
        http=http,
        oidc_issuers=IssuerKeys(provider_fetcher(http)),
        audit_batcher=audit_batcher,
        audit_key=audit_key,
        chain_heads=chain_heads,
        access_cache=access_cache,
        gate=gate,
        secret_store=store,
        secrets=SecretUseCases(
            gate=gate,
            store=store,
            keys=secret_keys,
            audit_batcher=audit_batcher,
            settings=settings,
            sessions=sessionmaker,
            read_sessions=read_sessionmaker,
        ),
        workload_issuers=IssuerKeys(egress_fetcher(http, Egress.of(settings))),
        metrics=metrics,
        webhooks=(
            WebhookDispatcher(
                settings, sessionmaker, read_sessionmaker, keys.provider_credential_key
            )
            if settings.webhook_dispatcher_enabled
            else None
        ),
    )
