"""A browser's session: an HttpOnly, SameSite cookie holding a signed session token.

The cookie's token names a login session like a bearer access token does, so the gate
authenticates it the same way (and a revoked session ends it at once). A request that
changes something and is authenticated by the cookie must also carry the session's CSRF
token in `X-CSRF-Token`: a page of another site can make the browser send the cookie, but
cannot read the token (it is derived from the cookie with the server's key).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.responses import Response

SESSION_COOKIE = "kavach_session"
# Readable by the dashboard's scripts (not HttpOnly): what they send back as the header.
CSRF_COOKIE = "kavach_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(key: bytes, session_token: str) -> str:
    """Return the CSRF token that goes with a session cookie."""
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_matches(key: bytes, session_token: str, sent: str | None) -> bool:
    """Say whether a request's CSRF header is the one its session cookie calls for."""
    return sent is not None and hmac.compare_digest(csrf_token(key, session_token), sent)


def start_session(response: Response, *, key: bytes, token: str, ttl: int, secure: bool) -> None:
    """Set a new browser session's cookies: the session (HttpOnly) and its CSRF token."""
    response.set_cookie(
        SESSION_COOKIE, token, max_age=ttl, path="/", secure=secure, httponly=True, samesite="lax"
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token(key, token),
        max_age=ttl,
        path="/",
        secure=secure,
        httponly=False,  # the dashboard's scripts read it to send X-CSRF-Token
        samesite="strict",
    )


def end_session(response: Response) -> None:
    """Clear a browser session's cookies (the session itself is revoked by the caller)."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
