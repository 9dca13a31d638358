"""Start the API server under uvicorn after validating settings, keys, address and migrations."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from kavach import __version__
from kavach.server.crypto.keys import load_keys
from kavach.server.db.engine import describe_database
from kavach.server.db.migrate import migrate_blocking
from kavach.server.listener import (
    AnnouncingServer,
    announce_once_connectable,
    bind_listener,
    listen_url,
    printer,
)
from kavach.server.logging import configure_logging, renders_json
from kavach.server.settings import Settings, check_startable, get_settings

APP = "kavach.server.app:create_app"


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
    """Check everything that can fail early, serve, and say where once listening."""
    settings = get_settings()
    check_startable(settings)
    configure_logging(settings.log_level, json=renders_json(settings.chosen_log_format))
    # Bound first, so a port in use is reported before keys or a database are made, and
    # held, so no other process takes it meanwhile.
    listener = bind_listener(host, port)
    with ExitStack() as stack:
        stack.callback(listener.close)
        keys = load_keys(settings)
        migrate_blocking(settings)
        key_source = (
            "generated keys in " + str(settings.data_dir) if keys.generated else "configured keys"
        )
        metrics_at = _metrics(settings, stack)
        lines = [
            f"Kavach {__version__} listening on {listen_url(host, port)} "
            f"({describe_database(settings)}, {settings.mode.value} mode, {key_source}, "
            f"{workers} worker{'s' if workers != 1 else ''})"
        ]
        if metrics_at is not None:
            lines.append(f"Metrics on http://{metrics_at}/metrics")
        options = _options(settings, host=host, port=port, workers=workers)
        if workers == 1:
            _serve_one(uvicorn.Config(APP, **options), listener, printer(lines))
            return
        # uvicorn's supervisor binds the socket its workers share: hand the address over.
        listener.close()
        with announce_once_connectable(host, port, printer(lines)):
            uvicorn.run(APP, **options)


def _options(settings: Settings, *, host: str, port: int, workers: int) -> dict[str, Any]:
    """Return uvicorn's settings for this server."""
    return {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        # The client address (rate limits, logs, audit) is the TCP peer, or, when that peer is
        # a listed proxy, the last X-Forwarded-For entry that is not itself a listed proxy.
        "proxy_headers": bool(settings.proxy_list),
        "forwarded_allow_ips": settings.proxy_list or None,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }


def _serve_one(
    config: uvicorn.Config, listener: socket.socket, announce: Callable[[], None]
) -> None:
    """Serve in this process on `listener`, as uvicorn.run does for one worker."""
    server = AnnouncingServer(config, announce)
    # Once shut down, uvicorn raises a Ctrl-C it caught again: the stop it asked for.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
