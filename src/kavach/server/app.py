"""Build the FastAPI application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from kavach import __version__
from kavach.formats.limits import MAX_MESSAGE_CHARS
from kavach.server import health, home, stopping
from kavach.server.api import API_PREFIX, Envelope, ok
from kavach.server.api_docs import install_api_docs
from kavach.server.audit import chain as audit_chain
from kavach.server.audit import router as audit_router
from kavach.server.auth import device_page, service_tokens, signin_page
from kavach.server.auth import router as auth_router
from kavach.server.crypto.keys import KeyMaterial, load_keys
from kavach.server.dashboard.router import router as dashboard_router
from kavach.server.db.migrate import migrate
from kavach.server.deps import RuntimeDep
from kavach.server.handlers import install_error_handlers
from kavach.server.iam import router as iam_router
from kavach.server.iam import user_groups_router
from kavach.server.logging import configure_logging, get_logger, renders_json
from kavach.server.middleware import RequestContextMiddleware
from kavach.server.oidc import pages as oidc_pages
from kavach.server.providers import router as providers_router
from kavach.server.rbac import router as members_router
from kavach.server.runtime import build_runtime
from kavach.server.secrets import router as secrets_router
from kavach.server.security_headers import SecurityHeadersMiddleware, parse_cors_origins
from kavach.server.settings import Settings, check_startable, get_settings
from kavach.server.sync import router as sync_router
from kavach.server.webhooks import router as webhooks_router
from kavach.server.workload import router as workload_router

if TYPE_CHECKING:
    from kavach.server.metrics.registry import Metrics

log = get_logger(__name__)


class Limits(BaseModel):
    """What one commit may hold, so that a client can check it before sending."""

    max_secret_value_bytes: int
    max_secrets_per_version: int
    max_message_chars: int
    max_body_bytes: int


class ServerInfo(BaseModel):
    """What a client may know about the server before logging in."""

    version: str
    identity_provider: str
    mode: str
    limits: Limits


def _meta_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["meta"])

    @router.get("/info", response_model=Envelope[ServerInfo])
    async def info(runtime: RuntimeDep) -> Envelope[ServerInfo]:
        """Return the server's version, login method and the limits of a commit."""
        settings = runtime.settings
        return ok(
            ServerInfo(
                version=__version__,
                identity_provider=settings.auth.login_method,
                mode=settings.mode.value,
                limits=Limits(
                    max_secret_value_bytes=settings.max_secret_value_bytes,
                    max_secrets_per_version=settings.max_secrets_per_version,
                    max_message_chars=MAX_MESSAGE_CHARS,
                    max_body_bytes=settings.max_body_bytes,
                ),
            )
        )

    return router


class KavachAPI(FastAPI):
    """FastAPI with the security headers outermost, so even an unhandled error carries them."""

    def build_middleware_stack(self) -> ASGIApp:
        """Wrap the usual stack (error handling included) in the security headers."""
        return SecurityHeadersMiddleware(super().build_middleware_stack())


def _allow_cors(app: FastAPI, origins: list[str]) -> None:
    """Answer browsers from these origins; bearer tokens only, so no credentials mode."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        expose_headers=["X-Request-Id", "Retry-After"],
        allow_credentials=False,
        max_age=600,
    )


@functools.cache
def _freeze_start_up_objects() -> None:
    """Keep what start-up built out of the cyclic collector's scans, once per process.

    Modules, routes, models and the runtime live as long as the process. Scanned in every
    full collection, they cost reads under load about a tenth of their throughput, and more
    when requests hold their data across an await.
    """
    gc.collect()
    gc.freeze()


def _metrics(settings: Settings, app: FastAPI) -> Metrics | None:
    """Create this process's metrics when they are on; serve them here unless elsewhere."""
    if not settings.metrics_on:
        return None  # prometheus_client is not even imported
    from kavach.server.metrics.exposition import metrics_router
    from kavach.server.metrics.registry import Metrics

    metrics = Metrics.for_this_process()
    if settings.metrics_on_api_port:
        app.include_router(metrics_router(metrics.registry))
    return metrics


def create_app(settings: Settings | None = None, *, keys: KeyMaterial | None = None) -> FastAPI:
    """Validate settings and keys, then assemble the app (the database opens at start-up)."""
    settings = settings or get_settings()
    check_startable(settings)
    keys = keys or load_keys(settings)
    cors_origins = parse_cors_origins(settings.cors_origins)
    configure_logging(settings.log_level, json=renders_json(settings.chosen_log_format))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings, keys, metrics)
        for sessions in (runtime.sessionmaker, runtime.read_sessionmaker):
            audit_chain.attach(sessions, runtime.audit_key)
        try:
            if settings.auto_migrate:
                await migrate(runtime.engine, settings)
            app.state.runtime = runtime
            runtime.start_background()
            _freeze_start_up_objects()
            with stopping.noticing_stop():
                yield
        finally:
            await runtime.close()
            if metrics is not None:
                metrics.close()

    app = KavachAPI(
        # Kavach's own metrics (/metrics) and request log describe its requests; FastAPI's
        # OpenTelemetry hooks would otherwise check for providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Kavach",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        # FastAPI's docs pages load Swagger UI from a CDN and start it with an inline
        # script; install_api_docs serves a page and files of our own instead.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    # Requests are matched against routers in this order: the hottest route comes first.
    api_routers = (
        secrets_router.router,
        secrets_router.feed_router,
        auth_router.router,
        _meta_router(),
        iam_router.router,
        members_router.router,
        user_groups_router.router,
        service_tokens.router,
        workload_router.router,
        workload_router.exchange_router,
        providers_router.router,
        sync_router.router,
        webhooks_router.router,
        audit_router.router,
    )
    for api_router in api_routers:
        app.include_router(api_router)
    app.include_router(health.router)
    metrics = _metrics(settings, app)
    app.include_router(device_page.router)
    app.include_router(oidc_pages.router)
    app.include_router(signin_page.router)
    app.include_router(dashboard_router)
    app.include_router(home.router)
    install_api_docs(app)
    install_error_handlers(app)
    if cors_origins:
        _allow_cors(app, cors_origins)
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, metrics=metrics
    )
    return app
