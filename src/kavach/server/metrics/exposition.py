"""GET /metrics: on the API port, or on a listener of its own in the server's main process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kavach.server.errors import ConfigurationError
from kavach.server.metrics.workers import LiveWorkers
from kavach.server.settings import split_host_port


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    """Return the route that serves `registry` at /metrics on the API port."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Return the metrics in the format the scraper asked for."""
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        # Reading every worker's files takes a moment: not on the event loop.
        body = await run_in_threadpool(encode, registry)
        return Response(body, media_type=content_type)

    return router


@contextmanager
def metrics_listener(address: str, directory: str) -> Iterator[None]:
    """Serve every worker's metrics on `address` (host:port) until the context ends."""
    host, port = split_host_port(address)
    registry = CollectorRegistry()
    LiveWorkers(directory, registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ConfigurationError(
            f"cannot serve metrics on {address} (KAVACH_METRICS_ADDR): {error.strerror}"
        ) from None
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
