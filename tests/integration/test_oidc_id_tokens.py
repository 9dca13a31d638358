"""Every way an ID token can be wrong, sent by a test issuer through the real sign-in path.

The provider here is tests.fakes.oidc_issuer: its token endpoint answers whatever ID token
a test mints, so each check of the relying party meets the token that must fail it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc.jwk import OctKey
from sqlalchemy import func, select

from kavach.server.audit.models import AuditEvent
from kavach.server.iam.models import User
from tests.conftest import InProcessServer
from tests.fakes.oidc_issuer import OidcIssuer, serve_oidc_issuer
from tests.integration.test_metrics import scrape

CLIENT_ID = "kavach"
SECRET = "forge-client-secret"


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    with serve_oidc_issuer() as served:
        yield served


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Metrics on the API port: sign-ins are counted."""
    return {"metrics_enabled": True}


@pytest.fixture
def auth_overrides(issuer: OidcIssuer) -> dict[str, object]:
    return {
        "oidc_providers": [
            {
                "name": "forge",
                "issuer": issuer.url,
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "allow_all_users": True,
            }
        ]
    }


Claims = dict[str, Any]
Minter = Callable[[OidcIssuer, str], str]  # the issuer, the nonce asked for: a token


def _claims(issuer: OidcIssuer, asked_nonce: str, /, **changes: Any) -> Claims:
    now = int(time.time())
    claims: Claims = {
        "iss": issuer.url,
        "aud": CLIENT_ID,
        "sub": "person-1",
        "iat": now,
        "exp": now + 300,
        "nonce": asked_nonce,
        "preferred_username": "pat",
        "email": "pat@example.com",
        "email_verified": True,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


async def _sign_in(
    server: InProcessServer, issuer: OidcIssuer, make_token: Callable[[str], str]
) -> httpx.Response:
    """Go to the issuer and back, its token endpoint answering `make_token(nonce)`."""
    out = await server.client.get("/oidc/forge/login")
    assert out.status_code == 303, out.text
    async with httpx.AsyncClient() as browser:
        asked = await browser.get(out.headers["location"])
    assert asked.status_code == 302
    nonce = issuer.authorize_requests[-1]["nonce"]
    issuer.on_token = lambda form: {
        "access_token": "issuer-access-token",
        "token_type": "Bearer",
        "id_token": make_token(nonce),
    }
    back = urlsplit(asked.headers["location"])
    return await server.client.get(f"{back.path}?{back.query}")


async def _users(server: InProcessServer) -> int:
    async with server.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_a_good_token_signs_in_with_pkce_and_the_client_secret(
    server: InProcessServer, issuer: OidcIssuer
) -> None:
    answer = await _sign_in(server, issuer, lambda nonce: issuer.mint(_claims(issuer, nonce)))
    assert answer.status_code == 303, answer.text
    asked = issuer.authorize_requests[-1]
    assert (asked["code_challenge_method"], asked["response_type"]) == ("S256", "code")
    assert asked["scope"] == "openid email profile"
    sent = issuer.token_requests[-1]
    assert sent["grant_type"] == "authorization_code"
    assert len(sent["code_verifier"]) >= 43
    assert "client_secret" not in sent  # client_secret_basic: in the Authorization header
    assert await _users(server) == 1


WRONG: dict[str, tuple[Minter, str]] = {
    "another issuer": (
        lambda i, n: i.mint(_claims(i, n, iss="https://evil.example")),
        "issuer",
    ),
    "another audience": (lambda i, n: i.mint(_claims(i, n, aud="someone-else")), "audience"),
    "several audiences, azp another": (
        lambda i, n: i.mint(_claims(i, n, aud=[CLIENT_ID, "other"], azp="other")),
        "audience",
    ),
    "another nonce": (lambda i, n: i.mint(_claims(i, n, nonce="replayed")), "nonce"),
    "no nonce": (lambda i, n: i.mint(_claims(i, n, nonce=None)), "nonce"),
    "expired": (
        lambda i, n: i.mint(
            _claims(i, n, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
        ),
        "expired",
    ),
    "ES256, which this client does not use": (
        lambda i, n: i.mint(_claims(i, n), alg="ES256"),
        "algorithm",
    ),
    "HS256 keyed with the client secret": (
        lambda i, n: i.mint(_claims(i, n), alg="HS256", key=OctKey.import_key(SECRET.encode() * 2)),
        "algorithm",
    ),
    "alg none": (lambda i, n: i.mint(_claims(i, n), alg="none"), "algorithm"),
    "a key the issuer does not publish": (
        lambda i, n: i.mint(_claims(i, n), key=i.unpublished_key()),
        "unknown_key",
    ),
    "a published key id over another key's signature": (
        lambda i, n: i.mint(_claims(i, n), key=i.unpublished_key(), headers={"kid": i.signing_kid}),
        "signature",
    ),
}


@pytest.mark.parametrize("case", list(WRONG))
async def test_a_wrong_id_token_is_refused_and_leaves_no_user(
    server: InProcessServer, issuer: OidcIssuer, case: str
) -> None:
    make, reason = WRONG[case]
    answer = await _sign_in(server, issuer, lambda nonce: make(issuer, nonce))
    assert answer.status_code == 401, answer.text
    assert ">id_token_refused<" in answer.text
    assert issuer.url not in answer.text.replace("evil", "")  # no token echoed: no claims
    assert await _users(server) == 0
    async with server.runtime.sessionmaker() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "auth.login").order_by(AuditEvent.id)
        )
    assert event is not None
    assert (event.outcome, event.details["reason"]) == ("failure", reason)


async def test_missing_claims_come_from_userinfo_about_the_same_subject(
    server: InProcessServer, issuer: OidcIssuer
) -> None:
    bare = {"preferred_username": None, "email": None, "email_verified": None}
    issuer.userinfo = {"sub": "someone-else", "preferred_username": "mallory"}
    refused = await _sign_in(
        server, issuer, lambda nonce: issuer.mint(_claims(issuer, nonce, **bare))
    )
    assert refused.status_code == 401
    assert "about someone else" in refused.text
    assert await _users(server) == 0

    issuer.userinfo = {"sub": "person-1", "preferred_username": "pat", "email": "p@example.com"}
    answer = await _sign_in(
        server, issuer, lambda nonce: issuer.mint(_claims(issuer, nonce, **bare))
    )
    assert answer.status_code == 303, answer.text
    me = (await server.client.get("/api/v1/auth/session")).json()["data"]["user"]
    assert (me["login"], me["email"]) == ("pat", "p@example.com")
    issuer.userinfo = None


async def test_a_provider_refusing_the_code_is_a_clear_error(
    server: InProcessServer, issuer: OidcIssuer
) -> None:
    out = await server.client.get("/oidc/forge/login")
    async with httpx.AsyncClient() as browser:
        asked = await browser.get(out.headers["location"])
    issuer.on_token = lambda form: (400, {"error": "invalid_grant", "error_description": "x"})
    back = urlsplit(asked.headers["location"])
    answer = await server.client.get(f"{back.path}?{back.query}")
    assert answer.status_code == 502
    assert "refused the sign-in (invalid_grant)" in answer.text
    assert await _users(server) == 0


async def test_sign_ins_are_counted_by_provider_and_outcome(
    server: InProcessServer, issuer: OidcIssuer
) -> None:
    good = await _sign_in(server, issuer, lambda nonce: issuer.mint(_claims(issuer, nonce)))
    assert good.status_code == 303
    bad = await _sign_in(
        server, issuer, lambda nonce: issuer.mint(_claims(issuer, nonce, aud="other"))
    )
    assert bad.status_code == 401
    _text, samples = await scrape(server)
    counted = {
        labels["outcome"]: count
        for labels, count in samples["kavach_logins_total"]
        if labels["provider"] == "oidc:forge"
    }
    assert counted == {"success": 1.0, "id_token_refused": 1.0}
