"""Signing in with a real OpenID provider in Chromium, and the server's pages as people see them."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import BrowserContext, Page, ViewportSize

from kavach.server.dashboard.router import AREAS
from tests.browser.harness import (
    IMPACTS,
    InjectedScript,
    SignInSite,
    assert_accessible,
    fetch,
    inject_inline_script,
    page_cookies,
    screenshot,
    sign_in,
)
from tests.browser.test_dashboard import _api, _tree
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions

# SQLite only: these are the browser's side; the server's runs on both databases below it.
# The module's tests share one server (the `site` fixture).
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"], scope="module")]

SESSION = "/api/v1/auth/session"
LOGOUT = "/api/v1/auth/logout"
# The API docs: a page of this server whose policy lets its scripts call the API, as the
# dashboard's will; the text-only pages allow no fetch at all.
DOCS = "/api/v1/docs"


def test_a_browser_signs_in_at_the_provider_and_out_again(
    site: SignInSite, context: BrowserContext
) -> None:
    listing = context.new_page()
    listing.goto(f"{site.url}/login")
    links = listing.locator("ul.providers a")
    assert links.all_inner_texts() == ["Sign in with Example SSO"]
    assert links.first.get_attribute("href") == "/oidc/corp/login"
    listing.close()

    # Swagger UI's files are held back: drawing the whole API description keeps the page
    # busy for seconds, and this test needs only the document and the server's policy for it.
    context.route(f"{site.url}/static/**", lambda route: route.abort())
    page = sign_in(context, site, login="bob", return_to=DOCS)
    readable = page_cookies(page)
    assert "kavach_session" not in readable  # HttpOnly: no script of the page can read it
    assert readable.get("kavach_csrf")
    session = fetch(page, SESSION)
    assert session.status == 200, session
    assert session.body["data"]["user"]["login"] == "bob"
    assert session.body["data"]["user"]["provider"] == "oidc:corp"
    assert session.body["data"]["csrf_token"] == readable["kavach_csrf"]

    cookie = next(c["value"] for c in context.cookies(site.url) if c["name"] == "kavach_session")
    refused = fetch(page, LOGOUT, method="POST")
    assert (refused.status, refused.body["error_code"]) == (403, "csrf_failed")
    out = fetch(page, LOGOUT, method="POST", headers={"X-CSRF-Token": readable["kavach_csrf"]})
    assert out.status == 200, out
    assert out.body["data"] == {"logged_out": True}
    assert fetch(page, SESSION).status == 401
    # The session itself ended, not only the browser's copy of the cookie.
    context.add_cookies(
        [{"name": "kavach_session", "value": cookie, "url": site.url, "httpOnly": True}]
    )
    again = fetch(page, SESSION)
    assert again.status == 401, again


PAGES = [
    ("/", 200, "the home page", "home"),
    ("/login", 200, "the sign-in page", "login"),
    ("/device", 200, "the device page without a code", "device"),
    ("/device?user_code=bcdf-ghjk", 200, "the device page with a code", "device-code"),
    ("/oidc/nowhere/login", 404, "a failed sign-in's page", "sign-in-failed"),
]


def test_the_pages_are_accessible_and_run_no_injected_script(site: SignInSite, page: Page) -> None:
    for path, status, what, name in PAGES:
        response = page.goto(site.url + path)
        assert response is not None and response.status == status, (path, response)
        # These pages are plain text: axe finds nothing on them at all, moderate included.
        assert_accessible(page, context=what, impacts=IMPACTS)
        screenshot(page, name)
        # The page's own policy holds in the test: an injected inline script does not run.
        assert inject_inline_script(page) == InjectedScript(False, "script-src-elem"), what


PHONE = ViewportSize(width=390, height=844)
# Parts of pages htmx fetches, not pages: checked within the pages that show them.
FRAGMENTS = {"/ui/environments/{id}/value", "/ui/organizations/{id}/audit/verify"}


def _dashboard_pages() -> set[str]:
    """Every page the dashboard answers GET with, as its route names it."""
    return {
        route.path
        for area in AREAS
        for route in area.router.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or ())
    } - FRAGMENTS


def test_every_dashboard_page_passes_axe(site: SignInSite, context: BrowserContext) -> None:
    page = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(page)
    org, group, env = (tree[level]["id"] for level in ("org", "group", "env"))
    _api(page, "POST", f"/environments/{env}/tokens", {"name": "ci", "role": "viewer"})
    team = _api(page, "POST", "/user-groups/", {"organization_id": org, "name": "sre"})
    state = FakeActionsState()
    state.add_repo("octo", "app")
    with serve_fake_github_actions(state) as url:
        config = {"owner": "octo", "repository": "app", "api_url": url}
        provider = {"provider": "github", "config": config, "credentials": {"token": state.token}}
        _api(page, "POST", f"/environments/{env}/providers/", provider)
        run = _api(page, "POST", f"/environments/{env}/secrets/sync", {"provider": "github"})
    pages = {
        "/ui/": "/ui/",
        "/ui/account": "/ui/account",
        "/ui/organizations/{id}": f"/ui/organizations/{org}",
        "/ui/organizations/{id}/access": f"/ui/organizations/{org}/access",
        "/ui/organizations/{id}/user-groups": f"/ui/organizations/{org}/user-groups",
        "/ui/organizations/{id}/audit": f"/ui/organizations/{org}/audit",
        "/ui/user-groups/{id}": f"/ui/user-groups/{team['id']}",
        "/ui/secret-groups/{id}": f"/ui/secret-groups/{group}",
        "/ui/secret-groups/{id}/compare": f"/ui/secret-groups/{group}/compare",
        "/ui/secret-groups/{id}/access": f"/ui/secret-groups/{group}/access",
        "/ui/secret-groups/{id}/audit": f"/ui/secret-groups/{group}/audit",
        "/ui/environments/{id}/": f"/ui/environments/{env}/",
        "/ui/environments/{id}/history": f"/ui/environments/{env}/history",
        "/ui/environments/{id}/access": f"/ui/environments/{env}/access",
        "/ui/environments/{id}/tokens": f"/ui/environments/{env}/tokens",
        "/ui/environments/{id}/trusts": f"/ui/environments/{env}/trusts",
        "/ui/environments/{id}/sync": f"/ui/environments/{env}/sync",
        "/ui/environments/{id}/sync-runs/{run_id}": f"/ui/environments/{env}/sync-runs/{run['id']}",
        "/ui/environments/{id}/audit": f"/ui/environments/{env}/audit",
    }
    assert set(pages) == _dashboard_pages()  # a new page is added here, and so checked
    for route, path in pages.items():
        response = page.goto(site.url + path)
        assert response is not None and response.status == 200, (path, response)
        assert_accessible(page, context=route)
        assert not inject_inline_script(page).ran, route
    # On a phone, each page fits the screen's width: nothing to scroll sideways but a
    # table too wide for it, inside its own scrolling box.
    page.set_viewport_size(PHONE)
    for route, path in pages.items():
        page.goto(site.url + path)
        wider = page.evaluate("document.documentElement.scrollWidth")
        assert wider <= PHONE["width"], f"{route} is {wider} px wide on a phone"
        assert_accessible(page, context=f"{route} on a phone")
