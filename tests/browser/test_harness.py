"""The harness itself: axe-core under a strict policy, the script probe, screenshots."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Route

from tests.browser import harness
from tests.browser.harness import InjectedScript, assert_accessible, inject_inline_script

pytestmark = pytest.mark.e2e

ORIGIN = "http://page.test"
# The dashboard's policy: its own scripts and styles only, nothing inline.
STRICT = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'"
BROKEN = """<!doctype html>
<html lang="en"><head><title>Broken</title><link rel="stylesheet" href="/page.css"></head>
<body><main><h1>Broken on purpose</h1>
<p class="faint">Faint text</p>
<a href="/next"></a>
<img src="/picture.png">
<script src="/page.js"></script></main></body></html>"""
FIXED = """<!doctype html>
<html lang="en"><head><title>Fixed</title><link rel="stylesheet" href="/page.css"></head>
<body><main><h1>Fixed</h1>
<p>Plain text</p>
<a href="/next">Next</a>
<img src="/picture.png" alt="A picture">
<script src="/page.js"></script></main></body></html>"""
FILES = {
    "/broken": ("text/html", BROKEN),
    "/fixed": ("text/html", FIXED),
    "/page.css": ("text/css", ".faint { color: #ccc; background: #fff; }"),
    "/page.js": ("text/javascript", "window.ownScriptRan = true;"),
}


def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    kind, body = FILES.get(path, ("text/plain", ""))
    route.fulfill(
        status=200 if path in FILES else 404,
        content_type=kind,
        body=body,
        headers={"Content-Security-Policy": STRICT},
    )


@pytest.fixture
def strict_page(context: BrowserContext, page: Page) -> Page:
    """A page whose documents come with the dashboard's policy (served by the test)."""
    context.route(f"{ORIGIN}/**", _serve)
    return page


def test_axe_lists_each_serious_problem_under_a_strict_policy(strict_page: Page) -> None:
    strict_page.goto(f"{ORIGIN}/broken")
    assert strict_page.evaluate("window.ownScriptRan") is True  # 'self' scripts run

    with pytest.raises(pytest.fail.Exception) as failed:
        assert_accessible(strict_page, context="a broken page")
    message = str(failed.value)
    assert "a broken page (http://page.test/broken) has 3 accessibility problem(s)" in message
    assert "(serious or critical):" in message
    assert "- color-contrast (serious): Elements must meet minimum color contrast" in message
    assert "- image-alt (critical): Images must have alternative text [img]" in message
    assert "- link-name (serious): Links must have discernible text [a]" in message
    # Running axe did not loosen the page's policy.
    assert inject_inline_script(strict_page) == InjectedScript(False, "script-src-elem")

    strict_page.goto(f"{ORIGIN}/fixed")
    assert_accessible(strict_page, context="the fixed page")


def test_the_script_probe_sees_a_script_that_runs(page: Page) -> None:
    page.goto("about:blank")  # no policy at all
    assert inject_inline_script(page) == InjectedScript(True, None)


def test_screenshots_are_written_only_when_asked_for(
    strict_page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "SCREENSHOTS_DIR", tmp_path / "shots")
    strict_page.goto(f"{ORIGIN}/fixed")
    monkeypatch.delenv(harness.SCREENSHOTS_ENV, raising=False)
    assert harness.screenshot(strict_page, "fixed") is None
    assert not (tmp_path / "shots").exists()

    monkeypatch.setenv(harness.SCREENSHOTS_ENV, "1")
    written = harness.screenshot(strict_page, "fixed")
    assert written == tmp_path / "shots" / "fixed.png"
    header = written.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 800)
    with pytest.raises(ValueError, match="lower-case words and dashes"):
        harness.screenshot(strict_page, "../escape")
