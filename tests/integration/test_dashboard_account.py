"""Signing a browser in by a code (local approval, GitHub), and a person's own sessions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from kavach.server.auth.signin_page import CODE_COOKIE
from tests.conftest import InProcessServer
from tests.fakes.github import FakeGitHubState, create_fake_github
from tests.integration.helpers import approve, bearer, login
from tests.integration.test_dashboard import Browser
from tests.integration.test_github_login import _GITHUB, GITHUB

_CODE = re.compile(r'id="user_code">([A-Z]{4}-[A-Z]{4})<')


def _new_browser(server: InProcessServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=server.client._transport, base_url=str(server.client.base_url)
    )


async def _start(browser: httpx.AsyncClient, return_to: str = "") -> str:
    page = await browser.post("/login/code", data={"return_to": return_to} if return_to else {})
    assert page.status_code == 200, page.text
    assert "Set-Cookie" in page.headers and "HttpOnly" in page.headers["Set-Cookie"]
    assert "Path=/login/code" in page.headers["Set-Cookie"]
    found = _CODE.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def _wait(browser: httpx.AsyncClient, query: str = "") -> httpx.Response:
    return await browser.get(f"/login/code/wait{query}", headers={"HX-Request": "true"})


async def test_a_browser_signs_in_with_a_code_approved_from_a_terminal(
    server: InProcessServer,
) -> None:
    browser = _new_browser(server)
    choices = await browser.get("/login?return_to=/ui/account")
    assert choices.status_code == 200 and "Sign in with a code" in choices.text
    assert 'name="return_to" value="/ui/account"' in choices.text

    user_code = await _start(browser, "/ui/account")
    waiting = await _wait(browser, "?return_to=/ui/account")
    assert waiting.status_code == 200 and 'hx-trigger="load delay:' in waiting.text
    assert "kavach_session" not in browser.cookies

    # Somebody else's browser, holding no code of its own, collects nothing.
    stranger = _new_browser(server)
    refused = await _wait(stranger)
    assert "has ended" in refused.text and "kavach_session" not in stranger.cookies

    alice = await login(server, "alice")
    approved = await server.client.post(
        "/api/v1/auth/device/approve",
        json={"user_code": user_code},
        headers=bearer(alice["access_token"]),
    )
    assert approved.status_code == 200, approved.text
    signed_in = await _wait(browser, "?return_to=/ui/account")
    assert signed_in.status_code == 204
    assert signed_in.headers["HX-Redirect"] == "/ui/account"
    assert CODE_COOKIE not in browser.cookies  # collected once, then gone
    account = await browser.get("/ui/account")
    assert account.status_code == 200 and "alice" in account.text

    # The code is used up: asking again signs nobody else in.
    again = _new_browser(server)
    again.cookies.set(CODE_COOKIE, "reused", path="/login/code")
    assert "kavach_session" not in (await _wait(again)).cookies


async def test_a_denied_code_says_so_and_an_open_redirect_is_not_followed(
    server: InProcessServer,
) -> None:
    browser = _new_browser(server)
    user_code = await _start(browser, "//evil.example/")
    alice = await login(server, "alice")
    denied = await server.client.post(
        "/api/v1/auth/device/deny",
        json={"user_code": user_code},
        headers=bearer(alice["access_token"]),
    )
    assert denied.status_code == 200, denied.text
    answer = await _wait(browser, "?return_to=//evil.example/")
    assert answer.status_code == 200 and "denied" in answer.text and 'role="alert"' in answer.text
    assert "kavach_session" not in browser.cookies

    other = _new_browser(server)
    code = await _start(other)
    await approve(server, code, "bob")
    done = await _wait(other, "?return_to=//evil.example/")
    assert done.headers["HX-Redirect"] == "/ui/"


@pytest.fixture
async def github(server: InProcessServer) -> AsyncIterator[FakeGitHubState]:
    """Route the server's outbound HTTP to a fake GitHub."""
    state = FakeGitHubState(api_prefix="/api/v3", default_outcomes=("pending",))
    original = server.runtime.http
    server.runtime.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_fake_github(state)), base_url=GITHUB
    )
    yield state
    await server.runtime.http.aclose()
    server.runtime.http = original


@pytest.mark.parametrize("auth_overrides", [{**_GITHUB, "github_allowed_logins": "octocat"}])
async def test_a_browser_signs_in_with_github(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    browser = _new_browser(server)
    choices = await browser.get("/login")
    assert "Sign in with GitHub" in choices.text and "Sign in with a code" not in choices.text
    page = await browser.post("/login/code", data={})
    assert f"{GITHUB}/login/device" in page.text
    assert "kavach login --approve" not in page.text
    assert 'hx-trigger="load delay:' in (await _wait(browser)).text
    device_code = next(iter(github.device_codes))
    github.script(device_code, "success")
    done = await _wait(browser)
    assert done.status_code == 204, done.text
    me = await browser.get("/api/v1/auth/me")
    assert me.json()["data"]["login"] == "octocat"


async def test_a_person_lists_and_ends_their_own_sessions(server: InProcessServer) -> None:
    laptop = await login(server, "alice")
    other = await login(server, "alice")
    bob = await login(server, "bob")
    page_owner = Browser(server, laptop["access_token"])
    listed = await server.client.get(
        "/api/v1/auth/sessions", headers=bearer(laptop["access_token"])
    )
    sessions = listed.json()["data"]
    assert len(sessions) == 2 and [s["current"] for s in sessions].count(True) == 1
    current = next(s for s in sessions if s["current"])
    second = next(s for s in sessions if not s["current"])

    page = await page_owner.get("/ui/account")
    assert page.status_code == 200
    assert page.text.count('/end"') == 2 and "(this browser)" in page.text

    # Bob cannot end Alice's session: it is as unknown to him as one that never was.
    refused = await server.client.delete(
        f"/api/v1/auth/sessions/{second['id']}", headers=bearer(bob["access_token"])
    )
    assert refused.status_code == 404 and refused.json()["error_code"] == "not_found"
    assert (
        await server.client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
    ).status_code == 200

    ended = await page_owner.post(f"/ui/account/sessions/{second['id']}/end", {})
    assert ended.status_code == 204 and ended.headers["HX-Refresh"] == "true"
    gone = await server.client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
    assert gone.status_code == 401

    # Ending this browser's own session signs it out.
    out = await page_owner.post(f"/ui/account/sessions/{current['id']}/end", {})
    assert out.status_code == 204 and out.headers["HX-Redirect"] == "/login"
    assert (await page_owner.get("/ui/account")).status_code in (303, 307)
    assert (
        await page_owner.post(f"/ui/account/sessions/{current['id']}/end", {}, csrf=False)
    ).status_code in (401, 403)
