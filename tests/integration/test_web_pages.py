"""The pages a browser sees: the root page and the API docs, served whole by Kavach."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.conftest import InProcessServer

PAGE_HEADERS = ("content-security-policy", "x-frame-options", "cache-control", "referrer-policy")


@pytest.fixture
def backend() -> str:
    """Pages do not touch the database: one backend is enough."""
    return "sqlite"


class Resources(HTMLParser):
    """Collect what a page loads (scripts, style sheets, images), its links and inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.links: list[str] = []
        self.inline: list[str] = []  # inline scripts, event handlers, style attributes
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in found:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=…>")
        if tag == "script":
            self._in_script = True
            if found.get("src") is None:
                self.inline.append("<script> without src")
            else:
                self.loaded.append(str(found["src"]))
        elif tag == "link" and found.get("href"):
            self.loaded.append(str(found["href"]))
        elif tag in ("img", "iframe", "embed", "source") and found.get("src"):
            self.loaded.append(str(found["src"]))
        elif tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        elif tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script text")


def parse(html: str) -> Resources:
    resources = Resources()
    resources.feed(html)
    return resources


async def test_the_docs_load_everything_from_this_server_with_no_inline_script(
    server: InProcessServer,
) -> None:
    page = await server.client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe" not in policy and "http" not in policy

    found = parse(page.text)
    assert found.inline == []
    assert len(found.loaded) == 3, found.loaded  # Swagger UI's script and style, its start-up
    base = str(page.url)
    for reference in found.loaded:
        url = urljoin(base, reference)
        assert urlsplit(url).netloc == urlsplit(base).netloc, f"{reference} is on another host"
        asset = await server.client.get(url)
        assert asset.status_code == 200, reference
        kind = "text/css" if reference.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind), reference
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["cache-control"] == "no-cache", reference  # revalidated (ETag)
        again = await server.client.get(url, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304, reference
        if kind == "text/css":
            # The style sheet's own references: drawings in data: URLs, nothing fetched.
            assert "@import" not in asset.text
            for piece in asset.text.split("url(")[1:]:
                assert piece.lstrip("\"'").startswith("data:"), piece[:40]

    # The page's start-up script reads where the API description is from the page.
    start = await server.client.get(urljoin(base, found.loaded[-1]))
    assert "SwaggerUIBundle(" in start.text and "validatorUrl: null" in start.text
    assert 'data-openapi-url="/api/v1/openapi.json"' in page.text
    described = await server.client.get("/api/v1/openapi.json")
    assert described.status_code == 200 and described.json()["info"]["title"] == "Kavach"


async def test_no_other_file_of_the_swagger_ui_package_is_reachable_outside_it(
    server: InProcessServer,
) -> None:
    for path in (
        "/static/kavach/../web.py",
        "/static/swagger-ui/../core.py",
        "/static/kavach/%2e%2e/web.py",
        "/static/swagger-ui/nothing.js",
        "/api/v1/docs/oauth2-redirect",
    ):
        answer = await server.client.get(path)
        assert answer.status_code == 404, path


async def test_the_root_page_links_to_the_docs_and_the_login_page(server: InProcessServer) -> None:
    page = await server.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = parse(page.text)
    assert {"/api/v1/docs", "/device", "/api/v1/openapi.json"} <= set(found.links)
    assert found.loaded == []  # nothing fetched, no script at all
    assert "<script" not in page.text and "<form" not in page.text
    assert "kavach login --server http://127.0.0.1:8080" in page.text

    device = await server.client.get("/device")
    for header in PAGE_HEADERS:
        assert page.headers[header] == device.headers[header], header
    assert page.headers.get_list("content-security-policy") == [
        page.headers["content-security-policy"]
    ]
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "auth_overrides",
    [{"github_client_id": "Iv1.abc", "github_allowed_logins": "octocat"}],
    ids=["github"],
)
async def test_with_github_logins_the_root_page_does_not_offer_the_local_page(
    server: InProcessServer,
) -> None:
    page = await server.client.get("/")
    assert page.status_code == 200
    assert "/device" not in parse(page.text).links
    assert "/api/v1/docs" in parse(page.text).links
