"""Browser fixtures: one Chromium per worker, a fresh context per test, sign-in sites."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.harness import (
    ACCOUNTS,
    BrowserSession,
    SignInSite,
    new_context,
    start_browser_session,
    start_sign_in_site,
)
from tests.e2e.conftest import running_servers
from tests.e2e.harness import ServerFactory
from tests.oidc.provider import OidcProvider, ProviderAccount

SiteFactory = Callable[..., SignInSite]


@pytest.fixture(scope="session")
def browser_session() -> Iterator[BrowserSession]:
    """Start Playwright and the system's Chromium once per worker; close them at its end."""
    session = start_browser_session()
    yield session
    with session.turn():
        session.browser.close()
        session.playwright.stop()


@pytest.fixture(autouse=True)
def _playwright_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give Playwright the thread for the length of each test that uses the browser."""
    if "browser_session" not in request.fixturenames:
        yield
        return
    session: BrowserSession = request.getfixturevalue("browser_session")
    with session.turn():
        yield


@pytest.fixture(scope="session")
def chromium(browser_session: BrowserSession) -> Browser:
    """Return the worker's headless Chromium (KAVACH_TEST_CHROMIUM, else /usr/bin/chromium)."""
    return browser_session.browser


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """Return a fresh browser context (no cookies or storage), 1280x800, closed after the test."""
    fresh = new_context(chromium)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """Return a new page in the test's context."""
    return context.new_page()


@pytest.fixture
def start_server(backend: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """The end-to-end tests' start_server: real server processes on the test's `backend`."""
    with running_servers(backend, tmp_path) as start:
        yield start


@contextlib.contextmanager
def _sites(servers: ServerFactory, root: Path) -> Iterator[SiteFactory]:
    """Give a function starting sign-in sites; stop their providers when the block ends."""
    providers: list[OidcProvider] = []

    def start(
        *,
        accounts: Sequence[ProviderAccount] = ACCOUNTS,
        provider_settings: Mapping[str, Any] | None = None,
        **server_settings: object,
    ) -> SignInSite:
        provider = OidcProvider()
        providers.append(provider)
        directory = root / f"provider{len(providers)}"
        directory.mkdir()
        return start_sign_in_site(
            servers,
            provider,
            directory,
            accounts=accounts,
            provider_settings=provider_settings,
            **server_settings,
        )

    try:
        yield start
    finally:
        for provider in providers:
            provider.stop()


@pytest.fixture
def start_site(start_server: ServerFactory, tmp_path: Path) -> Iterator[SiteFactory]:
    """Return a function that starts a provider and a server signing people in with it.

    Its keyword arguments are start_sign_in_site's (`accounts`, `provider_settings`, and the
    server's settings). Everything started is stopped at the end of the test.
    """
    with _sites(start_server, tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def site_settings() -> dict[str, object]:
    """Server settings of the module's `site` beyond the defaults (a module may override)."""
    return {}


@pytest.fixture(scope="module")
def site(
    backend: str, site_settings: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignInSite]:
    """Start the default sign-in site once per module (alice, bob and carol may sign in).

    A server takes seconds to start, so a module's tests share it: each signs in its own
    browser context, and whatever it creates must not collide with another test's. The
    module parametrizes `backend` with scope="module".
    """
    root = tmp_path_factory.mktemp("site")
    with running_servers(backend, root) as servers, _sites(servers, root) as start:
        yield start(**site_settings)
