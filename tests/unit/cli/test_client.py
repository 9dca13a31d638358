"""The API client: envelopes, typed errors, bearer tokens and refresh on token_expired only."""

from __future__ import annotations

import ssl

import httpx
import pytest

from kavach.cli.client import ApiClient, decode, tls_verification
from kavach.cli.credentials import CredentialStore
from kavach.cli.errors import ApiError, ExitCode, NetworkError, NotLoggedIn
from kavach.cli.session import Session

from .conftest import SERVER, make_credentials
from .fake_api import USER, FakeApi, failure


def client_for(api: FakeApi, store: CredentialStore, *, env_token: str | None = None) -> ApiClient:
    return ApiClient(SERVER, Session(SERVER, store, env_token=env_token), transport=api.transport)


def login(api: FakeApi, store: CredentialStore, *, expired: bool = False) -> tuple[str, str]:
    access, refresh = api.issue()
    if expired:
        api.expire(access)
    store.save(SERVER, make_credentials(access, refresh, expires_in=-5 if expired else 900))
    return access, refresh


def test_success_returns_data_and_sends_the_bearer_token(
    api: FakeApi, store: CredentialStore
) -> None:
    access, _ = login(api, store)
    with client_for(api, store) as client:
        assert client.get("/auth/me") == USER
    assert api.calls[-1].authorization == f"Bearer {access}"


def test_requests_carry_a_user_agent_and_the_configured_timeouts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "data": 1})

    client = ApiClient(SERVER, transport=httpx.MockTransport(handler))
    assert client.get("/info", auth=False) == 1
    assert seen[0].headers["User-Agent"].startswith("kavach-cli/")
    assert "Authorization" not in seen[0].headers
    assert seen[0].extensions["timeout"] == {
        "connect": 5.0,
        "read": 30.0,
        "write": 30.0,
        "pool": 30.0,
    }


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (401, "invalid_token", ExitCode.AUTH),
        (403, "forbidden", ExitCode.AUTH),
        (404, "not_found", ExitCode.SERVER),
        (409, "conflict", ExitCode.SERVER),
        (422, "validation_failed", ExitCode.SERVER),
        (500, "internal_error", ExitCode.SERVER),
    ],
)
def test_error_envelopes_raise_api_error(status: int, code: str, exit_code: ExitCode) -> None:
    response = failure(status, code, "nope", data={"field": "name"})
    with pytest.raises(ApiError) as caught:
        decode(response)
    error = caught.value
    assert (error.status, error.error_code, error.message) == (status, code, "nope")
    assert error.data == {"field": "name"}
    assert error.exit_code == exit_code
    assert str(error) == f"nope ({code})"


def test_a_non_envelope_answer_is_a_server_error() -> None:
    response = httpx.Response(502, text="<html>Bad Gateway</html>")
    with pytest.raises(ApiError) as caught:
        decode(response)
    assert caught.value.error_code == "unexpected_response"
    assert caught.value.exit_code == ExitCode.SERVER


def test_retry_after_comes_from_the_header_or_the_data() -> None:
    with pytest.raises(ApiError) as header:
        decode(failure(429, "rate_limited", headers={"Retry-After": "7"}))
    assert header.value.retry_after == 7
    with pytest.raises(ApiError) as body:
        decode(failure(429, "rate_limited", data={"retry_after": 3}))
    assert body.value.retry_after == 3


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (httpx.ConnectError("refused"), "cannot reach http://kavach.test"),
        (httpx.ReadTimeout("slow"), "did not answer in time"),
    ],
)
def test_transport_failures_raise_network_error(raised: Exception, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    client = ApiClient(SERVER, transport=httpx.MockTransport(handler))
    with pytest.raises(NetworkError, match=message) as caught:
        client.get("/info", auth=False)
    assert caught.value.exit_code == ExitCode.SERVER


def test_token_expired_refreshes_once_and_retries(api: FakeApi, store: CredentialStore) -> None:
    _, refresh = login(api, store, expired=True)
    with client_for(api, store) as client:
        assert client.get("/auth/me") == USER

    assert [c.path for c in api.calls] == [
        "/api/v1/auth/me",
        "/api/v1/auth/refresh",
        "/api/v1/auth/me",
    ]
    refresh_call = api.calls[1]
    assert refresh_call.body == {"refresh_token": refresh}
    assert refresh_call.authorization is None
    saved = store.load(SERVER)
    assert saved is not None
    assert api.calls[2].authorization == f"Bearer {saved.access_token}"
    assert saved.refresh_token in api.live_refresh
    assert saved.login == "alice"  # kept from before, the refresh answer has no user
    assert not saved.is_expired()


@pytest.mark.parametrize("code", ["invalid_token", "not_authenticated", "refresh_token_reused"])
def test_other_401s_do_not_refresh(store: CredentialStore, code: str) -> None:
    api = FakeApi()
    login(api, store)
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return failure(401, code, "no")

    client = ApiClient(SERVER, Session(SERVER, store), transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as caught:
        client.get("/auth/me")
    assert caught.value.error_code == code
    assert calls == ["/api/v1/auth/me"]


def test_retry_happens_only_once(api: FakeApi, store: CredentialStore) -> None:
    login(api, store, expired=True)
    refreshes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/refresh"):
            refreshes.append(request.url.path)
            return api.handle(request)
        return failure(401, "token_expired", "still expired")

    client = ApiClient(SERVER, Session(SERVER, store), transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as caught:
        client.get("/auth/me")
    assert caught.value.error_code == "token_expired"
    assert len(refreshes) == 1


def test_a_rejected_refresh_means_not_logged_in(api: FakeApi, store: CredentialStore) -> None:
    _, refresh = login(api, store, expired=True)
    api.live_refresh.discard(refresh)  # the server revoked the session
    with pytest.raises(NotLoggedIn, match="session has ended") as caught:
        client_for(api, store).get("/auth/me")
    assert caught.value.code == "invalid_refresh_token"
    assert caught.value.exit_code == ExitCode.AUTH


def test_env_token_is_sent_and_never_refreshed(api: FakeApi, store: CredentialStore) -> None:
    login(api, store)  # stored credentials exist but must be ignored
    api.expired_access.add("env-token")
    with pytest.raises(ApiError) as caught:
        client_for(api, store, env_token="env-token").get("/auth/me")
    assert caught.value.error_code == "token_expired"
    assert [c.authorization for c in api.calls] == ["Bearer env-token"]


def test_not_logged_in_fails_before_any_request(api: FakeApi, store: CredentialStore) -> None:
    with pytest.raises(NotLoggedIn) as caught:
        client_for(api, store).get("/auth/me")
    assert caught.value.exit_code == ExitCode.AUTH
    assert api.calls == []


def test_verbose_log_never_contains_tokens(api: FakeApi, store: CredentialStore) -> None:
    access, refresh = login(api, store, expired=True)
    lines: list[str] = []
    client = ApiClient(SERVER, Session(SERVER, store), transport=api.transport, log=lines.append)
    client.get("/auth/me")
    saved = store.load(SERVER)
    assert saved is not None
    assert any("/api/v1/auth/refresh -> 200" in line for line in lines)
    for secret in (access, refresh, saved.access_token, saved.refresh_token):
        assert all(secret not in line for line in lines)


def test_health_returns_the_plain_status(api: FakeApi) -> None:
    client = ApiClient(SERVER, transport=api.transport)
    assert client.health() == (200, {"status": "ok"})
    api.healthy = False
    assert client.health() == (503, {"status": "degraded"})


def test_a_plain_http_server_gets_a_tls_context_that_trusts_nothing() -> None:
    context = tls_verification("http://127.0.0.1:8080")

    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_an_https_server_is_checked_against_the_default_trust_store() -> None:
    assert tls_verification("https://kavach.example") is True
