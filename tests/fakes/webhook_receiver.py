"""A webhook receiver on 127.0.0.1: keeps what it is sent, answers each path as scripted.

    with serve_receiver() as receiver:
        receiver.answers["/flaky"] = [500, 500]  # then 200
        ... receiver.wait_for(lambda got: len(got) == 3)

Every request is kept (`received`: path, headers, raw body); `verify` checks a signature
the way the README tells receivers to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.serving import serve_in_thread

REPLAY_WINDOW_SECONDS = 300
POLL_SECONDS = 0.02


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """Check a Kavach-Signature header: HMAC-SHA-256 of `t.body`, at most 5 minutes old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), given)


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # when it arrived (time.monotonic)

    @property
    def data(self) -> Any:
        """Return the body as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the receiver was sent, and what it answers next on each path (200 after)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        """Return what was sent to one path, in order."""
        with self._lock:
            return [got for got in self.received if got.path == path]

    async def handle(self, request: Request) -> Response:
        """Keep the request; answer the path's next scripted status."""
        body = await request.body()
        got = Received(request.url.path, dict(request.headers), body, time.monotonic())
        with self._lock:
            self.received.append(got)
            script = self.answers.get(got.path) or []
            status = script.pop(0) if script else 200
        return Response(status_code=status)

    def _now(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until `done` holds for what was received; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done(received := self._now()):
            assert time.monotonic() < deadline, f"the receiver got {len(received)} requests"
            time.sleep(POLL_SECONDS)
        return received

    async def arrived(self, done: Callable[[list[Received]], bool]) -> list[Received]:
        """As wait_for (10 s), yielding to the loop an in-process server's dispatcher runs on."""
        for _ in range(int(10 / POLL_SECONDS)):
            if done(received := self._now()):
                return received
            await asyncio.sleep(POLL_SECONDS)
        raise AssertionError(f"the receiver got {len(self._now())} requests")


@contextmanager
def serve_receiver(receiver: Receiver | None = None, *, port: int = 0) -> Iterator[Receiver]:
    """Serve a receiver (a fresh one unless given) until the block ends."""
    receiver = receiver or Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    with serve_in_thread(app, "webhook receiver", port=port) as url:
        receiver.url = url
        yield receiver
