"""Security headers on every response, and the parsing of the CORS origins setting.

`SecurityHeadersMiddleware` is pure ASGI and wraps the whole application (error pages
included). It adds a header only when the response did not set it, so a page with its own
policy (the device page) keeps it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kavach.server.errors import ConfigurationError

API_PATH = "/api/v1/"
DOCS_PATH = "/api/v1/docs"
STATIC_PATH = "/static/"
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts are not ours to decide

_EVERYWHERE = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# JSON needs no sources at all; nothing may frame it.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive API docs run Swagger UI from this server's own files (no inline script,
# no other host); its style sheet draws icons with data: images; it fetches the OpenAPI
# description and, for "Try it out", the API itself.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def headers_for(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Return the headers a response to this request should carry."""
    path: str = scope.get("path", "")
    extra = list(_EVERYWHERE)
    extra.append((b"content-security-policy", DOCS_CSP if path == DOCS_PATH else API_CSP))
    if path.startswith(API_PATH) or path == API_PATH.rstrip("/"):
        extra.append((b"cache-control", b"no-store"))
    elif path.startswith(STATIC_PATH):
        # The docs' files change with an upgrade under the same names: revalidate (ETag).
        extra.append((b"cache-control", b"no-cache"))
    # "https" also when a trusted proxy said so: uvicorn applies X-Forwarded-Proto from
    # KAVACH_TRUSTED_PROXIES only. Over plain HTTP the header would mean nothing.
    if scope.get("scheme") == "https":
        extra.append((b"strict-transport-security", HSTS.encode()))
    return extra


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_cors_origins(text: str | None) -> list[str]:
    """Return the origins KAVACH_CORS_ORIGINS allows (comma-separated); empty means CORS off."""
    origins: list[str] = []
    for part in (text or "").split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        if origin == "*":
            origins.append(origin)
            continue
        parsed = urlsplit(origin)
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            parsed = urlsplit("")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(
                f"KAVACH_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com"
            )
        if parsed.path or parsed.query or parsed.fragment or parsed.username:
            raise ConfigurationError(
                f"KAVACH_CORS_ORIGINS: {origin!r} must be scheme://host[:port] only"
            )
        origins.append(origin)
    return origins
