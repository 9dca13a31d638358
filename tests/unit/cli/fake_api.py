"""An in-process fake of the Kavach endpoints the CLI uses (IAM routes live in fake_iam*)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from . import fake_iam_routes, fake_secrets, fake_sync
from .fake_iam import FakeIam
from .fake_secrets import FakeSecrets
from .fake_sync import FakeSync

USER = {
    "id": "u-1",
    "login": "alice",
    "name": "Alice Example",
    "email": "alice@example.com",
    "avatar_url": None,
    "provider": "local",
    "created_at": "2025-01-01T00:00:00Z",
}
USER_CODE = "ABCD-EFGH"
DEVICE_CODE = "device-code-1"


def envelope(data: Any = None) -> dict[str, Any]:
    """Return a success envelope."""
    return {"success": True, "data": data, "error": None, "error_code": None}


def failure(
    status: int,
    code: str,
    message: str = "failed",
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Return an error envelope response."""
    body = {"success": False, "data": data, "error": message, "error_code": code}
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    authorization: str | None
    body: Any
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeApi:
    """Token rotation like the real server: single-use refresh tokens, reuse revokes all."""

    access_lifetime: int = 900
    interval: int = 5
    expires_in: int = 600
    verification_uri_complete: bool = True
    identity_provider: str | None = "local"
    healthy: bool = True
    valid_access: set[str] = field(default_factory=set)
    expired_access: set[str] = field(default_factory=set)
    live_refresh: set[str] = field(default_factory=set)
    spent_refresh: set[str] = field(default_factory=set)
    # Answers for successive /auth/device/token polls; then `approved` decides.
    device_script: deque[httpx.Response] = field(default_factory=deque)
    approved: bool = False
    calls: list[Call] = field(default_factory=list)
    iam: FakeIam = field(default_factory=FakeIam)
    secrets: FakeSecrets = field(init=False)
    sync: FakeSync = field(init=False)
    reuse_detected: bool = False
    # Hooks the race tests use to line requests up.
    on_expired: Callable[[], object] | None = None
    refresh_delay: float = 0.0
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.secrets = FakeSecrets(self.iam)
        self.sync = FakeSync(self.iam, self.secrets)

    def issue(self) -> tuple[str, str]:
        """Mint a new valid token pair."""
        with self._lock:
            self._counter += 1
            access, refresh = f"access-{self._counter}", f"refresh-{self._counter}"
            self.valid_access.add(access)
            self.live_refresh.add(refresh)
        return access, refresh

    def expire(self, access: str) -> None:
        """Make an access token answer 401 token_expired from now on."""
        self.valid_access.discard(access)
        self.expired_access.add(access)

    def count(self, path: str) -> int:
        """Return how many requests hit `path`."""
        return sum(1 for call in self.calls if call.path == path)

    @property
    def transport(self) -> httpx.MockTransport:
        """Return an httpx transport that answers from this fake."""
        return httpx.MockTransport(self.handle)

    def token_answer(self) -> dict[str, Any]:
        access, refresh = self.issue()
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.access_lifetime,
            "user": USER,
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        body = json.loads(request.content) if request.content else None
        auth = request.headers.get("Authorization")
        path = request.url.path
        with self._lock:
            params = dict(request.url.params)
            self.calls.append(Call(request.method, path, auth, body, params))
        route = (request.method, path)
        if route == ("GET", "/healthz"):
            status = 200 if self.healthy else 503
            return httpx.Response(status, json={"status": "ok" if self.healthy else "degraded"})
        if route == ("GET", "/api/v1/info"):
            info = {"version": "0.1.0", "identity_provider": "local", "mode": "development"}
            return httpx.Response(200, json=envelope(info))
        if route == ("POST", "/api/v1/auth/device/code"):
            return self._device_code(request)
        if route == ("POST", "/api/v1/auth/device/token"):
            return self._device_token(body)
        if route in (("POST", "/api/v1/auth/device/approve"), ("POST", "/api/v1/auth/device/deny")):
            return self._authorized(auth) or self._decide(path.endswith("approve"), body)
        if route == ("POST", "/api/v1/auth/refresh"):
            return self._refresh(body)
        if route == ("GET", "/api/v1/auth/me"):
            return self._authorized(auth) or httpx.Response(200, json=envelope(USER))
        if route == ("POST", "/api/v1/auth/logout"):
            denied = self._authorized(auth)
            if denied is None and auth:
                self.valid_access.discard(auth.removeprefix("Bearer "))
            return denied or httpx.Response(200, json=envelope(None))
        relative = path.removeprefix("/api/v1")
        token = fake_secrets.token_for(self.iam, auth)
        if relative != path and fake_sync.owns(relative):
            denied = None if token else self._authorized(auth)
            return denied or fake_sync.handle(
                self.sync, token, request.method, relative, params, body
            )
        if relative != path and fake_secrets.owns(relative):
            denied = None if token else self._authorized(auth)
            return denied or fake_secrets.handle(
                self.secrets, token, request.method, relative, params, body
            )
        if relative != path and token is not None:
            # A service token reads its own environment and nothing else of the tree.
            if (request.method, relative) == ("GET", f"/environments/{token.env.id}"):
                return httpx.Response(200, json=envelope(self.iam.node_json(token.env)))
            return failure(404, "not_found", "not found")
        if relative != path and fake_iam_routes.owns(relative):
            denied = self._authorized(auth)
            return denied or fake_iam_routes.handle(
                self.iam, request.method, relative, params, body
            )
        return failure(404, "not_found", f"no route {request.method} {path}")

    def requests(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """Return (method, path, query, body) of every /api/v1 request, path without /api/v1."""
        prefix = "/api/v1"
        return [
            (call.method, call.path.removeprefix(prefix), call.params, call.body)
            for call in self.calls
            if call.path.startswith(prefix)
        ]

    def _authorized(self, auth: str | None) -> httpx.Response | None:
        token = (auth or "").removeprefix("Bearer ")
        if token in self.valid_access:
            return None
        if token in self.expired_access:
            if self.on_expired is not None:
                self.on_expired()
            return failure(401, "token_expired", "the access token has expired")
        return failure(401, "invalid_token", "the bearer token is invalid")

    def _device_code(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.netloc.decode()}/device"
        data = {
            "device_code": DEVICE_CODE,
            "user_code": USER_CODE,
            "verification_uri": base,
            "verification_uri_complete": (
                f"{base}?user_code={USER_CODE}" if self.verification_uri_complete else None
            ),
            "expires_in": self.expires_in,
            "interval": self.interval,
        }
        if self.identity_provider is not None:
            data["identity_provider"] = self.identity_provider
        return httpx.Response(200, json=envelope(data))

    def _decide(self, approve: bool, body: Any) -> httpx.Response:
        """Approve the pending login for the caller (always USER here), or deny it."""
        typed = str(body.get("user_code", "")) if isinstance(body, dict) else ""
        if typed.upper().replace("-", "") != USER_CODE.replace("-", ""):
            return failure(404, "not_found", "unknown, used or expired user code")
        self.approved = approve
        if not approve:
            self.device_script.append(failure(400, "access_denied", "the login was denied"))
        answer = {"user_code": USER_CODE, "approved": approve, "user": USER if approve else None}
        return httpx.Response(200, json=envelope(answer))

    def _device_token(self, body: Any) -> httpx.Response:
        if not isinstance(body, dict) or body.get("device_code") != DEVICE_CODE:
            return failure(400, "invalid_grant", "unknown device code")
        if self.device_script:
            return self.device_script.popleft()
        if self.approved:
            return httpx.Response(200, json=envelope(self.token_answer()))
        return failure(400, "authorization_pending", "waiting for the user")

    def _refresh(self, body: Any) -> httpx.Response:
        token = body.get("refresh_token") if isinstance(body, dict) else None
        if self.refresh_delay:
            time.sleep(self.refresh_delay)  # widen the race window
        with self._lock:
            if token in self.spent_refresh:
                # Like the server: a reused refresh token revokes the whole session.
                self.reuse_detected = True
                self.live_refresh.clear()
                self.valid_access.clear()
                return failure(401, "refresh_token_reused", "refresh token reused")
            if token not in self.live_refresh:
                return failure(401, "invalid_refresh_token", "unknown refresh token")
            self.live_refresh.discard(token)
            self.spent_refresh.add(token)
        answer = self.token_answer()
        del answer["user"]  # the refresh answer need not repeat the user
        return httpx.Response(200, json=envelope(answer))


class FakeServer:
    """Serve a FakeApi over real HTTP on 127.0.0.1, for tests that run `kavach` processes."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        handler = self._handler_class(api)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @staticmethod
    def _handler_class(api: FakeApi) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = httpx.Request(
                    self.command,
                    f"http://{self.headers.get('Host')}{self.path}",
                    headers=dict(self.headers.items()),
                    content=self.rfile.read(length),
                )
                response = api.handle(request)
                response.read()
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler
