"""Access tokens (short-lived JWTs) and opaque random tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from kavach.server.errors import InvalidToken, TokenExpired

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a credential
# A browser's session cookie: the same claims, a longer life (bounded by its login session).
BROWSER_TOKEN_TYPE = "browser"  # noqa: S105
_USER_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, BROWSER_TOKEN_TYPE})
REFRESH_TOKEN_PREFIX = "kvr_"  # noqa: S105
# Recognisable by secret scanners, like ghp_ for GitHub.
SERVICE_TOKEN_PREFIX = "kvt_"  # noqa: S105
_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "typ", "sid"]


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: int


@dataclass(frozen=True)
class IssuedAccessToken:
    """A freshly signed access token and its lifetime in seconds."""

    token: str
    expires_in: int


class AccessTokens:
    """Sign and verify access tokens with the server's JWT key."""

    def __init__(self, *, key: bytes, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        now: datetime,
        kind: str = ACCESS_TOKEN_TYPE,
        ttl_seconds: int | None = None,
    ) -> IssuedAccessToken:
        """Sign a new access token (or a browser's session token) for a user's login session."""
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "typ": kind,
            "jti": secrets.token_urlsafe(12),
            "iat": int(now.timestamp()),
            # Rounded up, so the token lives at least the advertised expires_in.
            "exp": math.ceil((now + timedelta(seconds=ttl)).timestamp()),
        }
        token = jwt.encode(claims, self._key, algorithm=_ALGORITHM)
        return IssuedAccessToken(token=token, expires_in=ttl)

    def verify(self, token: str) -> AccessClaims:
        """Verify signature, issuer, audience, expiry and type, or raise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("access token expired; refresh it") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid access token") from exc
        if claims.get("typ") not in _USER_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        try:
            return AccessClaims(
                user_id=uuid.UUID(str(claims["sub"])),
                session_id=uuid.UUID(str(claims["sid"])),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, TypeError) as exc:
            raise InvalidToken("invalid access token") from exc


def new_refresh_token() -> str:
    """Return a new opaque refresh token."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_service_token() -> str:
    """Return a new service token."""
    return SERVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_device_code() -> str:
    """Return a new opaque device code."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Hash a high-entropy token for storage and lookup."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
