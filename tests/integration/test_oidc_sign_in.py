"""Signing people in with a real OpenID provider (node-oidc-provider), on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text

from kavach.server.access import SYSTEM, RequestOrigin
from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import LoginSession
from kavach.server.iam.models import User, UserGroupMember
from kavach.server.oidc import accounts
from kavach.server.oidc.fetch import provider_fetcher
from kavach.server.oidc.keys import IssuerKeys
from kavach.server.oidc.models import OidcLogin
from tests.conftest import InProcessServer
from tests.integration.helpers import bearer, login
from tests.oidc.browser import sign_in_async
from tests.oidc.provider import OidcProvider, ProviderAccount, new_signing_key

BASE = "http://127.0.0.1:8080"  # the in-process server's address (tests/conftest.py)
CALLBACK = f"{BASE}/oidc/corp/callback"
SECRET = "corp-client-secret"
ALICE = ProviderAccount(
    login="alice",
    sub="sub-alice",
    email="alice@example.com",
    name="Alice Example",
    preferred_username="alice",
    groups=("kavach:acme/backend", "staff"),
)
BOB = ProviderAccount(
    login="bob", sub="sub-bob", email="bob@elsewhere.org", name="Bob", preferred_username="bob"
)
CAROL = ProviderAccount(
    login="carol",
    sub="sub-carol",
    email="carol@elsewhere.org",
    name="Carol",
    preferred_username="carol",
    groups=("kavach-users",),
)
CLIENTS = [
    {"client_id": "kavach", "client_secret": SECRET, "redirect_uris": [CALLBACK]},
    {
        "client_id": "kavach-public",
        "redirect_uris": [f"{BASE}/oidc/public/callback"],
        "token_endpoint_auth_method": "none",
    },
]


@pytest.fixture(scope="module")
def signing_key() -> dict[str, Any]:
    return new_signing_key("first")


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, signing_key: dict[str, Any]
) -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        running.start(tmp_path_factory.mktemp("oidc"), CLIENTS, [ALICE, BOB, CAROL], [signing_key])
        yield running


def _providers(issuer: str) -> list[dict[str, object]]:
    return [
        {
            "name": "corp",
            "display_name": "Corp SSO",
            "issuer": issuer,
            "client_id": "kavach",
            "client_secret": SECRET,
            "scopes": ["openid", "email", "profile", "groups"],
            "allowed_email_domains": ["example.com"],
            "required_groups": ["kavach-users"],
            "group_prefix": "kavach:",
            "group_map": {"staff": "acme/staff"},
        },
        {
            "name": "public",
            "issuer": issuer,
            "client_id": "kavach-public",
            "allow_all_users": True,
        },
    ]


@pytest.fixture
def auth_overrides(provider: OidcProvider) -> dict[str, object]:
    return {"oidc_providers": _providers(provider.issuer)}


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A browser's client for the provider's pages (a fresh cookie jar per test)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE, url
    return f"{parts.path}?{parts.query}"


async def _through_provider(
    server: InProcessServer,
    browser: httpx.AsyncClient,
    start: str,
    login_name: str,
    *,
    consent: bool = True,
) -> tuple[str, httpx.Response]:
    """Go out through the provider from `start` and come back; the callback URL and answer."""
    out = await server.client.get(start)
    assert out.status_code == 303, out.text
    back = await sign_in_async(browser, out.headers["location"], login=login_name, consent=consent)
    return back, await server.client.get(_path(back))


async def _epoch(server: InProcessServer) -> int:
    async with server.runtime.sessionmaker() as session:
        return int(await session.scalar(text("SELECT value FROM access_epoch")) or 0)


async def _count(server: InProcessServer, statement: Any) -> int:
    async with server.runtime.sessionmaker() as session:
        return int(await session.scalar(statement) or 0)


async def test_a_browser_signs_in_and_its_cookie_session_needs_csrf_for_changes(
    server: InProcessServer, browser: httpx.AsyncClient
) -> None:
    listed = (await server.client.get("/api/v1/auth/providers")).json()["data"]
    assert [(p["name"], p["display_name"]) for p in listed] == [
        ("corp", "Corp SSO"),
        ("public", "public"),
    ]
    page = await server.client.get("/login?return_to=/somewhere")
    assert "Sign in with Corp SSO" in page.text
    assert "/oidc/corp/login?return_to=/somewhere" in page.text

    _back, answer = await _through_provider(
        server, browser, "/oidc/corp/login?return_to=/somewhere", "alice"
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/somewhere"
    cookie = answer.cookies.get("kavach_session")
    assert cookie
    set_cookie = answer.headers.get_list("set-cookie")
    session_line = next(line for line in set_cookie if line.startswith("kavach_session="))
    assert "HttpOnly" in session_line
    assert "SameSite=lax" in session_line

    me = (await server.client.get("/api/v1/auth/session")).json()["data"]
    assert me["user"]["login"] == "alice"
    assert me["user"]["provider"] == "oidc:corp"
    csrf = me["csrf_token"]
    assert csrf == server.client.cookies.get("kavach_csrf")

    refused = await server.client.post("/api/v1/organizations/", json={"name": "mine"})
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "csrf_failed"
    wrong = await server.client.post(
        "/api/v1/organizations/", json={"name": "mine"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    guarded = {"X-CSRF-Token": csrf}
    made = await server.client.post(
        "/api/v1/organizations/", json={"name": "mine"}, headers=guarded
    )
    assert made.status_code == 201, made.text
    # The hot secrets routes read the same credential, with the same rule.
    group = await server.client.post(
        f"/api/v1/organizations/{made.json()['data']['id']}/secret-groups",
        json={"name": "app"},
        headers=guarded,
    )
    env = await server.client.post(
        f"/api/v1/secret-groups/{group.json()['data']['id']}/environments",
        json={"name": "dev"},
        headers=guarded,
    )
    versions = f"/api/v1/environments/{env.json()['data']['id']}/secrets/versions"
    change = {"message": "first", "set": {"API_KEY": "k1"}}
    unguarded = await server.client.post(versions, json=change)
    assert (unguarded.status_code, unguarded.json()["error_code"]) == (403, "csrf_failed")
    assert (await server.client.post(versions, json=change, headers=guarded)).status_code == 201
    read = await server.client.get(versions.removesuffix("/versions"))
    assert read.json()["data"]["secrets"] == {"API_KEY": "k1"}

    out = await server.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 200, out.text
    assert server.client.cookies.get("kavach_session") is None
    # The cookie stops working at once, even if a browser kept it.
    server.client.cookies.set("kavach_session", cookie)
    again = await server.client.get("/api/v1/auth/me")
    assert again.status_code == 401


async def test_the_cli_login_is_approved_by_signing_in_at_the_provider(
    server: InProcessServer, browser: httpx.AsyncClient
) -> None:
    started = (await server.client.post("/api/v1/auth/device/code", json={})).json()["data"]
    assert started["identity_provider"] == "oidc"
    device_page = await server.client.get(_path(started["verification_uri_complete"]))
    assert "Sign in with Corp SSO" in device_page.text
    assert "Sign in with public" in device_page.text

    pending = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": started["device_code"]}
    )
    assert pending.json()["error_code"] == "authorization_pending"
    user_code = started["user_code"]
    _back, answer = await _through_provider(
        server, browser, f"/oidc/corp/login?user_code={user_code}", "alice"
    )
    assert answer.status_code == 200, answer.text
    assert f">{user_code}<" in answer.text
    assert answer.cookies.get("kavach_session") is None  # the browser gets no session

    tokens = await server.client.post(
        "/api/v1/auth/device/token", json={"device_code": started["device_code"]}
    )
    assert tokens.status_code == 200, tokens.text
    data = tokens.json()["data"]
    assert data["user"]["login"] == "alice"
    me = await server.client.get("/api/v1/auth/whoami", headers=bearer(data["access_token"]))
    assert me.json()["data"]["user"]["login"] == "alice"
    providers = await _count(
        server, select(func.count()).where(LoginSession.identity_provider == "oidc:corp")
    )
    assert providers == 1


async def test_a_single_provider_links_the_cli_straight_to_it(
    tmp_path: Path, server: InProcessServer
) -> None:
    server.runtime.settings.auth.oidc_providers.pop()
    started = (await server.client.post("/api/v1/auth/device/code", json={})).json()["data"]
    assert started["verification_uri_complete"] == (
        f"{BASE}/oidc/corp/login?user_code={started['user_code']}"
    )


async def test_who_may_sign_in_and_a_refusal_leaves_nothing_behind(
    server: InProcessServer, browser: httpx.AsyncClient
) -> None:
    _back, refused = await _through_provider(server, browser, "/oidc/corp/login", "bob")
    assert refused.status_code == 403
    assert "sign_in_refused" in refused.text
    assert "a verified address at example.com" in refused.text
    assert await _count(server, select(func.count()).select_from(User)) == 0
    async with server.runtime.sessionmaker() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "auth.login").order_by(AuditEvent.id)
        )
    assert event is not None
    assert event.outcome == "failure"
    assert event.details["reason"] == "sign_in_refused"

    # Carol's address is elsewhere too, but she is in the required group.
    async with httpx.AsyncClient(timeout=10) as other_browser:
        _back, admitted = await _through_provider(
            server, other_browser, "/oidc/corp/login", "carol"
        )
    assert admitted.status_code == 303, admitted.text
    # A provider that admits everyone admits Bob (a public client: PKCE alone).
    async with httpx.AsyncClient(timeout=10) as third_browser:
        _back, public = await _through_provider(server, third_browser, "/oidc/public/login", "bob")
    assert public.status_code == 303, public.text


async def test_the_way_back_works_once_and_only_in_the_browser_that_left(
    server: InProcessServer, browser: httpx.AsyncClient
) -> None:
    back, first = await _through_provider(server, browser, "/oidc/corp/login", "alice")
    assert first.status_code == 303
    replayed = await server.client.get(_path(back))
    assert replayed.status_code == 400
    assert "invalid_state" in replayed.text

    # A sign-in link carried to another browser (no state cookie there) is refused.
    out = await server.client.get("/oidc/corp/login")
    back = await sign_in_async(browser, out.headers["location"], login=None)
    async with httpx.AsyncClient(
        transport=server.client._transport, base_url=BASE
    ) as other:  # the same server, another cookie jar
        foreign = await other.get(_path(back))
    assert foreign.status_code == 400
    assert "another browser" in foreign.text
    # The provider saying no is a refusal too, and uses the trip up.
    out = await server.client.get("/oidc/corp/login")
    async with httpx.AsyncClient(timeout=10) as fresh:
        back = await sign_in_async(fresh, out.headers["location"], login="alice", consent=False)
    denied = await server.client.get(_path(back))
    assert denied.status_code == 403
    assert "access_denied" in denied.text
    used = await _count(server, select(func.count()).where(OidcLogin.used_at.is_(None)))
    assert used == 0


async def test_groups_map_to_user_groups_and_leaving_one_removes_access(
    server: InProcessServer, browser: httpx.AsyncClient, provider: OidcProvider
) -> None:
    root = bearer((await login(server, "root"))["access_token"])
    org = await server.client.post("/api/v1/organizations/", json={"name": "acme"}, headers=root)
    org_id = org.json()["data"]["id"]
    for name in ("backend", "staff", "manual"):
        made = await server.client.post(
            "/api/v1/user-groups/", json={"organization_id": org_id, "name": name}, headers=root
        )
        assert made.status_code == 201, made.text
    backend = (
        await server.client.post(
            f"/api/v1/organizations/{org_id}/members",
            json={"user_group": "backend", "role": "viewer"},
            headers=root,
        )
    ).status_code
    assert backend == 200

    _back, answer = await _through_provider(server, browser, "/oidc/corp/login", "alice")
    assert answer.status_code == 303
    seen = await server.client.get(f"/api/v1/organizations/{org_id}")
    assert seen.status_code == 200
    assert seen.json()["data"]["role"] == "viewer"
    async with server.runtime.sessionmaker() as session:
        sources = dict(
            (
                await session.execute(select(UserGroupMember.user_group_id, UserGroupMember.source))
            ).all()
        )
    assert list(sources.values()) == ["oidc:corp", "oidc:corp"]
    # A membership someone added by hand is not the provider's to take away.
    groups = await server.client.get(
        "/api/v1/user-groups/", params={"organization_id": org_id}, headers=root
    )
    manual_id = next(g["id"] for g in groups.json()["data"]["items"] if g["name"] == "manual")
    added = await server.client.post(
        f"/api/v1/user-groups/{manual_id}/members", json={"user": "alice"}, headers=root
    )
    assert added.status_code == 201, added.text

    before = await _epoch(server)
    provider.set_accounts([ProviderAccount(**{**ALICE.__dict__, "groups": ("staff",)}), BOB, CAROL])
    async with httpx.AsyncClient(timeout=10) as again:
        _back, second = await _through_provider(server, again, "/oidc/corp/login", "alice")
    assert second.status_code == 303
    assert await _epoch(server) > before  # every cached answer about alice is void
    gone = await server.client.get(f"/api/v1/organizations/{org_id}")
    assert gone.status_code in (403, 404)
    async with server.runtime.sessionmaker() as session:
        left = (await session.execute(select(UserGroupMember.source))).scalars().all()
    assert sorted(left, key=str) == sorted(["oidc:corp", None], key=str)
    provider.set_accounts([ALICE, BOB, CAROL])


async def test_a_rotated_signing_key_is_fetched_and_used(
    server: InProcessServer,
    browser: httpx.AsyncClient,
    provider: OidcProvider,
    signing_key: dict[str, Any],
) -> None:
    # Refreshes on an unknown key are spaced out; this test rotates at once.
    server.runtime.oidc_issuers = IssuerKeys(provider_fetcher(server.runtime.http), min_refresh=0)
    _back, first = await _through_provider(server, browser, "/oidc/corp/login", "alice")
    assert first.status_code == 303
    provider.restart(keys=[new_signing_key("second"), signing_key])
    try:
        async with httpx.AsyncClient(timeout=10) as again:
            _back, second = await _through_provider(server, again, "/oidc/corp/login", "alice")
        assert second.status_code == 303, second.text
    finally:
        provider.restart(keys=[signing_key])


async def test_a_provider_that_is_down_gets_a_clear_error_and_nothing_is_made(
    tmp_path: Path,
    server: InProcessServer,
    browser: httpx.AsyncClient,
    signing_key: dict[str, Any],
) -> None:
    with OidcProvider() as alone:
        alone.start(
            tmp_path,
            [{**CLIENTS[0], "redirect_uris": [f"{BASE}/oidc/solo/callback"]}],
            [ALICE],
            [signing_key],
        )
        server.runtime.settings.auth.oidc_providers.append(
            server.runtime.settings.auth.oidc_providers[0].model_copy(
                update={"name": "solo", "issuer": alone.issuer}
            )
        )
        out = await server.client.get("/oidc/solo/login")
        assert out.status_code == 303
        back = await sign_in_async(browser, out.headers["location"], login="alice")
        alone.stop()
        answer = await server.client.get(_path(back))
        assert answer.status_code == 502
        assert "identity_provider_error" in answer.text
        assert "could not be reached" in answer.text
        assert await _count(server, select(func.count()).select_from(User)) == 0
        # A new sign-in cannot start while it is down (its metadata is cached: the token
        # endpoint is what fails; a server that never saw it fails at discovery).
        server.runtime.oidc_issuers = IssuerKeys(provider_fetcher(server.runtime.http))
        start = await server.client.get("/oidc/solo/login")
        assert start.status_code == 502
        assert await _count(server, select(func.count()).where(OidcLogin.provider == "solo")) == 1


async def test_the_same_login_elsewhere_is_never_merged_until_an_administrator_links_it(
    server: InProcessServer, browser: httpx.AsyncClient
) -> None:
    local = await login(server, "alice")  # a local user with the login the provider sends
    _back, refused = await _through_provider(server, browser, "/oidc/corp/login", "alice")
    assert refused.status_code == 409
    assert "kavach server link-identity alice --provider corp --subject sub-alice" in refused.text
    assert await _count(server, select(func.count()).select_from(User)) == 1

    corp = server.runtime.settings.auth.oidc_providers[0]
    async with server.runtime.sessionmaker() as session, session.begin():
        await accounts.link(
            session,
            login="alice",
            provider=corp,
            subject="sub-alice",
            actor=SYSTEM,
            origin=RequestOrigin(client_address="local"),
        )
    async with httpx.AsyncClient(timeout=10) as again:
        _back, linked = await _through_provider(server, again, "/oidc/corp/login", "alice")
    assert linked.status_code == 303, linked.text
    me = (await server.client.get("/api/v1/auth/session")).json()["data"]["user"]
    assert (me["id"], me["provider"]) == (local["user"]["id"], "local")
    assert await _count(server, select(func.count()).select_from(User)) == 1


async def test_the_device_page_without_a_code_offers_no_sign_in_links(
    server: InProcessServer,
) -> None:
    page = await server.client.get("/device")
    assert page.status_code == 200
    assert "/oidc/corp/login" not in page.text
    assert "Open the link" in page.text
