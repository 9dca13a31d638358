"""One attempt at a delivery: signed, sent under the egress rules of sync providers.

Webhook URLs are named by admins, so a delivery connects only where a sync provider may
(`providers.egress`: public addresses, checked at connect time, unless private targets are
allowed) and follows no redirect. Neither the URL (a Slack URL is a credential) nor the
secret appears in what an attempt records or logs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from kavach import __version__
from kavach.server.errors import TargetNotAllowed
from kavach.server.oidc.fetch import allowed_scheme
from kavach.server.providers.egress import Egress
from kavach.server.webhooks import signing, targets

MAX_ERROR_CHARS = 255


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, with what sending it needs."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    event_type: str
    body: str
    sealed_target: bytes


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: the answer's status, or why there was none."""

    response_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Say whether the receiver took it (any 2xx)."""
        return self.response_code is not None and 200 <= self.response_code < 300


def headers(claimed: Claimed, secret: str, timestamp: int) -> dict[str, str]:
    """Return a delivery's headers: its event, its id, and the signature of its body."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"Kavach-Webhooks/{__version__}",
        "Kavach-Event": claimed.event_type,
        "Kavach-Delivery": str(claimed.id),
        "Kavach-Signature": signing.header(secret, timestamp, claimed.body.encode()),
    }


async def attempt(
    client: httpx.AsyncClient, egress: Egress, key: bytes, claimed: Claimed
) -> Outcome:
    """Send a delivery once; return the receiver's status, or what went wrong."""
    target = targets.open_target(key, claimed.webhook_id, claimed.sealed_target)
    if target is None:
        return Outcome(error="the webhook's URL and secret do not decrypt (key replaced?)")
    url, secret = target
    if not allowed_scheme(url, allow_private=egress.allow_private):
        return Outcome(error="the URL is not https, which this server requires")
    host = urlsplit(url).hostname or ""
    try:
        async with client.stream(
            "POST",
            url,
            content=claimed.body.encode(),
            headers=headers(claimed, secret, int(time.time())),
            follow_redirects=False,
            extensions=egress.extensions(host),
        ) as response:
            # The answer's body is never read: its status is all a delivery records.
            return Outcome(response_code=response.status_code, error=_status_error(response))
    except TargetNotAllowed:
        return Outcome(error=f"{host} is not a public address; this server does not connect to it")
    except httpx.TimeoutException:
        return Outcome(error="the receiver did not answer in time")
    except httpx.HTTPError as exc:
        return Outcome(error=f"could not reach the receiver ({type(exc).__name__})")


def _status_error(response: httpx.Response) -> str | None:
    if 200 <= response.status_code < 300:
        return None
    if 300 <= response.status_code < 400:
        return f"answered HTTP {response.status_code}; redirects are not followed"
    return f"answered HTTP {response.status_code}"[:MAX_ERROR_CHARS]
