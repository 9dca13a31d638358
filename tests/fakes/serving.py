"""Run a fake's ASGI app on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    what: str,
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    port: int = 0,
) -> Iterator[str]:
    """Serve `app` (over HTTPS when given a certificate) until the block ends; yield its URL.

    On `port` if given (a fake that comes back where it was), else on a free one.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=None if cert_file is None else str(cert_file),
        ssl_keyfile=None if key_file is None else str(key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.01)
        yield f"{'http' if cert_file is None else 'https'}://127.0.0.1:{port}"
    finally:
        # Idle keep-alive connections a client never closed would hold a graceful shutdown up.
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
        sock.close()
