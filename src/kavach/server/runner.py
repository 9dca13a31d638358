"""Start the API server under uvicorn after validating settings, keys and migrations."""

from __future__ import annotations

import uvicorn

from kavach import __version__
from kavach.server.crypto.keys import load_keys
from kavach.server.db.engine import describe_database
from kavach.server.db.migrate import migrate_blocking
from kavach.server.settings import check_startable, get_settings


def serve(*, host: str, port: int, workers: int) -> None:
    """Check everything that can fail early, print where we listen, then serve."""
    settings = get_settings()
    check_startable(settings)
    keys = load_keys(settings)
    migrate_blocking(settings)
    key_source = (
        "generated keys in " + str(settings.data_dir) if keys.generated else "configured keys"
    )
    print(
        f"Kavach {__version__} listening on http://{host}:{port} "
        f"({describe_database(settings)}, {settings.mode.value} mode, {key_source}, "
        f"{workers} worker{'s' if workers != 1 else ''})",
        flush=True,
    )
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
