"""Sign in at the test provider's own pages the way a browser would, up to the relying party."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

# Any password: the provider's development login form checks only the login.
_PASSWORD = "any-password"
# Authorize, interaction, login, resume, consent, resume: a few more than that is a loop.
_MAX_STEPS = 12


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Page(HTMLParser):
    """The forms, links and visible text of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[str] = []
        self._text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            self.forms.append(_Form(values.get("action", ""), values.get("method", "get").lower()))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1].fields[values["name"]] = values.get("value", "")
        elif tag == "a" and "href" in values:
            self.links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self._text.append(data.strip())

    @property
    def text(self) -> str:
        return " ".join(self._text)

    def form_for(self, prompt: str) -> _Form | None:
        """The provider's form for this prompt (its hidden `prompt` field names it)."""
        return next((form for form in self.forms if form.fields.get("prompt") == prompt), None)


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    data: dict[str, str] | None = None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _unexpected(what: str, response: httpx.Response, page: _Page | None = None) -> AssertionError:
    if page is None and "html" in response.headers.get("content-type", ""):
        page = _Page()
        page.feed(response.text)
    text = page.text if page is not None else response.text
    return AssertionError(
        f"{what}: {response.request.method} {response.request.url} answered "
        f"{response.status_code}; page: {text[:3000]}"
    )


def _drive(
    authorize_url: str, login: str | None, consent: bool
) -> Generator[_Request, httpx.Response, str]:
    """Yield the browser's requests one by one; return the redirect that leaves the provider."""
    provider = _origin(authorize_url)
    response = yield _Request("GET", authorize_url)
    for _ in range(_MAX_STEPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != provider:
                return target
            response = yield _Request("GET", target)
            continue
        if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
            raise _unexpected("the provider did not answer with a page", response)
        page = _Page()
        page.feed(response.text)
        base = str(response.url)
        if (form := page.form_for("login")) is not None:
            if login is None:
                raise _unexpected("the provider asks for a login, none was given", response, page)
            data = {**form.fields, "login": login, "password": _PASSWORD}
            response = yield _Request("POST", urljoin(base, form.action), data)
        elif (form := page.form_for("consent")) is not None:
            if consent:
                response = yield _Request("POST", urljoin(base, form.action), form.fields)
            else:
                # The page's Cancel link ends the interaction with access_denied.
                abort = next((link for link in page.links if link.endswith("/abort")), None)
                if abort is None:
                    raise _unexpected("the consent page has no cancel link", response, page)
                response = yield _Request("GET", urljoin(base, abort))
        else:
            raise _unexpected("unexpected provider page", response, page)
    raise _unexpected(f"still at the provider after {_MAX_STEPS} steps", response)


def sign_in(
    client: httpx.Client, authorize_url: str, *, login: str | None, consent: bool = True
) -> str:
    """Sign in at the provider and return the redirect to the relying party, not requested.

    The login form is filled when the provider shows it (a client whose cookies hold a
    provider session is not asked again); `login=None` asserts that it is not shown. The
    consent page, where shown, is accepted, or cancelled when `consent` is false (the
    relying party then gets error=access_denied). Cookies stay in the client's jar.
    """
    steps = _drive(authorize_url, login, consent)
    request = next(steps)
    while True:
        response = client.request(
            request.method, request.url, data=request.data, follow_redirects=False
        )
        try:
            request = steps.send(response)
        except StopIteration as done:
            return str(done.value)


async def sign_in_async(
    client: httpx.AsyncClient, authorize_url: str, *, login: str | None, consent: bool = True
) -> str:
    """Like sign_in, with an async client."""
    steps = _drive(authorize_url, login, consent)
    request = next(steps)
    while True:
        response = await client.request(
            request.method, request.url, data=request.data, follow_redirects=False
        )
        try:
            request = steps.send(response)
        except StopIteration as done:
            return str(done.value)
