"""The OpenID Connect provider fixture, driven end to end without Kavach."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.oidc.browser import sign_in, sign_in_async
from tests.oidc.provider import OidcProvider, ProviderAccount, new_signing_key, public_jwk

REDIRECT_URI = "http://127.0.0.1:1/cb"
SECRET = "fixture-client-secret"
ALICE = ProviderAccount(
    login="alice",
    sub="sub-alice",
    email="alice@example.com",
    name="Alice Example",
    preferred_username="alice",
    groups=("admins", "devs"),
)
CLIENTS = [
    {"client_id": "basic", "client_secret": SECRET, "redirect_uris": [REDIRECT_URI]},
    {
        "client_id": "post",
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_post",
    },
    {"client_id": "public", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
    {
        "client_id": "machine",
        "client_secret": SECRET,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    },
]


@pytest.fixture(scope="module")
def first_key() -> dict[str, Any]:
    return new_signing_key("first")


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, first_key: dict[str, Any]
) -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        provider.start(tmp_path_factory.mktemp("oidc"), CLIENTS, [ALICE], [first_key])
        yield provider


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


def authorization(
    provider: OidcProvider, client_id: str, *, pkce: bool = True, scope: str = ""
) -> Authorization:
    """An authorization request as a relying party would build it."""
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    # RFC 7636: 43 to 128 characters, which the provider checks.
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": scope or "openid email profile groups",
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        params["code_challenge"] = challenge.rstrip(b"=").decode()
        params["code_challenge_method"] = "S256"
    url = f"{provider.metadata['authorization_endpoint']}?{urlencode(params)}"
    return Authorization(url, state, nonce, verifier)


def callback(redirect: str, auth: Authorization) -> dict[str, str]:
    """The relying party's side of the redirect: its parameters, state checked."""
    assert redirect.startswith(f"{REDIRECT_URI}?"), redirect
    params = {name: values[0] for name, values in parse_qs(urlsplit(redirect).query).items()}
    assert params["state"] == auth.state
    return params


def redeem(
    provider: OidcProvider, client_id: str, code: str, auth: Authorization
) -> dict[str, Any]:
    """Exchange the code at the token endpoint the way the client authenticates there."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": auth.verifier,
    }
    basic = None
    if client_id == "basic":
        basic = httpx.BasicAuth(client_id, SECRET)
    elif client_id == "post":
        form |= {"client_id": client_id, "client_secret": SECRET}
    else:
        form |= {"client_id": client_id}
    response = httpx.post(provider.metadata["token_endpoint"], data=form, auth=basic)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def id_token_claims(
    provider: OidcProvider, id_token: str, client_id: str, auth: Authorization
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ID token's header and claims, its signature checked against the provider's JWKS."""
    header = jwt.get_unverified_header(id_token)
    jwks = jwt.PyJWKSet.from_dict(httpx.get(provider.metadata["jwks_uri"]).json())
    claims = jwt.decode(
        id_token,
        jwks[header["kid"]],
        algorithms=["RS256"],
        audience=client_id,
        issuer=provider.issuer,
    )
    assert claims["nonce"] == auth.nonce
    return header, claims


def signed_in(
    provider: OidcProvider, client_id: str = "basic"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Sign Alice in with a fresh browser; return the tokens, ID token header and claims."""
    auth = authorization(provider, client_id)
    with httpx.Client() as browser:
        params = callback(sign_in(browser, auth.url, login="alice"), auth)
    assert params["iss"] == provider.issuer
    tokens = redeem(provider, client_id, params["code"], auth)
    header, claims = id_token_claims(provider, tokens["id_token"], client_id, auth)
    return tokens, header, claims


@pytest.mark.parametrize("client_id", ["basic", "post", "public"])
def test_code_flow_gives_the_claims_in_the_id_token_and_userinfo(
    provider: OidcProvider, client_id: str
) -> None:
    tokens, header, claims = signed_in(provider, client_id)
    assert header == {"alg": "RS256", "kid": "first"}
    assert {name: claims[name] for name in ALICE.claims()} == ALICE.claims()
    userinfo = httpx.get(
        provider.metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json() == ALICE.claims()


def test_the_accounts_file_is_read_at_each_sign_in(provider: OidcProvider) -> None:
    provider.set_accounts([replace(ALICE, groups=("devs",))])
    try:
        _tokens, _header, claims = signed_in(provider)
    finally:
        provider.set_accounts([ALICE])
    assert claims["groups"] == ["devs"]
    assert signed_in(provider)[2]["groups"] == ["admins", "devs"]


def test_a_restart_with_a_new_key_first_signs_with_it(
    provider: OidcProvider, first_key: dict[str, Any]
) -> None:
    second = new_signing_key("second")
    assert provider.restart(keys=[second, first_key]) == provider.issuer
    assert signed_in(provider)[1]["kid"] == "second"
    published = httpx.get(provider.metadata["jwks_uri"]).json()["keys"]
    assert [key["kid"] for key in published] == ["second", "first"]
    assert all("d" not in key for key in published)
    provider.restart(keys=[first_key])
    assert signed_in(provider)[1]["kid"] == "first"


def test_a_second_sign_in_in_the_same_browser_asks_nothing(provider: OidcProvider) -> None:
    with httpx.Client() as browser:
        first = authorization(provider, "basic")
        callback(sign_in(browser, first.url, login="alice"), first)
        again = authorization(provider, "basic")
        assert "code" in callback(sign_in(browser, again.url, login=None), again)


async def test_the_async_browser_signs_in(provider: OidcProvider) -> None:
    auth = authorization(provider, "public")
    async with httpx.AsyncClient() as browser:
        params = callback(await sign_in_async(browser, auth.url, login="alice"), auth)
    assert "code" in params


def test_an_unknown_login_is_denied(provider: OidcProvider) -> None:
    auth = authorization(provider, "basic")
    with httpx.Client() as browser:
        params = callback(sign_in(browser, auth.url, login="mallory"), auth)
    assert params["error"] == "access_denied"
    assert "code" not in params


def test_a_browser_signed_in_as_a_removed_account_must_sign_in_again(
    provider: OidcProvider,
) -> None:
    with httpx.Client() as browser:
        first = authorization(provider, "basic")
        callback(sign_in(browser, first.url, login="alice"), first)
        provider.set_accounts([])
        try:
            again = authorization(provider, "basic")
            params = callback(sign_in(browser, again.url, login="alice"), again)
        finally:
            provider.set_accounts([ALICE])
    assert params["error"] == "access_denied"


def test_refused_consent_is_denied(provider: OidcProvider) -> None:
    auth = authorization(provider, "basic")
    with httpx.Client() as browser:
        params = callback(sign_in(browser, auth.url, login="alice", consent=False), auth)
    assert params["error"] == "access_denied"


def test_pkce_is_required(provider: OidcProvider) -> None:
    auth = authorization(provider, "basic", pkce=False)
    with httpx.Client() as browser:
        params = callback(sign_in(browser, auth.url, login="alice"), auth)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_client_credentials(provider: OidcProvider) -> None:
    response = httpx.post(
        provider.metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=httpx.BasicAuth("machine", SECRET),
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_a_provider_that_cannot_start_says_why(tmp_path: Path, first_key: dict[str, Any]) -> None:
    with OidcProvider() as provider, pytest.raises(RuntimeError) as failure:
        provider.start(tmp_path, CLIENTS, [ALICE], [public_jwk(first_key)])
    assert "exited at start" in str(failure.value)
    assert "jwks.keys[0].d configuration must be a non-empty string" in str(failure.value)
