"""The GCP Secret Manager provider, through the official client, against the fake GCP."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import google.auth.transport.requests
import httpx
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from pydantic import ValidationError

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers.base import MANAGED_BY_KEY, MANAGED_BY_VALUE, RemoteSecret
from kavach.server.providers.egress import Egress
from kavach.server.providers.gcp import GCPConfig, GCPCredentials, GCPSecretManager
from kavach.server.sync.plan import map_names
from tests.fakes.gcp import (
    CLOUD_PLATFORM,
    FakeGCPState,
    crc32c,
    discovery,
    new_service_account,
    serve_fake_gcp,
)

PROJECT = "kavach-test"
SECRET_VALUE = "s3cr3t-Value-that-must-never-leak"


@dataclass
class Fake:
    """A running fake and its state."""

    state: FakeGCPState
    url: str


MakeProvider = Callable[..., GCPSecretManager]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """One service-account key for the module (RSA generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def served() -> Iterator[Fake]:
    """Run one fake GCP for the module."""
    state = FakeGCPState()
    with serve_fake_gcp(state) as url:
        yield Fake(state, url)


@pytest.fixture
def fake(served: Fake) -> Iterator[Fake]:
    """Start each test on an empty fake; every request it saw must have matched the spec."""
    served.state.reset()
    yield served
    assert served.state.violations == []


@pytest.fixture
def key_file(fake: Fake, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """A key file whose key the fake trusts."""
    return new_service_account(fake.state, fake.url, key=rsa_key)


@pytest.fixture
async def make_provider(fake: Fake, key_file: dict[str, Any]) -> AsyncIterator[MakeProvider]:
    """Build providers against the fake (config overrides as keywords); close them after."""
    made: list[GCPSecretManager] = []
    async with httpx.AsyncClient() as http:

        def make(credentials: dict[str, Any] | None = None, **config: Any) -> GCPSecretManager:
            settings = {"project_id": PROJECT, "api_endpoint": fake.url, "timeout_seconds": 5}
            provider = GCPSecretManager(
                config=GCPConfig.model_validate(settings | config),
                credentials=GCPCredentials.model_validate(credentials or key_file),
                http=http,
                egress=Egress(allow_private=True),  # the fake listens on loopback
            )
            made.append(provider)
            return provider

        yield make
        for provider in made:
            await provider.aclose()


async def failure(call: Awaitable[object]) -> ProviderError:
    """Await a call that must fail with a ProviderError and return the error."""
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


# Models, names, target key


def test_credentials_accept_a_key_file_and_hide_the_private_key(key_file: dict[str, Any]) -> None:
    credentials = GCPCredentials.model_validate(key_file | {"some_future_field": 1})
    assert credentials.client_email == key_file["client_email"]
    assert credentials.key_file()["private_key"] == key_file["private_key"]
    assert "PRIVATE KEY" not in repr(credentials)
    assert "PRIVATE KEY" not in str(credentials.model_dump())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n"}, "PEM-encoded RSA"),
        ({"type": "authorized_user"}, "type"),
        ({"token_uri": "http://oauth.example.com/token"}, "https"),
        ({"client_email": "not-an-email"}, "client_email"),
    ],
)
def test_credentials_errors_never_echo_the_key(
    key_file: dict[str, Any], change: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        GCPCredentials.model_validate(key_file | change)
    text = str(caught.value)
    assert problem in text
    assert "PRIVATE KEY" not in text
    assert key_file["private_key"][40:80] not in text


def test_credentials_without_a_private_key_are_refused(key_file: dict[str, Any]) -> None:
    del key_file["private_key"]
    with pytest.raises(ValidationError, match="private_key"):
        GCPCredentials.model_validate(key_file)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"project_id": "Bad_Project"}, "project_id"),
        ({"project_id": PROJECT, "location": "Europe West"}, "location"),
        ({"project_id": PROJECT, "prefix": "app."}, "prefix"),
        ({"project_id": PROJECT, "labels": {MANAGED_BY_KEY: "me"}}, "set by Kavach"),
        ({"project_id": PROJECT, "labels": {"Team": "x"}}, "label key"),
        ({"project_id": PROJECT, "labels": {"team": "Platform"}}, "values are lowercase"),
        ({"project_id": PROJECT, "api_endpoint": "http://secretmanager.example.com"}, "https"),
        ({"project_id": PROJECT, "api_endpoint": "https://h/?x=1"}, "query"),
        ({"project_id": PROJECT, "timeout_seconds": 0}, "timeout_seconds"),
        ({"project_id": PROJECT, "unknown": 1}, "unknown"),
    ],
)
def test_config_refuses_what_gcp_or_safety_forbids(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        GCPConfig.model_validate(config)


def test_config_accepts_ids_numbers_and_loopback_http() -> None:
    for project in ("my-project-42", "example.com:my-project", "123456789012"):
        assert GCPConfig(project_id=project).project_id == project
    local = GCPConfig(project_id=PROJECT, api_endpoint="http://127.0.0.1:8080")
    assert local.api_endpoint == "http://127.0.0.1:8080"
    bare = GCPConfig(project_id=PROJECT, api_endpoint="secretmanager.googleapis.com")
    assert bare.api_endpoint == "secretmanager.googleapis.com"


async def test_target_key_and_endpoint_per_location(make_provider: MakeProvider) -> None:
    assert make_provider().target_key() == "gcp:kavach-test"
    regional = make_provider(location="europe-west1", api_endpoint=None)
    assert regional.target_key() == "gcp:kavach-test/europe-west1"
    # Regional secrets live behind the location's own endpoint.
    assert regional._client.api_endpoint == "secretmanager.europe-west1.rep.googleapis.com"
    assert make_provider(api_endpoint=None)._client.api_endpoint == "secretmanager.googleapis.com"
    assert "PRIVATE KEY" not in repr(regional)


async def test_remote_names_map_dots_and_take_the_prefix(make_provider: MakeProvider) -> None:
    plain, prefixed = make_provider(), make_provider(prefix="app-")
    assert plain.remote_name("DB_PASSWORD") == "DB_PASSWORD"
    assert plain.remote_name("db.password") == "db_password"
    assert plain.remote_name("api-key") == "api-key"
    assert prefixed.remote_name("db.password") == "app-db_password"
    assert prefixed.remote_name("x" * 251) == "app-" + "x" * 251
    # `.` and `_` meet on one remote name: the engine's mapping reports the clash.
    with pytest.raises(ValidationFailed, match=r"a\.b and a_b -> a_b"):
        map_names(["a.b", "a_b"], plain.remote_name)


@pytest.mark.parametrize("name", ["naïve", "with space", "slash/name", ""])
async def test_remote_name_refuses_characters_gcp_lacks(
    make_provider: MakeProvider, name: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make_provider().remote_name(name)
    assert repr(name) in caught.value.message


async def test_remote_name_refuses_names_too_long_with_the_prefix(
    make_provider: MakeProvider,
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make_provider(prefix="app-").remote_name("x" * 252)
    assert "'" + "x" * 252 + "'" in caught.value.message
    assert "256 characters" in caught.value.message


# test()


async def test_test_lists_one_secret_and_writes_nothing(
    fake: Fake, make_provider: MakeProvider
) -> None:
    fake.state.seed(PROJECT, "one", "1")
    fake.state.seed(PROJECT, "two", "2")
    await make_provider().test()
    (call,) = fake.state.requests
    assert (call.method, call.operation, call.query["pageSize"]) == ("GET", "secrets.list", "1")
    assert call.path == f"/v1/projects/{PROJECT}/secrets"
    assert call.had_authorization
    # A service-account key signs its own JWT: no token exchange is needed.
    assert fake.state.requests_to("token") == []


async def test_test_fails_for_a_key_gcp_does_not_know(
    fake: Fake, make_provider: MakeProvider, rsa_key: rsa.RSAPrivateKey
) -> None:
    stranger = new_service_account(fake.state, fake.url, key=rsa_key, trusted=False)
    error = await failure(make_provider(credentials=stranger).test())
    assert not error.retryable
    assert "credentials" in error.message and "401 UNAUTHENTICATED" in error.message
    assert "PRIVATE KEY" not in error.message


async def test_test_fails_without_permission(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.deny("secretmanager.secrets.list")
    error = await failure(make_provider().test())
    assert not error.retryable
    assert "Secret Manager Admin" in error.message
    assert "PERMISSION_DENIED" in error.message
    # The service's own message is free text: it is not repeated.
    assert "secretmanager.secrets.list" not in error.message


async def test_test_fails_for_an_unknown_project(make_provider: MakeProvider) -> None:
    error = await failure(make_provider(project_id="no-such-project").test())
    assert not error.retryable
    assert "403 PERMISSION_DENIED" in error.message


async def test_test_fails_retryably_when_nothing_listens(
    make_provider: MakeProvider,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(make_provider(api_endpoint=f"http://127.0.0.1:{port}").test())
    assert error.retryable
    assert "could not reach" in error.message


# list_remote


async def test_list_remote_pages_through_and_marks_managed(
    fake: Fake, make_provider: MakeProvider
) -> None:
    fake.state.max_page_size = 2
    fake.state.seed(PROJECT, "theirs", "x")
    fake.state.seed(PROJECT, "ours", "y", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
    fake.state.seed(PROJECT, "other-label", "z", labels={MANAGED_BY_KEY: "terraform"})
    for index in range(3):
        fake.state.seed(PROJECT, f"more{index}", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
    fake.state.seed(PROJECT, "elsewhere", location="us-east1")

    remote = await make_provider().list_remote()

    assert remote == {
        "theirs": RemoteSecret("theirs", managed=False),
        "ours": RemoteSecret("ours", managed=True),
        "other-label": RemoteSecret("other-label", managed=False),
        "more0": RemoteSecret("more0", managed=True),
        "more1": RemoteSecret("more1", managed=True),
        "more2": RemoteSecret("more2", managed=True),
    }
    pages = fake.state.requests_to("secrets.list")
    assert len(pages) == 3
    assert "pageToken" not in pages[0].query and pages[1].query["pageToken"]


async def test_list_remote_keeps_to_the_prefix_and_the_location(
    fake: Fake, make_provider: MakeProvider
) -> None:
    fake.state.seed(PROJECT, "app-one", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
    fake.state.seed(PROJECT, "one")
    fake.state.seed(PROJECT, "app-two", location="europe-west1")
    assert await make_provider(prefix="app-").list_remote() == {
        "app-one": RemoteSecret("app-one", managed=True)
    }
    regional = make_provider(location="europe-west1")
    assert await regional.list_remote() == {"app-two": RemoteSecret("app-two", managed=False)}
    assert fake.state.requests[-1].path == f"/v1/projects/{PROJECT}/locations/europe-west1/secrets"


async def test_list_remote_of_an_empty_project(make_provider: MakeProvider) -> None:
    assert await make_provider().list_remote() == {}


# put


async def test_put_creates_a_labelled_secret_with_a_checksummed_version(
    fake: Fake, make_provider: MakeProvider
) -> None:
    provider = make_provider(labels={"team": "platform"})
    await provider.put("DB_PASSWORD", SECRET_VALUE)

    stored = fake.state.secret(PROJECT, "DB_PASSWORD")
    assert stored is not None
    assert stored.labels == {MANAGED_BY_KEY: MANAGED_BY_VALUE, "team": "platform"}
    assert stored.replication == {"automatic": {}}
    assert fake.state.versions_of(PROJECT, "DB_PASSWORD") == [("ENABLED", SECRET_VALUE)]
    (create,) = fake.state.requests_to("secrets.create")
    assert create.query["secretId"] == "DB_PASSWORD"
    (add,) = fake.state.requests_to("secrets.addVersion")
    assert add.body["payload"]["dataCrc32c"] == str(crc32c(SECRET_VALUE.encode()))
    assert stored.versions[0].client_checksum
    assert await provider.list_remote() == {"DB_PASSWORD": RemoteSecret("DB_PASSWORD", True)}


async def test_put_updates_by_adding_versions(fake: Fake, make_provider: MakeProvider) -> None:
    provider = make_provider()
    await provider.put("TOKEN", "first")
    await provider.put("TOKEN", "second")
    assert fake.state.latest_value(PROJECT, "TOKEN") == "second"
    assert fake.state.versions_of(PROJECT, "TOKEN") == [("ENABLED", "first"), ("ENABLED", "second")]
    assert len(fake.state.requests_to("secrets.create")) == 1
    assert fake.state.requests_to("secrets.patch") == []  # already labelled: no relabel


async def test_put_can_disable_older_versions(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.max_page_size = 1  # the version listing pages too
    fake.state.seed(PROJECT, "TOKEN", "a", "b", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
    await make_provider(disable_older_versions=True).put("TOKEN", "c")
    assert fake.state.versions_of(PROJECT, "TOKEN") == [
        ("DISABLED", "a"),
        ("DISABLED", "b"),
        ("ENABLED", "c"),
    ]
    assert fake.state.requests_to("secrets.versions.list")[0].query["filter"] == "state:ENABLED"
    assert len(fake.state.requests_to("secrets.versions.disable")) == 2


async def test_put_adopts_an_existing_secret_keeping_its_labels(
    fake: Fake, make_provider: MakeProvider
) -> None:
    etag = fake.state.seed(PROJECT, "LEGACY", "old", labels={"owner": "ops"}).etag
    await make_provider(labels={"team": "platform"}).put("LEGACY", "new")
    stored = fake.state.secret(PROJECT, "LEGACY")
    assert stored is not None
    assert stored.labels == {"owner": "ops", MANAGED_BY_KEY: MANAGED_BY_VALUE, "team": "platform"}
    assert fake.state.latest_value(PROJECT, "LEGACY") == "new"
    (patch,) = fake.state.requests_to("secrets.patch")
    assert patch.query["updateMask"] == "labels"
    assert patch.body["etag"] == etag  # a concurrent label change is not overwritten


async def test_put_relabel_race_is_retryable(
    fake: Fake, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.state.seed(PROJECT, "LEGACY", "old")
    provider = make_provider()
    stored = fake.state.secret(PROJECT, "LEGACY")
    assert stored is not None
    original = provider._client.get_secret

    def stale_read(**kwargs: Any) -> Any:
        secret = original(**kwargs)
        stored.etag = '"changed-meanwhile"'  # someone else edits the secret right after
        return secret

    monkeypatch.setattr(provider._client, "get_secret", stale_read)
    error = await failure(provider.put("LEGACY", "x"))
    assert error.retryable
    assert "FAILED_PRECONDITION" in error.message


async def test_put_regional_secret_has_no_replication(
    fake: Fake, make_provider: MakeProvider
) -> None:
    await make_provider(location="europe-west1").put("KEY", "v")
    stored = fake.state.secret(PROJECT, "KEY", "europe-west1")
    assert stored is not None and stored.replication is None
    assert fake.state.latest_value(PROJECT, "KEY", "europe-west1") == "v"
    assert fake.state.secret(PROJECT, "KEY") is None
    (create,) = fake.state.requests_to("secrets.create")
    assert create.path == f"/v1/projects/{PROJECT}/locations/europe-west1/secrets"
    assert "replication" not in create.body


async def test_put_when_created_concurrently(
    fake: Fake, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider()
    original = provider._client.get_secret

    def racing_read(**kwargs: Any) -> Any:
        try:
            return original(**kwargs)
        finally:  # another writer creates the secret between our read and our create
            fake.state.seed(PROJECT, "RACE", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})

    monkeypatch.setattr(provider._client, "get_secret", racing_read)
    await provider.put("RACE", "mine")
    assert fake.state.versions_of(PROJECT, "RACE") == [("ENABLED", "mine")]


async def test_put_refuses_values_gcp_cannot_hold(fake: Fake, make_provider: MakeProvider) -> None:
    error = await failure(make_provider().put("BIG", "x" * (64 * 1024 + 1)))
    assert not error.retryable
    assert "65537 bytes" in error.message
    assert fake.state.requests == []
    await make_provider().put("EXACT", "y" * (64 * 1024))
    assert fake.state.latest_value(PROJECT, "EXACT") == "y" * (64 * 1024)


async def test_put_writes_unicode_and_empty_values(fake: Fake, make_provider: MakeProvider) -> None:
    provider = make_provider()
    await provider.put("UNICODE", "pässwörd 🔑\nline two")
    await provider.put("EMPTY", "")
    assert fake.state.latest_value(PROJECT, "UNICODE") == "pässwörd 🔑\nline two"
    assert fake.state.latest_value(PROJECT, "EMPTY") == ""


async def test_puts_run_concurrently(fake: Fake, make_provider: MakeProvider) -> None:
    provider = make_provider()
    gate = asyncio.Semaphore(provider.max_concurrency)

    async def put(index: int) -> None:
        async with gate:
            await provider.put(f"S{index}", f"value-{index}")

    await asyncio.gather(*(put(index) for index in range(12)))
    assert {f"S{i}": fake.state.latest_value(PROJECT, f"S{i}") for i in range(12)} == {
        f"S{i}": f"value-{i}" for i in range(12)
    }


# delete


async def test_delete_removes_the_secret_and_a_missing_one_is_fine(
    fake: Fake, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    await provider.put("GONE", "v")
    await provider.delete("GONE")
    assert fake.state.secret(PROJECT, "GONE") is None
    await provider.delete("GONE")
    assert [r.operation for r in fake.state.requests[-2:]] == ["secrets.delete", "secrets.delete"]


async def test_delete_without_permission_fails(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.seed(PROJECT, "KEEP")
    fake.state.deny("secretmanager.secrets.delete")
    error = await failure(make_provider().delete("KEEP"))
    assert not error.retryable
    assert fake.state.secret(PROJECT, "KEEP") is not None


# Faults


def _http_date(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "expected_wait", "words"),
    [
        (429, "7", True, 7.0, "rate limiting"),
        (429, None, True, None, "RESOURCE_EXHAUSTED"),
        (429, "date", True, 30.0, "rate limiting"),
        (500, None, True, None, "500 INTERNAL"),
        (503, "2", True, 2.0, "503 UNAVAILABLE"),
        (504, None, True, None, "DEADLINE_EXCEEDED"),
        (400, None, False, None, "400 INVALID_ARGUMENT"),
        (401, None, False, None, "credentials"),
        (403, None, False, None, "permission denied"),
    ],
)
@pytest.mark.parametrize(
    "operation", ["secrets.get", "secrets.create", "secrets.addVersion", "secrets.list"]
)
async def test_faults_are_classified(
    fake: Fake,
    make_provider: MakeProvider,
    operation: str,
    status: int,
    retry_after: str | None,
    retryable: bool,
    expected_wait: float | None,
    words: str,
) -> None:
    header = _http_date(30) if retry_after == "date" else retry_after
    fake.state.fail(
        status, operation=operation, retry_after=header, times=3 if status == 401 else 1
    )
    provider = make_provider()
    call = (
        provider.list_remote() if operation == "secrets.list" else provider.put("K", SECRET_VALUE)
    )
    error = await failure(call)
    assert error.retryable is retryable
    if expected_wait is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(expected_wait, abs=2)
    assert words in error.message
    assert SECRET_VALUE not in error.message
    # The library did not retry on its own: one call (401 aside, where google-auth re-signs).
    if status != 401:
        assert len(fake.state.requests_to(operation)) == 1
    # What the engine does next: try again, and it lands.
    if status != 401:
        if operation == "secrets.list":
            assert await provider.list_remote() == {}
        else:
            await provider.put("K", SECRET_VALUE)
            assert fake.state.latest_value(PROJECT, "K") == SECRET_VALUE


@pytest.mark.parametrize("operation", ["secrets.versions.list", "secrets.versions.disable"])
async def test_faults_while_disabling_old_versions(
    fake: Fake, make_provider: MakeProvider, operation: str
) -> None:
    fake.state.seed(PROJECT, "K", "old", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
    fake.state.fail(503, operation=operation)
    provider = make_provider(disable_older_versions=True)
    error = await failure(provider.put("K", "new"))
    assert error.retryable
    await provider.put("K", "newer")
    assert [state for state, _ in fake.state.versions_of(PROJECT, "K")] == [
        "DISABLED",
        "DISABLED",
        "ENABLED",
    ]


async def test_faults_per_secret_name(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.fail(503, secret="B", times=2)
    provider = make_provider()
    await provider.put("A", "a")
    assert (await failure(provider.put("B", "b"))).retryable
    assert (await failure(provider.put("B", "b"))).retryable
    await provider.put("B", "b")
    assert fake.state.latest_value(PROJECT, "B") == "b"


async def test_slow_answers_time_out_retryably(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.slow(1.5, operation="secrets.addVersion")
    provider = make_provider(timeout_seconds=0.3)
    error = await failure(provider.put("SLOW", SECRET_VALUE))
    assert error.retryable
    assert "did not answer in time" in error.message
    assert len(fake.state.requests_to("secrets.addVersion")) == 1  # no retry of its own
    # The write still lands after the client gave up (so a retry adds a second version).
    for _ in range(50):
        if fake.state.latest_value(PROJECT, "SLOW") is not None:
            break
        await asyncio.sleep(0.1)
    assert fake.state.latest_value(PROJECT, "SLOW") == SECRET_VALUE


async def test_a_vanishing_secret_is_retryable(fake: Fake, make_provider: MakeProvider) -> None:
    fake.state.fail(404, operation="secrets.addVersion")
    error = await failure(make_provider().put("K", "v"))
    assert error.retryable and "vanished" in error.message


async def test_secret_values_stay_out_of_debug_logs(
    fake: Fake, make_provider: MakeProvider
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    google_logger = logging.getLogger("google")
    handler, level = Keep(logging.DEBUG), google_logger.level
    google_logger.addHandler(handler)
    google_logger.setLevel(logging.DEBUG)
    try:
        await make_provider().put("LOGGED", SECRET_VALUE)
    finally:
        google_logger.removeHandler(handler)
        google_logger.setLevel(level)
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    assert fake.state.requests_to("secrets.addVersion")[0].body["payload"]["data"] == encoded
    for record in records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert SECRET_VALUE not in text
        assert encoded[:24] not in text


async def test_transport_and_auth_failures_are_classified(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider()

    def raising(exc: Exception) -> Callable[[], None]:
        def call() -> None:
            raise exc

        return call

    cases: list[tuple[Exception, bool, str]] = [
        (requests.exceptions.ReadTimeout(), True, "did not answer in time"),
        (requests.exceptions.ConnectionError(), True, "could not reach"),
        (
            auth_exceptions.TransportError("down"),  # type: ignore[no-untyped-call]
            True,
            "could not reach",
        ),
        (
            auth_exceptions.RefreshError("invalid_grant"),  # type: ignore[no-untyped-call]
            False,
            "access token",
        ),
        (
            auth_exceptions.MalformedError("bad key"),  # type: ignore[no-untyped-call]
            False,
            "could not be used",
        ),
    ]
    for exc, retryable, words in cases:
        with pytest.raises(ProviderError) as caught:
            provider._call("do it", raising(exc))
        assert caught.value.retryable is retryable, exc
        assert words in caught.value.message


# The fake itself: the official token exchange, and its schema checks are real.


def test_fake_token_endpoint_serves_the_jwt_bearer_grant(
    fake: Fake, key_file: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        key_file, scopes=[CLOUD_PLATFORM]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token.startswith("ya29.fake-")
    (grant,) = fake.state.requests_to("token")
    assert grant.query["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    answer = requests.get(
        f"{fake.url}/v1/projects/{PROJECT}/secrets",
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=5,
    )
    assert answer.status_code == 200

    stranger = new_service_account(fake.state, fake.url, key=rsa_key, trusted=False)
    untrusted = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        stranger, scopes=[CLOUD_PLATFORM]
    )
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_grant"):
        untrusted.refresh(google.auth.transport.requests.Request())


def test_fake_refuses_requests_and_answers_outside_the_discovery_document(fake: Fake) -> None:
    spec = discovery()
    add = {"$ref": "AddSecretVersionRequest"}
    assert spec.check({"payload": {"data": "aGk="}}, add, "r", request=True, int_enums=True) == []
    problems = spec.check(
        {"payload": {"data": "not base64!", "crc": 1}}, add, "r", request=True, int_enums=True
    )
    assert problems == ["r.payload.data: not base64", "r.payload.crc: unknown property"]
    assert spec.check({}, add, "r", request=True, int_enums=True) == [
        "r: AddSecretVersionRequest lacks required 'payload'"
    ]
    secret = {"$ref": "Secret"}
    assert spec.check({"name": "x"}, secret, "r", request=True, int_enums=True) == [
        "r.name: output-only field sent in a request"
    ]
    assert "r.labels['a']: expected a string" in spec.check(
        {"labels": {"a": 1}}, secret, "r", request=True, int_enums=True
    )
    version = {"$ref": "SecretVersion"}
    assert spec.check(
        {"name": "n", "createTime": "yesterday", "state": "ON", "etag": '"1"'},
        version,
        "a",
        request=False,
        int_enums=False,
    ) == [
        "a.createTime: not a valid google-datetime",
        "a.state: 'ON' is not one of ['STATE_UNSPECIFIED', 'ENABLED', 'DISABLED', 'DESTROYED']",
    ]
    method, params = spec.match("POST", f"/v1/projects/{PROJECT}/secrets/K:addVersion") or ({}, {})
    assert method["id"] == "secretmanager.projects.secrets.addVersion"
    assert params == {"projectsId": PROJECT, "secretsId": "K"}
    assert spec.match("PUT", f"/v1/projects/{PROJECT}/secrets/K") is None
    # An undocumented call is answered 404 and recorded as a violation.
    answer = requests.get(f"{fake.url}/v2/projects/{PROJECT}/secrets", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"
    assert fake.state.violations == [f"undocumented call GET /v2/projects/{PROJECT}/secrets"]
    fake.state.violations.clear()
