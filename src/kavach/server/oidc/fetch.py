"""Fetch an issuer's discovery document and key set under the outbound rules of sync providers.

Issuers are named by admins (a workload trust, a sign-in provider), so what the server
fetches from them follows `providers.egress`: public addresses only unless
`KAVACH_SYNC_ALLOW_PRIVATE_TARGETS` (not production) allows others, https only in that case,
no redirects, and a bounded answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from kavach.server.errors import IdentityProviderError, TargetNotAllowed
from kavach.server.oidc.keys import FetchJson
from kavach.server.providers.egress import Egress

# Discovery documents and key sets are a few kilobytes; a larger answer is not one.
MAX_DOCUMENT_BYTES = 256 * 1024
_SHOWN_URL = 200


def _shown(url: str) -> str:
    return url if len(url) <= _SHOWN_URL else url[:_SHOWN_URL] + "…"


def allowed_scheme(url: str, *, allow_private: bool) -> bool:
    """Say whether a URL's scheme may be fetched: https, or http where private targets are."""
    scheme = urlsplit(url).scheme
    return scheme == "https" or (scheme == "http" and allow_private)


def provider_fetcher(http: httpx.AsyncClient) -> FetchJson:
    """Return the `FetchJson` of the operator's sign-in providers: any address may be theirs.

    The operator configured them, and a company's provider often sits on its own network;
    the size bound, the scheme rule and no redirects still hold.
    """
    return egress_fetcher(http, Egress(allow_private=True))


def egress_fetcher(http: httpx.AsyncClient, egress: Egress) -> FetchJson:
    """Return a `FetchJson` that reaches only what the egress policy allows."""

    async def fetch(url: str) -> Any:
        if not allowed_scheme(url, allow_private=egress.allow_private):
            raise IdentityProviderError(f"{_shown(url)} is not an https URL")
        host = urlsplit(url).hostname or ""
        body = bytearray()
        try:
            async with http.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                follow_redirects=False,
                extensions=egress.extensions(host),
            ) as response:
                if response.status_code != 200:
                    raise IdentityProviderError(
                        f"{_shown(url)} answered HTTP {response.status_code}"
                    )
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IdentityProviderError(
                            f"{_shown(url)} answered more than {MAX_DOCUMENT_BYTES} bytes"
                        )
        except TargetNotAllowed as exc:
            raise IdentityProviderError(exc.message) from None
        except httpx.TimeoutException:
            raise IdentityProviderError(f"{_shown(url)} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise IdentityProviderError(
                f"could not reach {_shown(url)} ({type(exc).__name__})"
            ) from None
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise IdentityProviderError(f"{_shown(url)} did not answer JSON") from None

    return fetch
