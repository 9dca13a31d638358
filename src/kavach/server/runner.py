"""Start the API server under uvicorn after validating settings, keys and migrations."""

from __future__ import annotations

from contextlib import ExitStack

import uvicorn

from kavach import __version__
from kavach.server.crypto.keys import load_keys
from kavach.server.db.engine import describe_database
from kavach.server.db.migrate import migrate_blocking
from kavach.server.settings import Settings, check_startable, get_settings


def _metrics(settings: Settings, stack: ExitStack) -> str | None:
    """Set up metrics every worker shares; return where a listener of their own serves them."""
    if not settings.metrics_on:
        return None
    from kavach.server.metrics.directory import shared_values

    directory = stack.enter_context(shared_values())
    if settings.metrics_addr is None:
        return None
    # Imported only now: prometheus_client reads the directory's variable when imported.
    from kavach.server.metrics.exposition import metrics_listener

    stack.enter_context(metrics_listener(settings.metrics_addr, directory))
    return settings.metrics_addr


def serve(*, host: str, port: int, workers: int) -> None:
    """Check everything that can fail early, print where we listen, then serve."""
    settings = get_settings()
    check_startable(settings)
    keys = load_keys(settings)
    migrate_blocking(settings)
    key_source = (
        "generated keys in " + str(settings.data_dir) if keys.generated else "configured keys"
    )
    with ExitStack() as stack:
        metrics_at = _metrics(settings, stack)
        print(
            f"Kavach {__version__} listening on http://{host}:{port} "
            f"({describe_database(settings)}, {settings.mode.value} mode, {key_source}, "
            f"{workers} worker{'s' if workers != 1 else ''})",
            flush=True,
        )
        if metrics_at is not None:
            print(f"Metrics on http://{metrics_at}/metrics", flush=True)
        _run(settings, host=host, port=port, workers=workers)


def _run(settings: Settings, *, host: str, port: int, workers: int) -> None:
    uvicorn.run(
        "kavach.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # The client address (rate limits, logs, audit) is the TCP peer, or, when that peer is
        # a listed proxy, the last X-Forwarded-For entry that is not itself a listed proxy.
        proxy_headers=bool(settings.proxy_list),
        forwarded_allow_ips=settings.proxy_list or None,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
