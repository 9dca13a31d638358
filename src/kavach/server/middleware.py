"""ASGI middleware: request ids, one structured log line per request, body size limit."""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kavach.server.api import error_response
from kavach.server.logging import get_logger

if TYPE_CHECKING:
    from kavach.server.metrics.registry import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("kavach.request")


def _mount(scope: Scope) -> str | None:
    """Return the prefix of the mounted app that answered (the docs' files), if any."""
    # Routing added the mount's prefix to root_path; a fixed string, never a file's name.
    prefix: str = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return prefix or None


class _BodyTooLarge(HTTPException):
    """Raised inside receive() when the body passes the limit.

    An HTTPException, so that the framework code reading the body (which turns other errors
    into "400 cannot parse") passes it on to the error handlers as a 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class RequestContextMiddleware:
    """Assign a request id, log and count the request when it ends, and cap body size."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if self._declared_length(scope) > self.max_body_bytes:
                raise _BodyTooLarge(self.max_body_bytes)
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if response_started:
                raise
            response = error_response(
                413, "payload_too_large", f"request body over {self.max_body_bytes} bytes"
            )
            await response(scope, receive, send_with_id)
        finally:
            # The route's template, never the path: it holds names.
            route = getattr(scope.get("route"), "path", None) or _mount(scope) or "unmatched"
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_request(route, scope["method"], status, seconds)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=(scope.get("client") or (None,))[0],
            )
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
                return str(value.decode("ascii"))
        return os.urandom(16).hex()  # 128 random bits, without building a UUID

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0
