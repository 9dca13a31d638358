"""The browser tests' harness: Debian's Chromium under Playwright, axe-core, screenshots, sign-in.

Chromium is the system's (`/usr/bin/chromium`, Debian's `chromium` package): Playwright's own
browser builds are never downloaded. It resolves no host name but 127.0.0.1 and localhost, so
a page reaches nothing outside the machine (the test provider's pages import a web font, which
then fails at once instead of waiting on the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.harness import KavachServer, ServerFactory
from tests.oidc.provider import OidcProvider, ProviderAccount, new_signing_key

CHROMIUM_ENV = "KAVACH_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "KAVACH_SCREENSHOTS"
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AXE_SCRIPT = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# A page that does not answer in this time is broken, not slow: fail well before pytest's timeout.
TIMEOUT_MS = 10_000
# Impacts of axe's findings that fail a test by default; "minor" and "moderate" ones only
# where a test asks for them (IMPACTS).
FAILING_IMPACTS = ("serious", "critical")
IMPACTS = ("minor", "moderate", "serious", "critical")
SHOWN_TARGETS = 3
_SCREENSHOT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def chromium_executable() -> str:
    """Return the Chromium to run: KAVACH_TEST_CHROMIUM, else Debian's; fail if it is missing."""
    wanted = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    found = shutil.which(wanted)
    if found is None:
        pytest.fail(
            f"no Chromium at {wanted}: the browser tests run the system's Chromium, never a "
            f"downloaded one. Install Debian's package (apt-get install chromium) or point "
            f"{CHROMIUM_ENV} at a Chromium executable."
        )
    return found


def launch_chromium(playwright: Playwright, executable: str) -> Browser:
    """Launch Chromium from `executable`, headless, reaching no host but this machine."""
    return playwright.chromium.launch(
        executable_path=executable,
        headless=True,
        args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
    )


@dataclass
class BrowserSession:
    """Playwright's driver and one Chromium, started once per pytest worker."""

    playwright: Playwright
    browser: Browser
    loop: asyncio.AbstractEventLoop

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Let Playwright's sync API run here, and hand the thread back to asyncio afterwards.

        Between two calls the sync API leaves its event loop marked as the thread's running
        loop (its dispatcher is suspended inside it); pytest-asyncio then refuses to run any
        async test in the same worker. So the mark is set only while a browser test runs
        (an autouse fixture); a fixture wider than a test that drives the browser calls this.
        """
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            yield
        finally:
            asyncio.events._set_running_loop(previous)


def start_browser_session() -> BrowserSession:
    """Start Playwright's driver (sync API) and the system's Chromium in it."""
    executable = chromium_executable()
    playwright = sync_playwright().start()
    loop = asyncio.get_running_loop()  # Playwright's own, marked running by the call above
    session = None
    try:
        session = BrowserSession(playwright, launch_chromium(playwright, executable), loop)
    finally:
        if session is None:
            playwright.stop()
        asyncio.events._set_running_loop(None)
    return session


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """Return a fresh context (no cookies, no storage) with the tests' viewport and timeouts."""
    context = browser.new_context(**{"viewport": VIEWPORT, **options})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@functools.cache
def axe_source() -> str:
    """Return axe-core's script (tests/browser/node_modules, installed by `make node-fixtures`)."""
    if not AXE_SCRIPT.is_file():
        pytest.fail(f"{AXE_SCRIPT} is missing: run `make node-fixtures` (npm ci in tests/browser)")
    return AXE_SCRIPT.read_text(encoding="utf-8")


# Runs axe on the whole document; only the fields a failure message shows come back.
_RUN_AXE = """async () => {
  const results = await axe.run(document, { resultTypes: ['violations'] });
  return results.violations.map((rule) => ({
    id: rule.id,
    impact: rule.impact,
    help: rule.help,
    targets: rule.nodes.map((node) => node.target.join(' ')),
  }));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now and return every violation it finds.

    The script is evaluated through the DevTools protocol, which the page's
    Content-Security-Policy does not govern: the page keeps its own policy (no bypass), and
    so a page whose policy forbids every script is checked too.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE)
    return violations


def assert_accessible(
    page: Page, *, context: str, impacts: Sequence[str] = FAILING_IMPACTS
) -> None:
    """Fail listing each axe-core violation on the page of one of `impacts` (serious or
    critical by default); `context` says which page or state it was, for the message."""
    failing = [v for v in axe_violations(page) if v["impact"] in impacts]
    if not failing:
        return
    lines = []
    for violation in failing:
        targets = violation["targets"]
        shown = ", ".join(targets[:SHOWN_TARGETS])
        more = f" and {len(targets) - SHOWN_TARGETS} more" if len(targets) > SHOWN_TARGETS else ""
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} [{shown}{more}]"
        )
    pytest.fail(
        f"{context} ({page.url}) has {len(failing)} accessibility problem(s) "
        f"({' or '.join(impacts)}):\n" + "\n".join(lines),
        pytrace=False,
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path | None:
    """Save docs/screenshots/NAME.png when KAVACH_SCREENSHOTS=1; return its path, or None.

    The files are committed when regenerated on purpose; an ordinary run (CI's) writes
    nothing into the checkout. The picture is the page's viewport (1280x800 from
    new_context) unless `full_page`.
    """
    if not _SCREENSHOT_NAME.match(name):
        raise ValueError(f"screenshot names are lower-case words and dashes, not {name!r}")
    if os.environ.get(SCREENSHOTS_ENV) != "1":
        return None
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


# Adds an inline <script> to the document as an injection would, and reports whether it ran
# and which directive, if any, the page's policy says it broke.
_INJECT_SCRIPT = """() => new Promise((resolve) => {
  const marker = `injected${Math.random().toString(36).slice(2)}`;
  let directive = null;
  document.addEventListener('securitypolicyviolation', (event) => {
    directive = event.effectiveDirective;
  });
  const script = document.createElement('script');
  script.textContent = `window.${marker} = true;`;
  document.body.append(script);
  // Violation events are queued as a task: let them arrive.
  setTimeout(() => resolve({ ran: window[marker] === true, directive }), 50);
})"""


@dataclass(frozen=True)
class InjectedScript:
    """What became of an inline script added to a page's document."""

    ran: bool
    directive: str | None  # the CSP directive it violated; None: no violation was reported


def inject_inline_script(page: Page) -> InjectedScript:
    """Add an inline <script> element to the page's document; report whether it ran."""
    outcome: dict[str, Any] = page.evaluate(_INJECT_SCRIPT)
    return InjectedScript(ran=bool(outcome["ran"]), directive=outcome["directive"])


@dataclass(frozen=True)
class Fetched:
    """A response to a fetch made by a page's own script."""

    status: int
    body: Any  # parsed JSON; None when the body was empty or not JSON


_FETCH = """async ([path, method, headers]) => {
  const response = await fetch(path, { method, headers, credentials: 'same-origin' });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: response.status, body };
}"""


def fetch(
    page: Page, path: str, *, method: str = "GET", headers: Mapping[str, str] | None = None
) -> Fetched:
    """Fetch `path` from the page's own script, with its cookies, as the dashboard would.

    The page's Content-Security-Policy applies: it must allow `connect-src 'self'` (the
    API docs do; the text-only pages allow nothing).
    """
    answer: dict[str, Any] = page.evaluate(_FETCH, [path, method, dict(headers or {})])
    return Fetched(status=int(answer["status"]), body=answer["body"])


def page_cookies(page: Page) -> dict[str, str]:
    """Return the cookies the page's scripts can read (document.cookie), by name."""
    text: str = page.evaluate("document.cookie")
    pairs = (item.strip().partition("=") for item in text.split(";") if item.strip())
    return {name: value for name, _, value in pairs}


# Sign-in through a real OpenID provider.

PROVIDER_NAME = "corp"
PROVIDER_LABEL = "Example SSO"
CLIENT_ID = "kavach"
CLIENT_SECRET = "browser-client-secret"
# The provider's development login form checks the login only.
PASSWORD = "any-password"
# Login, consent: a few more pages than that is a loop.
MAX_PROVIDER_PAGES = 4


def account(login: str, *groups: str) -> ProviderAccount:
    """Return a provider account for `login` at example.com, in `groups` at the provider."""
    return ProviderAccount(
        login=login,
        sub=f"sub-{login}",
        email=f"{login}@example.com",
        name=login.title(),
        preferred_username=login,
        groups=groups,
    )


# Who the provider knows unless a test says otherwise; roles are given by the tests.
ACCOUNTS = (account("alice"), account("bob"), account("carol"))


@dataclass
class SignInSite:
    """A real Kavach server whose one OpenID provider is a real provider process."""

    server: KavachServer
    provider: OidcProvider
    accounts: list[ProviderAccount] = field(default_factory=list)
    provider_name: str = PROVIDER_NAME
    provider_label: str = PROVIDER_LABEL

    @property
    def url(self) -> str:
        """Return the server's base URL (http://127.0.0.1:PORT)."""
        return self.server.url

    @property
    def callback(self) -> str:
        """Return the redirect URI the provider has registered for the server."""
        return f"{self.url}/oidc/{self.provider_name}/callback"

    def add_account(self, person: ProviderAccount) -> None:
        """Let the provider sign in one more person (the running provider sees it at once)."""
        self.accounts.append(person)
        self.provider.set_accounts(self.accounts)


def start_sign_in_site(
    start_server: ServerFactory,
    provider: OidcProvider,
    directory: Path,
    *,
    accounts: Sequence[ProviderAccount] = ACCOUNTS,
    provider_settings: Mapping[str, Any] | None = None,
    **server_settings: object,
) -> SignInSite:
    """Start `provider` and a server signing people in with it; register the server there.

    `provider_settings` add to or replace the server's entry for the provider (for example
    `group_map`); `server_settings` are start_server's. By default everyone at example.com
    may sign in, and the groups scope is asked for.
    """
    provider.start(directory, [], accounts, [new_signing_key("browser")])
    entry = {
        "name": PROVIDER_NAME,
        "display_name": PROVIDER_LABEL,
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups"],
        "allowed_email_domains": ["example.com"],
        **(provider_settings or {}),
    }
    server = start_server(oidc_providers=json.dumps([entry]), **server_settings)
    site = SignInSite(server, provider, list(accounts), entry["name"], entry["display_name"])
    # The server's port is known only now; the provider takes clients at its start.
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    provider.restart(clients=[{**client, "redirect_uris": [site.callback]}])
    return site


def sign_in(
    context: BrowserContext, site: SignInSite, *, login: str = "alice", return_to: str = "/"
) -> Page:
    """Sign `context` in as `login`, as a person would; return the page, on `return_to`.

    Opens /login, follows the provider's link, fills the provider's login form and accepts
    its consent page, and insists that the browser ends on `return_to` at the server holding
    the HttpOnly session cookie. A sign-in the server refuses fails with its page's text.
    """
    page = context.new_page()
    page.goto(f"{site.url}/login?return_to={quote(return_to)}")
    with page.expect_navigation():
        page.get_by_role("link", name=f"Sign in with {site.provider_label}", exact=True).click()
    login_form = page.locator("form:has(input[name=prompt][value=login])")
    consent_form = page.locator("form:has(input[name=prompt][value=consent])")
    for _ in range(MAX_PROVIDER_PAGES):
        if _origin(page.url) == _origin(site.url):
            break
        if login_form.count():
            login_form.locator("input[name=login]").fill(login)
            login_form.locator("input[name=password]").fill(PASSWORD)
            with page.expect_navigation():
                login_form.locator("[type=submit]").click()
        elif consent_form.count():
            with page.expect_navigation():
                consent_form.locator("[type=submit]").click()
        else:
            pytest.fail(f"unexpected page at the provider, {page.url}:\n{_text(page)}")
    landed = urlsplit(page.url)
    target = urlsplit(site.url + return_to)
    if (landed.path, landed.query) != (target.path, target.query):
        pytest.fail(f"signing in as {login} ended on {page.url}, not {return_to}:\n{_text(page)}")
    cookies = {c["name"]: c for c in context.cookies(site.url)}
    assert "kavach_session" in cookies, f"no session cookie after signing in: {sorted(cookies)}"
    assert cookies["kavach_session"]["httpOnly"]
    return page


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _text(page: Page) -> str:
    return page.locator("body").inner_text()[:2000]
