"""The GitHub Actions secrets provider against the fake GitHub, and the fake against the spec."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from pydantic import SecretStr, ValidationError

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers import base
from kavach.server.providers.egress import Egress
from kavach.server.providers.github import (
    API_VERSION,
    DEFAULT_API_URL,
    PER_PAGE,
    RATE_LIMIT_WAIT,
    GitHubActionsProvider,
    GitHubConfig,
    GitHubCredentials,
)
from tests.fakes.github import _openapi_to_jsonschema, load_spec, response_validator
from tests.fakes.github_actions import (
    REPO_PATHS,
    SECONDARY_RATE_LIMIT,
    FakeActionsState,
    create_fake_github_actions,
    serve_fake_github_actions,
)

OWNER, REPO, ENV = "octo-org", "app", "production"
REPO_KEY = f"/repos/{OWNER}/{REPO}/actions/secrets/public-key"
REPO_SECRETS = f"/repos/{OWNER}/{REPO}/actions/secrets"
ENV_KEY = f"/repos/{OWNER}/{REPO}/environments/{ENV}/secrets/public-key"
ENV_SECRETS = f"/repos/{OWNER}/{REPO}/environments/{ENV}/secrets"
VALUE = "postgres://app:correct-horse-battery@db.internal/app"
LOCAL = Egress(allow_private=True)  # the fake listens on loopback


@pytest.fixture
def state() -> Iterator[FakeActionsState]:
    """A fake GitHub with one repository and two environments; it must see no spec violation."""
    fake = FakeActionsState()
    fake.add_repo(OWNER, REPO, environments=(ENV, "staging eu"))
    yield fake
    assert fake.violations == []


@pytest.fixture
async def http(state: FakeActionsState) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the fake in process."""
    transport = httpx.ASGITransport(app=create_fake_github_actions(state))
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


def make(
    http: httpx.AsyncClient,
    token: str,
    *,
    environment: str | None = None,
    owner: str = OWNER,
    repository: str = REPO,
    api_url: str = DEFAULT_API_URL,
) -> GitHubActionsProvider:
    """Build the provider the way the sync engine does: from validated models."""
    config = GitHubConfig.model_validate(
        {"owner": owner, "repository": repository, "environment": environment, "api_url": api_url}
    )
    credentials = GitHubCredentials.model_validate({"token": token})
    return GitHubActionsProvider(config=config, credentials=credentials, http=http, egress=LOCAL)


@pytest.fixture
def gh(http: httpx.AsyncClient, state: FakeActionsState) -> GitHubActionsProvider:
    """The provider for the repository's own secrets."""
    return make(http, state.token)


@pytest.fixture
def gh_env(http: httpx.AsyncClient, state: FakeActionsState) -> GitHubActionsProvider:
    """The provider for the production environment's secrets."""
    return make(http, state.token, environment=ENV)


def assert_clean(error: ProviderError, *secrets: str) -> None:
    """No credential or value may show in what an error says."""
    for text in (str(error), repr(error), error.message):
        for secret in secrets:
            assert secret not in text


# --- identity and names ---------------------------------------------------------------------


def test_registered_under_github() -> None:
    assert base._REGISTRY["github"] is GitHubActionsProvider
    assert GitHubActionsProvider.config_model is GitHubConfig
    assert GitHubActionsProvider.credentials_model is GitHubCredentials


def test_target_keys(http: httpx.AsyncClient, state: FakeActionsState) -> None:
    assert make(http, state.token).target_key() == "github:octo-org/app"
    assert make(http, state.token, environment="Production").target_key() == (
        "github:octo-org/app:production"
    )
    assert make(http, state.token, owner="Octo-Org", repository="App").target_key() == (
        "github:octo-org/app"
    )
    ghes = make(http, state.token, api_url="https://GHE.example.com/api/v3/")
    assert ghes.target_key() == "github:ghe.example.com/octo-org/app"


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("DB_URL", "DB_URL"),
        ("db_url", "DB_URL"),
        ("db-url", "DB_URL"),
        ("api.key", "API_KEY"),
        ("a b/c:d", "A_B_C_D"),
        ("_private", "_PRIVATE"),
        ("key2", "KEY2"),
        ("MY_GITHUB_TOKEN", "MY_GITHUB_TOKEN"),
        ("cafè", "CAF_"),
    ],
)
def test_remote_name_mapping(gh: GitHubActionsProvider, name: str, remote: str) -> None:
    assert gh.remote_name(name) == remote
    assert gh.remote_name(remote) == remote  # mapping is idempotent


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("1password", "digit"),
        ("9", "digit"),
        ("github_token", "GITHUB_"),
        ("GitHub-Token", "GITHUB_"),
        ("github.sha", "GITHUB_"),
        ("", "empty"),
    ],
)
def test_remote_name_refusals(gh: GitHubActionsProvider, name: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        gh.remote_name(name)
    assert reason in caught.value.message
    if name:
        assert repr(name) in caught.value.message


async def test_mapped_names_are_accepted_by_github(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    for name in ("db-url", "api.key", "_x", "Mixed.Case-name"):
        await gh.put(gh.remote_name(name), name)
    assert state.names(OWNER, REPO) == ["API_KEY", "DB_URL", "MIXED_CASE_NAME", "_X"]


async def test_put_refuses_an_unmapped_name(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    with pytest.raises(ValidationFailed):
        await gh.put("db-url", VALUE)
    assert state.requests == []


# --- config and credentials -----------------------------------------------------------------


def test_config_defaults_and_normalisation() -> None:
    config = GitHubConfig(owner=OWNER, repository=REPO)
    assert config.api_url == "https://api.github.com"
    assert config.environment is None
    ghes = GitHubConfig(owner=OWNER, repository="app.v2", api_url="https://ghe.example.com/api/v3/")
    assert ghes.api_url == "https://ghe.example.com/api/v3"
    local = GitHubConfig(owner=OWNER, repository=REPO, api_url="http://127.0.0.1:8080/api/v3")
    assert local.api_url == "http://127.0.0.1:8080/api/v3"
    dumped = GitHubConfig(owner=OWNER, repository=REPO, environment=ENV).model_dump(
        mode="json", exclude_none=True
    )
    assert dumped == {
        "owner": OWNER,
        "repository": REPO,
        "environment": ENV,
        "api_url": DEFAULT_API_URL,
    }


@pytest.mark.parametrize(
    "data",
    [
        {"owner": "octo/org", "repository": REPO},
        {"owner": OWNER, "repository": "a/b"},
        {"owner": OWNER, "repository": ".."},
        {"owner": "", "repository": REPO},
        {"owner": OWNER, "repository": REPO, "environment": ""},
        {"owner": OWNER, "repository": REPO, "environment": "bad\nname"},
        {"owner": OWNER, "repository": REPO, "api_url": "http://ghe.example.com/api/v3"},
        {"owner": OWNER, "repository": REPO, "api_url": "ftp://ghe.example.com"},
        {"owner": OWNER, "repository": REPO, "api_url": "https://u:p@ghe.example.com"},
        {"owner": OWNER, "repository": REPO, "api_url": "https://ghe.example.com/?x=1"},
        {"owner": OWNER, "repository": REPO, "token": "nope"},
    ],
)
def test_config_refusals(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GitHubConfig.model_validate(data)


def test_credentials_hide_the_token(gh: GitHubActionsProvider, state: FakeActionsState) -> None:
    credentials = GitHubCredentials(token=SecretStr(state.token))
    assert state.token not in repr(credentials)
    assert state.token not in str(credentials.model_dump())
    assert state.token not in repr(gh)
    with pytest.raises(ValidationError):
        GitHubCredentials.model_validate({"token": ""})
    with pytest.raises(ValidationError):
        GitHubCredentials.model_validate({"token": "x", "extra": "y"})


def test_wrong_models_are_refused(http: httpx.AsyncClient) -> None:
    with pytest.raises(TypeError):
        GitHubActionsProvider(
            config=GitHubCredentials(token=SecretStr("t")),
            credentials=GitHubCredentials(token=SecretStr("t")),
            http=http,
            egress=LOCAL,
        )


# --- test() ---------------------------------------------------------------------------------


async def test_test_reads_without_writing(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await gh.test()
    assert [(r.method, r.path) for r in state.requests] == [
        ("GET", REPO_KEY),
        ("GET", REPO_SECRETS),
    ]
    assert state.requests[1].query == {"per_page": "1", "page": "1"}
    for request in state.requests:
        assert request.auth_scheme == "Bearer"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == API_VERSION == "2022-11-28"


async def test_test_checks_the_environment(
    gh_env: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await gh_env.test()
    assert [(r.method, r.path) for r in state.requests] == [
        ("GET", REPO_KEY),
        ("GET", ENV_KEY),
        ("GET", ENV_SECRETS),
    ]
    await gh_env.put("DB_URL", VALUE)  # test() already cached the key
    assert len(state.requests_to(ENV_KEY)) == 1


async def test_test_with_a_bad_token(http: httpx.AsyncClient, state: FakeActionsState) -> None:
    token = "ghp_not0a0real0token0abcdef"
    with pytest.raises(ProviderError) as caught:
        await make(http, token).test()
    assert not caught.value.retryable
    assert "rejected the token" in caught.value.message
    assert_clean(caught.value, token, state.token)


async def test_test_with_an_unknown_repository(
    http: httpx.AsyncClient, state: FakeActionsState
) -> None:
    with pytest.raises(ProviderError) as caught:
        await make(http, state.token, repository="missing").test()
    assert not caught.value.retryable
    assert "repository octo-org/missing was not found" in caught.value.message


async def test_test_with_an_unknown_environment(
    http: httpx.AsyncClient, state: FakeActionsState
) -> None:
    with pytest.raises(ProviderError) as caught:
        await make(http, state.token, environment="qa").test()
    assert not caught.value.retryable
    assert "environment 'qa' was not found in repository octo-org/app" in caught.value.message


async def test_test_with_a_token_that_cannot_read_secrets(
    http: httpx.AsyncClient, state: FakeActionsState
) -> None:
    state.tokens["ghp_read0only"] = "read"
    with pytest.raises(ProviderError) as caught:
        await make(http, "ghp_read0only").test()
    assert not caught.value.retryable
    assert "403" in caught.value.message
    assert "lacks permission" in caught.value.message
    assert_clean(caught.value, "ghp_read0only")


# --- put, list, delete ----------------------------------------------------------------------


async def test_put_creates_then_updates(gh: GitHubActionsProvider, state: FakeActionsState) -> None:
    await gh.put("DB_URL", VALUE)
    assert state.plaintext(OWNER, REPO, None, "DB_URL") == VALUE
    created = state.store(OWNER, REPO).secrets["DB_URL"].created_at
    await gh.put("DB_URL", "second value ✓")
    assert state.plaintext(OWNER, REPO, None, "DB_URL") == "second value ✓"
    assert state.store(OWNER, REPO).secrets["DB_URL"].created_at == created
    puts = state.requests_to(f"{REPO_SECRETS}/DB_URL", "PUT")
    assert len(puts) == 2
    assert puts[0].json["key_id"] == state.store(OWNER, REPO).key_id
    assert set(puts[0].json) == {"encrypted_value", "key_id"}
    # Sealed boxes are randomised: the same value never travels twice the same way.
    assert VALUE not in json.dumps(puts[0].json)


async def test_put_goes_to_the_environment_only(
    gh_env: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await gh_env.put("DB_URL", VALUE)
    assert state.plaintext(OWNER, REPO, ENV, "DB_URL") == VALUE
    assert state.names(OWNER, REPO) == []
    assert state.names(OWNER, REPO, "staging eu") == []
    put = state.requests_to(f"{ENV_SECRETS}/DB_URL", "PUT")[0]
    assert put.json["key_id"] == state.store(OWNER, REPO, ENV).key_id


async def test_environment_names_are_quoted(
    http: httpx.AsyncClient, state: FakeActionsState
) -> None:
    gh = make(http, state.token, environment="staging eu")
    await gh.put("TOKEN", VALUE)
    assert state.plaintext(OWNER, REPO, "staging eu", "TOKEN") == VALUE


async def test_the_public_key_is_fetched_once(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await asyncio.gather(*(gh.put(f"S{i}", f"v{i}") for i in range(10)))
    await gh.put("S0", "again")
    assert len(state.requests_to(REPO_KEY)) == 1
    assert state.plaintext(OWNER, REPO, None, "S7") == "v7"
    assert state.plaintext(OWNER, REPO, None, "S0") == "again"


async def test_put_of_a_value_over_48_kb(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await gh.put("BIG", "x" * 48 * 1024)
    assert len(state.plaintext(OWNER, REPO, None, "BIG")) == 48 * 1024
    with pytest.raises(ProviderError) as caught:
        await gh.put("BIG", "y" * (48 * 1024 + 1))
    assert not caught.value.retryable
    assert "BIG" in caught.value.message
    assert len(state.requests_to(f"{REPO_SECRETS}/BIG", "PUT")) == 1


async def test_list_remote_is_unmarked_and_paginated(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    names = [f"SECRET_{i:03d}" for i in range(2 * PER_PAGE + 5)]
    for name in names:
        state.seed(OWNER, REPO, None, name)
    found = await gh.list_remote()
    assert sorted(found) == names
    assert all(s == base.RemoteSecret(n, managed=False) for n, s in found.items())
    pages = state.requests_to(REPO_SECRETS, "GET")
    assert [r.query for r in pages] == [
        {"per_page": "100", "page": "1"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]


async def test_list_remote_of_an_exact_page(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    for i in range(PER_PAGE):
        state.seed(OWNER, REPO, None, f"S{i}")
    assert len(await gh.list_remote()) == PER_PAGE
    assert len(state.requests_to(REPO_SECRETS, "GET")) == 1


async def test_list_remote_empty_and_environment(
    gh: GitHubActionsProvider, gh_env: GitHubActionsProvider, state: FakeActionsState
) -> None:
    assert await gh.list_remote() == {}
    state.seed(OWNER, REPO, ENV, "ONLY_IN_ENV")
    state.seed(OWNER, REPO, None, "ONLY_IN_REPO")
    assert list(await gh_env.list_remote()) == ["ONLY_IN_ENV"]
    assert list(await gh.list_remote()) == ["ONLY_IN_REPO"]


async def test_delete_and_delete_again(gh: GitHubActionsProvider, state: FakeActionsState) -> None:
    state.seed(OWNER, REPO, None, "OLD")
    state.seed(OWNER, REPO, None, "KEEP")
    await gh.delete("OLD")
    assert state.names(OWNER, REPO) == ["KEEP"]
    await gh.delete("OLD")  # already gone: fine
    assert state.names(OWNER, REPO) == ["KEEP"]


async def test_delete_in_an_environment(
    gh_env: GitHubActionsProvider, state: FakeActionsState
) -> None:
    state.seed(OWNER, REPO, ENV, "OLD")
    state.seed(OWNER, REPO, None, "OLD")
    await gh_env.delete("OLD")
    await gh_env.delete("NEVER_THERE")
    assert state.names(OWNER, REPO, ENV) == []
    assert state.names(OWNER, REPO) == ["OLD"]


@pytest.mark.parametrize(
    ("repository", "environment", "expected"),
    [
        ("gone", None, "repository octo-org/gone was not found"),
        ("gone", ENV, "repository octo-org/gone was not found"),
        (REPO, "qa", "environment 'qa' was not found"),
    ],
)
@pytest.mark.parametrize("operation", ["put", "delete", "list"])
async def test_missing_targets_are_not_retryable(
    http: httpx.AsyncClient,
    state: FakeActionsState,
    repository: str,
    environment: str | None,
    expected: str,
    operation: str,
) -> None:
    gh = make(http, state.token, repository=repository, environment=environment)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "put": lambda: gh.put("DB_URL", VALUE),
        "delete": lambda: gh.delete("DB_URL"),
        "list": gh.list_remote,
    }
    with pytest.raises(ProviderError) as caught:
        await calls[operation]()
    assert not caught.value.retryable
    assert expected in caught.value.message
    assert_clean(caught.value, VALUE, state.token)


# --- failures -------------------------------------------------------------------------------

FAULTS: list[tuple[str, int, dict[str, str], str, bool, float | None]] = [
    # id, status, headers, GitHub's message, retryable, retry_after
    ("429-retry-after", 429, {"Retry-After": "7"}, "Too Many Requests", True, 7.0),
    ("429-bare", 429, {}, "Too Many Requests", True, RATE_LIMIT_WAIT),
    ("403-secondary-retry-after", 403, {"retry-after": "42"}, SECONDARY_RATE_LIMIT, True, 42.0),
    ("403-secondary-bare", 403, {}, SECONDARY_RATE_LIMIT, True, RATE_LIMIT_WAIT),
    ("403-primary", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "RESET"},
     "API rate limit exceeded for user ID 1.", True, 30.0),
    ("500", 500, {}, "Server Error", True, None),
    ("502", 502, {}, "Bad Gateway", True, None),
    ("503-retry-after", 503, {"Retry-After": "3"}, "Service Unavailable", True, 3.0),
    ("503-http-date", 503, {"Retry-After": "DATE"}, "", True, 120.0),
    ("401", 401, {}, "Bad credentials", False, None),
    ("403-permission", 403, {"x-ratelimit-remaining": "4999"},
     "Resource not accessible by personal access token", False, None),
    ("404", 404, {}, "Not Found", False, None),
    ("409", 409, {}, "Conflict", False, None),
    ("422", 422, {}, "Invalid request.", False, None),
    ("301", 301, {"Location": "https://api.github.com/repositories/1"}, "Moved", False, None),
]  # fmt: skip
OPERATIONS: dict[str, tuple[str, str]] = {
    # operation -> the request the fault is put on (method, path)
    "test": ("GET", REPO_KEY),
    "list": ("GET", REPO_SECRETS),
    "put": ("PUT", f"{REPO_SECRETS}/DB_URL"),
    "delete": ("DELETE", f"{REPO_SECRETS}/DB_URL"),
}


def run(gh: GitHubActionsProvider, operation: str) -> Awaitable[object]:
    """Start one provider operation by name."""
    if operation == "test":
        return gh.test()
    if operation == "list":
        return gh.list_remote()
    if operation == "put":
        return gh.put("DB_URL", VALUE)
    return gh.delete("DB_URL")


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(
    ("status", "headers", "message", "retryable", "retry_after"),
    [pytest.param(*fault[1:], id=fault[0]) for fault in FAULTS],
)
async def test_failures_are_classified(
    gh: GitHubActionsProvider,
    state: FakeActionsState,
    operation: str,
    status: int,
    headers: dict[str, str],
    message: str,
    retryable: bool,
    retry_after: float | None,
) -> None:
    state.seed(OWNER, REPO, None, "DB_URL")
    placeholders = {
        "RESET": str(int(time.time()) + 30),
        "DATE": format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True),
    }
    headers = {k: placeholders.get(v, v) for k, v in headers.items()}
    method, path = OPERATIONS[operation]
    state.fail(status, method=method, path=path, headers=headers, message=message)
    if status == 404 and operation == "delete":
        await run(gh, operation)  # a secret already gone from a target that exists
        assert len(state.requests_to(path, method)) == 1
        return
    with pytest.raises(ProviderError) as caught:
        await run(gh, operation)
    error = caught.value
    assert error.retryable is retryable, error.message
    if retry_after is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(retry_after, abs=2.5)
    if status == 401:
        assert "rejected the token" in error.message
    elif status == 404 and operation == "test":
        assert "repository octo-org/app was not found" in error.message
    else:
        assert f"HTTP {status}" in error.message
    # GitHub's free text is used to classify the answer, never repeated.
    assert not message or message[:20] not in error.message
    assert_clean(error, VALUE, state.token)
    # One request per call for the failing step: the provider never retries by itself.
    assert len(state.requests_to(path, method)) == 1


async def test_a_fault_n_times_then_success(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    state.fail(500, method="PUT", secret="DB_URL", times=2)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await gh.put("DB_URL", VALUE)
        assert caught.value.retryable
    await gh.put("DB_URL", VALUE)
    assert state.plaintext(OWNER, REPO, None, "DB_URL") == VALUE
    assert len(state.requests_to(f"{REPO_SECRETS}/DB_URL", "PUT")) == 3


async def test_a_fault_on_one_secret_only(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    state.fail(429, secret="BAD", headers={"Retry-After": "5"})
    await gh.put("GOOD", "g")
    with pytest.raises(ProviderError) as caught:
        await gh.put("BAD", "b")
    assert caught.value.retry_after == 5.0
    assert state.names(OWNER, REPO) == ["GOOD"]


async def test_timeouts_and_refused_connections_are_retryable(state: FakeActionsState) -> None:
    state.slow(1.0, method="PUT", secret="SLOW")
    with serve_fake_github_actions(state) as url:
        async with httpx.AsyncClient(timeout=0.2) as http:
            gh = make(http, state.token, api_url=url)
            await gh.put("FAST", "f")
            with pytest.raises(ProviderError) as caught:
                await gh.put("SLOW", VALUE)
            assert caught.value.retryable
            assert "timed out" in caught.value.message
            assert_clean(caught.value, VALUE, state.token)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(ProviderError) as caught:
            await make(http, state.token, api_url=f"http://127.0.0.1:{port}").test()
    assert caught.value.retryable
    assert "could not reach GitHub" in caught.value.message


async def test_unexpected_answers_are_not_retryable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/public-key"):
            return httpx.Response(200, json={"key_id": "1", "key": "bm90IGEga2V5"})
        return httpx.Response(200, text="<html>login</html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        gh = make(http, "ghp_x")
        with pytest.raises(ProviderError) as caught:
            await gh.put("A", VALUE)
        assert "unusable public key" in caught.value.message
        with pytest.raises(ProviderError) as caught:
            await gh.list_remote()
        assert "unexpected body" in caught.value.message
        assert not caught.value.retryable


# --- GitHub Enterprise Server and a real server ---------------------------------------------


async def test_enterprise_server_prefix() -> None:
    state = FakeActionsState(api_prefix="/api/v3")
    state.add_repo(OWNER, REPO, environments=(ENV,))
    transport = httpx.ASGITransport(app=create_fake_github_actions(state))
    async with httpx.AsyncClient(transport=transport) as http:
        gh = make(http, state.token, environment=ENV, api_url="https://ghe.example.com/api/v3/")
        await gh.test()
        await gh.put("DB_URL", VALUE)
        assert list(await gh.list_remote()) == ["DB_URL"]
    assert state.plaintext(OWNER, REPO, ENV, "DB_URL") == VALUE
    assert state.violations == []
    assert state.requests_to(ENV_KEY)


async def test_over_a_real_socket(state: FakeActionsState) -> None:
    state.api_prefix = "/api/v3"
    with serve_fake_github_actions(state) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            gh = make(http, state.token, environment=ENV, api_url=f"{url}/api/v3")
            await gh.test()
            await gh.put("DB_URL", VALUE)
            assert list(await gh.list_remote()) == ["DB_URL"]
            await gh.delete("DB_URL")
            assert await gh.list_remote() == {}
            await gh.aclose()
    assert state.names(OWNER, REPO, ENV) == []


# --- conformance with GitHub's OpenAPI description -------------------------------------------


def _spec_route(method: str, path: str) -> str | None:
    """Return the documented path template a request matches (repository and environment)."""
    spec = load_spec()
    template: str
    for template in spec["paths"]:
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in spec["paths"][template]:
            if template.endswith("{secret_name}") and path.endswith("/public-key"):
                continue
            return template
    return None


async def test_requests_and_responses_follow_the_spec(state: FakeActionsState) -> None:
    """Check the wire against the spec directly, independently of the fake's own checks."""
    exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        exchanges.append((response.request, response))

    transport = httpx.ASGITransport(app=create_fake_github_actions(state))
    async with httpx.AsyncClient(transport=transport, event_hooks={"response": [keep]}) as http:
        for environment in (None, ENV):
            gh = make(http, state.token, environment=environment)
            await gh.test()
            await gh.put("DB_URL", VALUE)
            await gh.put("DB_URL", VALUE + "2")
            await gh.list_remote()
            await gh.delete("DB_URL")

    spec = load_spec()
    seen = set()
    for request, response in exchanges:
        template = _spec_route(request.method, request.url.path)
        assert template in REPO_PATHS, f"{request.method} {request.url.path}"
        operation = spec["paths"][template][request.method.lower()]
        seen.add((request.method, template))
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert set(request.url.params) <= documented
        if "requestBody" in operation:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            jsonschema.validate(json.loads(request.content), _openapi_to_jsonschema(schema))
        assert str(response.status_code) in operation["responses"]
        if response.content:
            validator = response_validator(
                template, request.method.lower(), str(response.status_code)
            )
            validator.validate(response.json())
    statuses = {(r.method, r.url.path.rsplit("/", 1)[-1], s.status_code) for r, s in exchanges}
    assert ("PUT", "DB_URL", 201) in statuses
    assert ("PUT", "DB_URL", 204) in statuses
    assert ("DELETE", "DB_URL", 204) in statuses
    assert len(seen) == 8  # key, list, PUT, DELETE for repository and environment


async def test_uploaded_values_open_with_the_private_key_only(
    gh: GitHubActionsProvider, state: FakeActionsState
) -> None:
    await gh.put("DB_URL", VALUE)
    sealed = base64.b64decode(
        state.requests_to(f"{REPO_SECRETS}/DB_URL")[0].json["encrypted_value"]
    )
    assert SealedBox(state.store(OWNER, REPO).private_key).decrypt(sealed).decode() == VALUE
    with pytest.raises(CryptoError):
        SealedBox(PrivateKey.generate()).decrypt(sealed)


async def test_the_fake_rejects_what_github_would(
    http: httpx.AsyncClient, state: FakeActionsState
) -> None:
    """The fake's checks can fail: bad bodies, wrong keys, bad names, undocumented calls."""
    auth = {"Authorization": f"Bearer {state.token}"}
    url = f"{DEFAULT_API_URL}{REPO_SECRETS}"
    key_id = state.store(OWNER, REPO).key_id
    good = state.store(OWNER, REPO).seal("v")
    bad = [
        ("PUT", f"{url}/A", {"encrypted_value": "not base64!"}, True),
        ("PUT", f"{url}/A", {"encrypted_value": good, "key_id": "0"}, False),
        ("PUT", f"{url}/A", {"encrypted_value": "c2VjcmV0", "key_id": key_id}, False),
        ("PUT", f"{url}/GITHUB_A", {"encrypted_value": good, "key_id": key_id}, False),
        ("PUT", f"{url}/1A", {"encrypted_value": good, "key_id": key_id}, False),
        ("GET", f"{url}?per_page=abc", None, True),
        ("GET", f"{url}?sort=name", None, True),
    ]
    for method, target, body, violates_spec in bad:
        before = len(state.violations)
        response = await http.request(method, target, json=body, headers=auth)
        assert response.status_code == 422, (method, target)
        assert (len(state.violations) > before) is violates_spec, (method, target)
    response = await http.get(f"{DEFAULT_API_URL}/repos/{OWNER}/{REPO}", headers=auth)
    assert response.status_code == 404
    assert state.violations[-1] == f"GET /repos/{OWNER}/{REPO}: not a documented operation"
    response = await http.get(f"{url}/public-key", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert state.names(OWNER, REPO) == []
    state.violations.clear()
