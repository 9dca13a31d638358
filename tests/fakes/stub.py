"""A misbehaving remote: whatever is asked, it gives one scripted answer (a redirect, an error).

It stands for a provider URL that points somewhere it should not, to check what the provider
clients do with such an answer: `with serve_stub(Stub(307, {"Location": url})) as base: ...`
(over HTTPS when given the files of `tests.fakes.azure.make_tls_files`). `requests` records
the method and path of each request that arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.fakes.azure import TlsFiles
from tests.fakes.serving import serve_in_thread


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
    with serve_in_thread(
        stub,
        "the stub server",
        cert_file=None if tls is None else tls.cert_file,
        key_file=None if tls is None else tls.key_file,
    ) as url:
        yield url
