"""A misbehaving remote: whatever is asked, it gives one scripted answer (a redirect, an error).

It stands for a provider URL that points somewhere it should not, to check what the provider
clients do with such an answer: `with serve_stub(Stub(307, {"Location": url})) as base: ...`
(over HTTPS when given the files of `tests.fakes.azure.make_tls_files`). `requests` records
the method and path of each request that arrived.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.fakes.azure import TlsFiles


@dataclass
class Stub:
    """The one answer, and the requests that got it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    requests: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer any HTTP request with the scripted status, headers and body."""
        request = Request(scope, receive)
        self.requests.append(f"{request.method} {request.url.path}")
        answer = Response(self.body, self.status, self.headers, media_type="application/json")
        await answer(scope, receive, send)


@contextmanager
def serve_stub(stub: Stub, tls: TlsFiles | None = None) -> Iterator[str]:
    """Run the stub on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        stub,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stub server did not start")
            time.sleep(0.01)
        yield f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
    finally:
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
        sock.close()
