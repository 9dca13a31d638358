"""Signing secrets and the Kavach-Signature header: HMAC-SHA-256 over `timestamp.body`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of generated secrets, not a secret


def new_secret() -> str:
    """Return a fresh signing secret (shown to its creator once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA-256 of `timestamp.body` under the secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def header(secret: str, timestamp: int, body: bytes) -> str:
    """Return the Kavach-Signature header's value: `t=<unix>,v1=<hex>`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"
