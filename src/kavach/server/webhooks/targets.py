"""A webhook's URL: its form, how it is shown, and how it is sealed with the signing secret.

A Slack incoming-webhook URL is itself a credential (the last path segment), so the URL is
sealed beside the secret and the API shows it with its last path segment and query hidden.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

from kavach.server.crypto.envelope import DecryptionFailed, seal, unseal

MAX_URL_CHARS = 2048
URL_FORM = "must be an http(s) URL with a host, and no user, password or fragment"


def check_url(value: str) -> str:
    """Return the URL if it is one a webhook may name; ValueError saying why not."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError:
        raise ValueError(URL_FORM) from None
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.fragment
    ):
        raise ValueError(URL_FORM)
    return value


def shown(url: str) -> str:
    """Return the URL with its last path segment and its query hidden."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if any(segments):
        last = max(i for i, segment in enumerate(segments) if segment)
        segments = [*segments[:last], "…"]
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{'/'.join(segments)}{query}"


def _aad(webhook_id: uuid.UUID) -> bytes:
    return b"kavach-webhook:" + webhook_id.bytes


def seal_target(key: bytes, webhook_id: uuid.UUID, url: str, secret: str) -> bytes:
    """Seal a webhook's URL and signing secret together, bound to its id."""
    plain = json.dumps({"url": url, "secret": secret}).encode()
    return seal(key, plain, _aad(webhook_id))


def open_target(key: bytes, webhook_id: uuid.UUID, sealed: bytes) -> tuple[str, str] | None:
    """Return a webhook's (URL, signing secret), or None if they no longer decrypt."""
    try:
        plain = json.loads(unseal(key, sealed, _aad(webhook_id)))
    except DecryptionFailed:
        return None
    return str(plain["url"]), str(plain["secret"])
