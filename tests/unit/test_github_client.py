"""GitHubClient against the fake GitHub: device flow, identity, errors, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from kavach.server.auth.github import (
    DEVICE_GRANT_TYPE,
    SCOPE,
    GitHubClient,
    GitHubIdentity,
)
from kavach.server.errors import DeviceFlowError, IdentityProviderError, http_status_for
from tests.fakes.github import (
    FakeGitHubState,
    FakeUser,
    Outcome,
    create_fake_github,
    load_spec,
    private_email_user,
    response_validator,
    serve_fake_github,
)

WEB = "https://github.test"
SECRET = "s3cr3t-client-secret-value"
# Every endpoint GitHub documents for this flow: the OAuth app docs (login) and the REST docs (API).
DOCUMENTED = {
    ("POST", "/login/device/code"),
    ("POST", "/login/oauth/access_token"),
    ("GET", "/user"),
    ("GET", "/user/emails"),
}


class FlakyTransport(httpx.AsyncBaseTransport):
    """Fail the first requests as scripted (exception or canned response), then delegate."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.script: list[Exception | httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        return await self.inner.handle_async_request(request)


@dataclass
class Harness:
    """A GitHubClient wired to the fake, and what went over the wire."""

    state: FakeGitHubState
    transport: FlakyTransport
    http: httpx.AsyncClient
    sent: list[httpx.Request]
    received: list[httpx.Response]
    gh: GitHubClient = field(init=False)

    def __post_init__(self) -> None:
        self.gh = self.client()

    def client(
        self, *, client_id: str | None = None, client_secret: str | None = None
    ) -> GitHubClient:
        """Return a client on this wire, with the fake's client id unless told otherwise."""
        return GitHubClient(
            client_id=client_id or self.state.client_id,
            client_secret=client_secret,
            web_url=WEB,
            api_url=f"{WEB}{self.state.api_prefix}",
            http=self.http,
        )


def documented(request: httpx.Request, api_prefix: str) -> tuple[str, str]:
    """Return a request's method and path as GitHub's docs name it (API prefix removed)."""
    path = request.url.path
    return request.method, path if path.startswith("/login/") else path.removeprefix(api_prefix)


def assert_documented(h: Harness) -> None:
    """Check every request matched a documented method + path, and /user answers the spec."""
    assert h.sent, "no request was sent"
    assert all(documented(r, h.state.api_prefix) in DOCUMENTED for r in h.sent)
    validator = response_validator("/user")
    for response in h.received:
        is_user = documented(response.request, h.state.api_prefix) == ("GET", "/user")
        if is_user and response.status_code == 200:
            validator.validate(response.json())


@pytest.fixture(params=["", "/api/v3"], ids=["github.com", "ghes"])
def state(request: pytest.FixtureRequest) -> FakeGitHubState:
    return FakeGitHubState(api_prefix=request.param)


@pytest.fixture
async def h(state: FakeGitHubState) -> AsyncIterator[Harness]:
    transport = FlakyTransport(httpx.ASGITransport(app=create_fake_github(state)))
    sent: list[httpx.Request] = []
    received: list[httpx.Response] = []

    async def on_request(request: httpx.Request) -> None:
        sent.append(request)

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        received.append(response)

    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [on_request],
        "response": [on_response],
    }
    async with httpx.AsyncClient(transport=transport, event_hooks=hooks) as http:
        yield Harness(state, transport, http, sent, received)


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """Check that no credential shows in an exception's message, repr, data or chain."""
    shown = f"{exc} {exc!r} {getattr(exc, 'data', None)} {exc.__cause__!r} {exc.__context__!r}"
    for value in secrets:
        assert value not in shown
    # A chained httpx error would carry the request, headers and all, into tracebacks.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


async def test_device_code_request(h: Harness) -> None:
    code = await h.gh.request_device_code()

    assert code.device_code in h.state.device_codes
    stored = h.state.device_codes[code.device_code].user_code
    assert code.user_code == f"{stored[:4]}-{stored[4:]}"
    assert code.verification_uri == f"{WEB}/login/device"
    assert (code.expires_in, code.interval) == (899, 5)
    assert code.device_code not in repr(code)
    [recorded] = h.state.requests
    assert (recorded.method, recorded.path) == ("POST", "/login/device/code")
    assert recorded.form == {"client_id": h.state.client_id, "scope": SCOPE}
    assert recorded.headers["accept"] == "application/json"
    assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
    assert_documented(h)


async def test_pending_then_slow_down_then_success(h: Harness) -> None:
    code = (await h.gh.request_device_code()).device_code
    h.state.script(code, "pending", "slow_down", "success")

    with pytest.raises(DeviceFlowError) as pending:
        await h.gh.poll_device_token(code)
    assert (pending.value.error_code, pending.value.data) == ("authorization_pending", None)
    assert http_status_for(pending.value) == 400
    with pytest.raises(DeviceFlowError) as slow:
        await h.gh.poll_device_token(code)
    assert slow.value.error_code == "slow_down"
    assert slow.value.data == {"interval": 10}
    token = await h.gh.poll_device_token(code)

    assert h.state.tokens[token] == h.state.user
    polls = h.state.requests_to("/login/oauth/access_token")
    assert len(polls) == 3
    assert polls[0].form == {
        "client_id": h.state.client_id,
        "device_code": code,
        "grant_type": DEVICE_GRANT_TYPE,
    }
    assert all(p.headers["accept"] == "application/json" for p in polls)
    # A device code yields one token: polling it again is an invalid grant.
    with pytest.raises(DeviceFlowError) as again:
        await h.gh.poll_device_token(code)
    assert again.value.error_code == "invalid_grant"
    assert_clean(again.value, code, token)
    assert_documented(h)


@pytest.mark.parametrize(
    ("outcome", "error_code"), [("denied", "access_denied"), ("expired", "expired_token")]
)
async def test_terminal_outcomes(h: Harness, outcome: Outcome, error_code: str) -> None:
    code = h.state.add_device_code(outcome)

    for _ in range(2):  # GitHub keeps giving the same answer
        with pytest.raises(DeviceFlowError) as caught:
            await h.gh.poll_device_token(code)
        assert caught.value.error_code == error_code
        assert caught.value.data is None
        assert_clean(caught.value, code)
    assert_documented(h)


async def test_incorrect_device_code_is_invalid_grant(h: Harness) -> None:
    with pytest.raises(DeviceFlowError) as caught:
        await h.gh.poll_device_token("not-a-device-code")

    assert caught.value.error_code == "invalid_grant"
    assert_clean(caught.value, "not-a-device-code")


async def test_bad_client_credentials(h: Harness) -> None:
    h.state.client_secret = SECRET
    code = h.state.add_device_code("success")

    for client in (
        h.client(client_secret="wrong-" + SECRET),
        h.client(client_id="Iv1.other", client_secret=SECRET),
    ):
        with pytest.raises(IdentityProviderError) as caught:
            await client.poll_device_token(code)
        assert "incorrect_client_credentials" in caught.value.message
        assert_clean(caught.value, SECRET, code)
    assert not h.state.tokens

    token = await h.client(client_secret=SECRET).poll_device_token(code)
    assert token in h.state.tokens
    assert h.state.requests_to("/login/oauth/access_token")[-1].form["client_secret"] == SECRET
    assert_documented(h)


async def test_device_flow_disabled_and_unknown_client(h: Harness) -> None:
    with pytest.raises(IdentityProviderError, match=r"\(HTTP 404\)"):
        await h.client(client_id="Iv1.unknown").request_device_code()
    h.state.device_flow_enabled = False
    with pytest.raises(IdentityProviderError, match="device_flow_disabled"):
        await h.gh.request_device_code()
    with pytest.raises(IdentityProviderError, match="device_flow_disabled"):
        await h.gh.poll_device_token(h.state.add_device_code())


async def test_public_email_identity(h: Harness) -> None:
    token = h.state.issue_token()

    identity = await h.gh.fetch_identity(token)

    assert identity == GitHubIdentity(
        provider_id="583231",
        login="octocat",
        email="octocat@github.com",
        name="The Octocat",
        avatar_url=f"{WEB}/avatars/u/583231?v=4",
    )
    # The verified addresses are asked for even when the profile shows one: it may not be.
    recorded, emails = h.state.requests
    assert (recorded.method, recorded.path) == ("GET", f"{h.state.api_prefix}/user")
    assert (emails.method, emails.path) == ("GET", f"{h.state.api_prefix}/user/emails")
    assert recorded.headers["accept"] == "application/vnd.github+json"
    assert recorded.headers["x-github-api-version"] == "2022-11-28"
    assert h.sent[0].headers["authorization"] == f"Bearer {token}"
    assert token not in repr(vars(h.gh))  # used, never kept
    assert_documented(h)


async def test_private_email_uses_primary_verified(h: Harness) -> None:
    token = h.state.issue_token(private_email_user())

    identity = await h.gh.fetch_identity(token)

    assert identity.email == "hubber@example.com"
    assert identity.verified_emails == ("old@example.com", "hubber@example.com")
    assert (identity.provider_id, identity.login, identity.name) == ("9919", "hidden-hubber", None)
    assert [r.path.removeprefix(h.state.api_prefix) for r in h.state.requests] == [
        "/user",
        "/user/emails",
    ]
    assert all(r.had_authorization for r in h.state.requests)
    assert_documented(h)


async def test_private_email_without_primary_verified_or_permission(h: Harness) -> None:
    user = private_email_user()
    user.emails = [e | {"verified": False} for e in user.emails]
    token = h.state.issue_token(user)
    assert (await h.gh.fetch_identity(token)).email is None
    assert (await h.gh.fetch_identity(token)).verified_emails == ()

    h.state.fail_api("/user/emails", 404)  # a token not allowed to list emails
    assert (await h.gh.fetch_identity(token)).email is None


async def test_public_user_shape_is_read(h: Harness) -> None:
    token = h.state.issue_token(FakeUser(id=7, login="pub", private_fields=False))

    assert (await h.gh.fetch_identity(token)).provider_id == "7"
    assert_documented(h)


async def test_bad_token_is_identity_provider_error(h: Harness) -> None:
    token = "gho_" + "x" * 36

    with pytest.raises(IdentityProviderError) as caught:
        await h.gh.fetch_identity(token)

    assert http_status_for(caught.value) == 502
    assert caught.value.message == "GitHub rejected the access token"
    assert_clean(caught.value, token)
    assert h.received[0].json()["message"] == "Bad credentials"
    response_validator("/user", status="401").validate(h.received[0].json())
    assert len(h.state.requests) == 1  # a 401 is not retried


async def test_ghes_client_needs_the_api_prefix() -> None:
    state = FakeGitHubState(api_prefix="/api/v3")
    token = state.issue_token()
    transport = httpx.ASGITransport(app=create_fake_github(state))
    async with httpx.AsyncClient(transport=transport) as http:

        def client(api_url: str) -> GitHubClient:
            return GitHubClient(
                client_id=state.client_id,
                client_secret=None,
                web_url="https://ghe.test/",
                api_url=api_url,
                http=http,
            )

        assert (await client("https://ghe.test/api/v3/").fetch_identity(token)).login == "octocat"
        assert [r.path for r in state.requests] == ["/api/v3/user", "/api/v3/user/emails"]
        with pytest.raises(IdentityProviderError, match="HTTP 404"):
            await client("https://ghe.test").fetch_identity(token)
        assert state.requests[-1].path == "/user"


async def test_get_retried_after_503_then_succeeds(h: Harness) -> None:
    h.state.fail_api("/user", 503)
    token = h.state.issue_token()

    assert (await h.gh.fetch_identity(token)).login == "octocat"
    assert [r.status_code for r in h.received] == [503, 200, 200]  # /user twice, /user/emails
    assert_documented(h)


async def test_get_gives_up_after_three_attempts(h: Harness) -> None:
    h.state.fail_api("/user", 502, times=5)
    token = h.state.issue_token()

    with pytest.raises(IdentityProviderError, match="HTTP 502") as caught:
        await h.gh.fetch_identity(token)

    assert len(h.state.requests) == 3
    assert_clean(caught.value, token)


async def test_429_honours_short_retry_after_only(h: Harness) -> None:
    token = h.state.issue_token()
    h.state.fail_api("/user", 429, headers={"Retry-After": "0"})
    assert (await h.gh.fetch_identity(token)).login == "octocat"
    assert len(h.state.requests) == 3  # /user twice, then /user/emails

    h.state.fail_api("/user", 429, headers={"Retry-After": "3600"})
    with pytest.raises(IdentityProviderError, match="HTTP 429"):
        await h.gh.fetch_identity(token)
    assert len(h.state.requests) == 4  # too long a wait: not retried


async def test_network_errors(h: Harness) -> None:
    token = h.state.issue_token()
    request = httpx.Request("GET", WEB)
    h.transport.script = [
        httpx.ReadTimeout("slow", request=request),
        httpx.ConnectError("down", request=request),
    ]
    assert (await h.gh.fetch_identity(token)).login == "octocat"  # GETs retry any transport error

    h.transport.script = [httpx.ConnectError("down", request=request)] * 3
    with pytest.raises(
        IdentityProviderError, match=r"Could not reach GitHub \(ConnectError\)"
    ) as caught:
        await h.gh.fetch_identity(token)
    assert_clean(caught.value, token)


async def test_token_post_retries_connect_errors_only(h: Harness) -> None:
    code = h.state.add_device_code("pending", "success")
    request = httpx.Request("POST", WEB)
    h.transport.script = [httpx.ConnectError("down", request=request)]
    with pytest.raises(DeviceFlowError, match="not approved"):
        await h.gh.poll_device_token(code)  # retried: the first try never reached GitHub

    h.transport.script = [httpx.ReadTimeout("slow", request=request)]
    with pytest.raises(IdentityProviderError, match="did not answer in time") as caught:
        await h.gh.poll_device_token(code)
    assert_clean(caught.value, code)
    h.transport.script = [httpx.Response(503, text="unavailable")]
    with pytest.raises(IdentityProviderError, match="HTTP 503"):
        await h.gh.poll_device_token(code)
    assert len(h.state.requests_to("/login/oauth/access_token")) == 1  # neither was sent again


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"user_code": "ABCD-1234"}),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(500, json={"message": "boom"}),
    ],
)
async def test_malformed_device_code_answers(h: Harness, answer: httpx.Response) -> None:
    h.transport.script = [answer]

    with pytest.raises(IdentityProviderError):
        await h.gh.request_device_code()


async def test_malformed_user_answers(h: Harness) -> None:
    token = h.state.issue_token()
    h.transport.script = [httpx.Response(200, json={"login": "x", "id": "not-a-number"})]
    with pytest.raises(IdentityProviderError, match="'id'"):
        await h.gh.fetch_identity(token)
    h.transport.script = [httpx.Response(200, text="not json")]
    with pytest.raises(IdentityProviderError, match="unreadable"):
        await h.gh.fetch_identity(token)
    h.transport.script = [httpx.Response(200, json={"access_token": ""})]
    with pytest.raises(IdentityProviderError, match="access_token"):
        await h.gh.poll_device_token("code")


def test_fake_user_bodies_follow_the_spec() -> None:
    assert "get" in load_spec()["paths"]["/user"]
    validator = response_validator("/user")
    for user in (FakeUser(), private_email_user(), FakeUser(private_fields=False)):
        validator.validate(user.to_json("https://github.com", "https://api.github.com"))
    # The validator is strict enough to catch a wrong body.
    body = FakeUser().to_json("https://github.com", "https://api.github.com")
    for key, bad in (("id", "1"), ("created_at", "yesterday"), ("avatar_url", "not a uri")):
        assert not validator.is_valid(body | {key: bad})
    assert not validator.is_valid({k: v for k, v in body.items() if k != "login"})
    assert response_validator("/user", status="401").is_valid({"message": "Bad credentials"})


async def test_device_flow_against_real_server() -> None:
    state = FakeGitHubState(api_prefix="/api/v3", client_secret=SECRET)
    state.user = private_email_user()
    with serve_fake_github(state) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            gh = GitHubClient(
                client_id=state.client_id,
                client_secret=SECRET,
                web_url=url,
                api_url=f"{url}/api/v3",
                http=http,
            )
            code = await gh.request_device_code()
            assert code.verification_uri == f"{url}/login/device"
            state.script(code.device_code, "pending", "success")
            with pytest.raises(DeviceFlowError):
                await gh.poll_device_token(code.device_code)
            identity = await gh.fetch_identity(await gh.poll_device_token(code.device_code))
    assert identity.email == "hubber@example.com"
    assert [(r.method, r.path) for r in state.requests] == [
        ("POST", "/login/device/code"),
        ("POST", "/login/oauth/access_token"),
        ("POST", "/login/oauth/access_token"),
        ("GET", "/api/v3/user"),
        ("GET", "/api/v3/user/emails"),
    ]
    async with httpx.AsyncClient(timeout=2) as probe:
        with pytest.raises(httpx.ConnectError):  # shut down: the port no longer answers
            await probe.get(url)
