"""The Azure Key Vault provider, through the official clients, against the fake vault over HTTPS."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets._shared.client_base import DEFAULT_VERSION
from pydantic import ValidationError

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers import azure as azure_provider
from kavach.server.providers import base
from kavach.server.providers.azure import (
    MAX_NAME_LENGTH,
    PUBLIC_CLOUD_AUTHORITY,
    AzureKeyVaultConfig,
    AzureKeyVaultCredentials,
    AzureKeyVaultProvider,
)
from kavach.server.providers.egress import Egress
from tests.fakes.azure import FakeAzure, FakeAzureState, make_tls_files, serve_fake_azure

VALUE = "postgres://app:correct-horse-battery@db.internal/app"
MANAGED = {"managed-by": "kavach"}
DEFAULT_API_VERSION = DEFAULT_VERSION.value


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    """A fake vault over HTTPS; it must see nothing the official client would not send."""
    with serve_fake_azure(FakeAzureState()) as fake:
        yield fake
    assert fake.state.violations == []


def make(
    fake: FakeAzure,
    *,
    prefix: str = "",
    client_secret: str | None = None,
    tenant_id: str | None = None,
    client_id: str | None = None,
    authority_host: str | None = None,
    **options: Any,
) -> AzureKeyVaultProvider:
    """Build the provider the way the sync engine does: from validated models."""
    state = fake.state
    config = AzureKeyVaultConfig.model_validate(
        {
            "vault_url": fake.vault_url,
            "prefix": prefix,
            "authority_host": authority_host or fake.authority_host,
        }
    )
    credentials = AzureKeyVaultCredentials.model_validate(
        {
            "tenant_id": tenant_id or state.tenant_id,
            "client_id": client_id or state.client_id,
            "client_secret": client_secret or state.client_secret,
        }
    )
    options = {"ca_file": fake.ca_file, "recovery_poll_interval": 0.02, **options}
    return AzureKeyVaultProvider(
        config=config,
        credentials=credentials,
        http=httpx.AsyncClient(),
        egress=Egress(allow_private=True),  # the fake listens on loopback
        **options,
    )


Build = Callable[..., AzureKeyVaultProvider]


@pytest.fixture
async def build(azure: FakeAzure) -> AsyncIterator[Build]:
    """Make providers for the fake vault (see `make`), closed afterwards."""
    made: list[AzureKeyVaultProvider] = []

    def factory(**options: Any) -> AzureKeyVaultProvider:
        made.append(make(azure, **options))
        return made[-1]

    yield factory
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(build: Build) -> AzureKeyVaultProvider:
    """A provider for the fake vault with the right credentials."""
    return build()


async def failure(awaitable: Any) -> ProviderError:
    """Await something that must fail with a ProviderError, and return that error."""
    with pytest.raises(ProviderError) as caught:
        await awaitable
    return caught.value


# -- configuration and names -------------------------------------------------------------------


def test_registered_under_azure() -> None:
    assert base._REGISTRY["azure"] is AzureKeyVaultProvider
    assert AzureKeyVaultProvider.config_model is AzureKeyVaultConfig
    assert AzureKeyVaultProvider.credentials_model is AzureKeyVaultCredentials


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://My-Vault.vault.azure.net", "https://my-vault.vault.azure.net"),
        ("https://my-vault.vault.azure.net/", "https://my-vault.vault.azure.net"),
        ("my-vault.vault.azure.cn", "https://my-vault.vault.azure.cn"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
    ],
)
def test_vault_url_is_normalized(given: str, stored: str) -> None:
    config = AzureKeyVaultConfig.model_validate({"vault_url": given})
    assert config.vault_url == stored
    assert config.authority_host == PUBLIC_CLOUD_AUTHORITY
    assert config.prefix == ""


@pytest.mark.parametrize(
    "bad",
    [
        "http://my-vault.vault.azure.net",
        "https://my-vault.vault.azure.net/secrets",
        "https://my-vault.vault.azure.net?x=1",
        "https://user:pw@my-vault.vault.azure.net",
        "https://",
        "https://my-vault.vault.azure.net:99999",
    ],
)
def test_vault_url_must_be_an_https_origin(bad: str) -> None:
    with pytest.raises(ValidationError):
        AzureKeyVaultConfig.model_validate({"vault_url": bad})


def test_config_accepts_sovereign_authority_and_prefix() -> None:
    config = AzureKeyVaultConfig.model_validate(
        {
            "vault_url": "https://v.vault.usgovcloudapi.net",
            "authority_host": "login.microsoftonline.us",
            "prefix": "App-",
        }
    )
    assert config.authority_host == "https://login.microsoftonline.us"
    assert config.prefix == "app-"
    with pytest.raises(ValidationError):
        AzureKeyVaultConfig.model_validate({"vault_url": "https://v", "authority_host": "http://x"})
    with pytest.raises(ValidationError):
        AzureKeyVaultConfig.model_validate({"vault_url": "https://v", "prefix": "app_"})
    with pytest.raises(ValidationError):
        AzureKeyVaultConfig.model_validate({"vault_url": "https://v", "vault_name": "typo"})


def test_credentials_never_show_the_secret() -> None:
    credentials = AzureKeyVaultCredentials.model_validate(
        {"tenant_id": "contoso.onmicrosoft.com", "client_id": "app", "client_secret": "s3cr3t~X"}
    )
    assert "s3cr3t~X" not in repr(credentials)
    assert "s3cr3t~X" not in str(credentials.model_dump())
    with pytest.raises(ValidationError):
        AzureKeyVaultCredentials.model_validate(
            {"tenant_id": "../etc", "client_id": "app", "client_secret": "x"}
        )


def test_target_key(azure: FakeAzure) -> None:
    host = azure.vault_url.removeprefix("https://")
    assert make(azure).target_key() == f"azure:{host}"
    assert make(azure, prefix="App-").target_key() == f"azure:{host}/app-"


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("DATABASE_URL", "database-url"),
        ("app.db.url", "app-db-url"),
        ("_private", "-private"),
        ("already-kebab", "already-kebab"),
        ("MiXeD_Case.9", "mixed-case-9"),
    ],
)
def test_remote_name_mapping(azure: FakeAzure, name: str, remote: str) -> None:
    assert make(azure).remote_name(name) == remote
    assert make(azure, prefix="kv-").remote_name(name) == f"kv-{remote}"


def test_remote_name_length_limit_counts_the_prefix(azure: FakeAzure) -> None:
    provider = make(azure, prefix="app-")
    longest = "A" * (MAX_NAME_LENGTH - len("app-"))
    assert len(provider.remote_name(longest)) == MAX_NAME_LENGTH
    with pytest.raises(ValidationFailed, match=re.escape(repr(longest + "B"))) as caught:
        provider.remote_name(longest + "B")
    assert "128 characters" in caught.value.message


@pytest.mark.parametrize("name", ["naïve", "with space", "slash/name", "", "\uff21\uff22"])
def test_remote_name_rejects_what_cannot_map(azure: FakeAzure, name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make(azure).remote_name(name)
    assert repr(name) in caught.value.message


# -- test() ------------------------------------------------------------------------------------


async def test_test_answers_the_challenge_and_lists_one_page(
    azure: FakeAzure, build: Build
) -> None:
    http_challenge_cache.clear()  # the official client caches challenges process-wide
    azure.state.add_secret("one", "1")
    azure.state.add_secret("two", "2")
    provider = build()
    await provider.test()

    vault_calls = [r for r in azure.state.requests if r.path == "/secrets"]
    assert [r.had_authorization for r in vault_calls] == [False, True]
    assert all(r.query.get("maxresults") == "1" for r in vault_calls)
    token_calls = azure.state.requests_to(azure.state.token_path)
    assert len(token_calls) == 1
    assert token_calls[0].form["grant_type"] == "client_credentials"
    assert token_calls[0].form["scope"] == "https://vault.azure.net/.default"
    assert token_calls[0].form["client_id"] == azure.state.client_id
    assert "client_secret" not in token_calls[0].form
    assert {r.method for r in azure.state.requests} <= {"GET", "POST"}  # nothing written
    assert azure.state.live_names() == ["one", "two"]


async def test_test_fails_clearly_on_a_wrong_client_secret(azure: FakeAzure, build: Build) -> None:
    provider = build(client_secret="not-the-secret-value")
    error = await failure(provider.test())
    assert not error.retryable
    assert "Microsoft Entra" in error.message
    assert "AADSTS7000215" in error.message
    assert "not-the-secret-value" not in error.message
    assert "Trace ID" not in error.message


async def test_test_fails_on_an_unknown_application(azure: FakeAzure, build: Build) -> None:
    error = await failure(build(client_id="no-such-app").test())
    assert not error.retryable
    assert "AADSTS700016" in error.message


async def test_test_fails_when_the_vault_is_in_another_tenant(
    azure: FakeAzure, build: Build
) -> None:
    error = await failure(build(tenant_id="contoso.onmicrosoft.com").test())
    assert not error.retryable
    assert "tenant" in error.message
    assert azure.state.requests_to(azure.state.token_path) == []


async def test_test_fails_without_list_permission(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    azure.state.deny("list")
    error = await failure(provider.test())
    assert not error.retryable
    assert "permission denied" in error.message
    assert "AccessDenied" in error.message


async def test_a_token_the_vault_rejects_is_not_retryable(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    await provider.test()
    azure.state.revoke_tokens()  # the client's cached token is now unknown to the vault
    error = await failure(provider.test())
    assert not error.retryable
    assert "rejected the token" in error.message


async def test_no_token_for_a_resource_that_is_not_key_vault(
    azure: FakeAzure, build: Build
) -> None:
    http_challenge_cache.clear()
    azure.state.resource = "https://management.azure.com"
    error = await failure(build().test())
    assert not error.retryable
    assert "management.azure.com" in error.message
    assert azure.state.requests_to(azure.state.token_path) == []


# -- list_remote -------------------------------------------------------------------------------


async def test_list_remote_marks_managed_secrets(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    azure.state.add_secret("Hand-Made", "x", tags={"owner": "ops"})
    azure.state.add_secret("foreign-tag", "x", tags={"managed-by": "terraform"})
    azure.state.add_secret("was-deleted", "x", deleted=True)
    await provider.put("db-url", VALUE)
    remote = await provider.list_remote()
    assert remote == {
        "db-url": base.RemoteSecret("db-url", managed=True),
        "hand-made": base.RemoteSecret("hand-made", managed=False),
        "foreign-tag": base.RemoteSecret("foreign-tag", managed=False),
    }


async def test_list_remote_follows_next_links(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    for index in range(30):
        azure.state.add_secret(f"s{index:02d}", "x", tags=MANAGED)
    remote = await provider.list_remote()
    assert sorted(remote) == [f"s{index:02d}" for index in range(30)]
    pages = [r for r in azure.state.requests_to("/secrets", "GET") if r.had_authorization]
    assert len(pages) == 2
    assert pages[0].query["maxresults"] == "25"
    assert pages[1].query["$skiptoken"] == "25"


async def test_list_remote_keeps_to_the_prefix(azure: FakeAzure, build: Build) -> None:
    azure.state.add_secret("app-one", "1", tags=MANAGED)
    azure.state.add_secret("App-Two", "2")
    azure.state.add_secret("other-three", "3", tags=MANAGED)
    provider = build(prefix="app-")
    assert await provider.list_remote() == {
        "app-one": base.RemoteSecret("app-one", managed=True),
        "app-two": base.RemoteSecret("app-two", managed=False),
    }


# -- put and delete ----------------------------------------------------------------------------


async def test_put_creates_then_updates_with_the_managed_tag(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    name = provider.remote_name("DATABASE_URL")
    await provider.put(name, VALUE)
    assert azure.state.value("database-url") == VALUE
    assert azure.state.tags("database-url") == MANAGED
    await provider.put(name, "changed")
    assert azure.state.value("database-url") == "changed"
    secret = azure.state.secret("database-url")
    assert secret is not None and [v.value for v in secret.versions] == [VALUE, "changed"]
    bodies = [r.json() for r in azure.state.requests_to("/secrets/database-url", "PUT") if r.body]
    assert bodies == [{"value": VALUE, "tags": MANAGED}, {"value": "changed", "tags": MANAGED}]


async def test_put_adopts_an_unmanaged_secret(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    azure.state.add_secret("api-key", "old", tags={"owner": "ops"})
    await provider.put("api-key", "new")
    assert azure.state.value("api-key") == "new"
    assert (await provider.list_remote())["api-key"].managed


async def test_put_many_at_once(azure: FakeAzure, provider: AzureKeyVaultProvider) -> None:
    names = [f"k{index}" for index in range(AzureKeyVaultProvider.max_concurrency * 2)]
    await asyncio.gather(*(provider.put(name, f"v-{name}") for name in names))
    assert all(azure.state.value(name) == f"v-{name}" for name in names)


async def test_delete_soft_deletes_and_never_purges(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    await provider.put("token", VALUE)
    await provider.delete("token")
    assert azure.state.value("token") is None
    assert azure.state.is_deleted("token")
    assert "token" not in await provider.list_remote()
    assert not [r for r in azure.state.requests if r.path.startswith("/deletedsecrets")]


async def test_deleting_a_missing_secret_is_fine(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    await provider.delete("never-existed")
    await provider.put("twice", "x")
    await provider.delete("twice")
    await provider.delete("twice")
    assert azure.state.is_deleted("twice")


async def test_put_recovers_a_soft_deleted_secret_and_waits(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    await provider.put("db-url", "first")
    await provider.delete("db-url")
    azure.state.recovery_polls = 3  # the recovered secret stays invisible for three reads
    await provider.put("db-url", "second")
    assert azure.state.value("db-url") == "second"
    secret = azure.state.secret("db-url")
    assert secret is not None and [v.value for v in secret.versions] == ["first", "second"]
    assert len(azure.state.requests_to("/deletedsecrets/db-url/recover", "POST")) == 1
    reads = [r for r in azure.state.requests_to("/secrets/db-url", "GET") if r.had_authorization]
    assert len(reads) == 4  # three "still recovering" 404s, then the recovered secret
    puts = [r for r in azure.state.requests_to("/secrets/db-url", "PUT") if r.body]
    assert [r.json()["value"] for r in puts] == ["first", "second", "second"]


async def test_recovery_not_permitted_is_not_retryable(azure: FakeAzure, build: Build) -> None:
    azure.state.add_secret("db-url", "old", deleted=True)
    azure.state.deny("recover")
    provider = build()
    error = await failure(provider.put("db-url", VALUE))
    assert not error.retryable
    assert "soft-deleted" in error.message and "recover" in error.message
    assert "'db-url'" in error.message
    assert VALUE not in error.message
    assert error.__cause__ is None and error.__context__ is None
    assert azure.state.is_deleted("db-url")


async def test_recovery_that_takes_too_long_is_retryable(azure: FakeAzure, build: Build) -> None:
    azure.state.add_secret("db-url", "old", deleted=True)
    azure.state.recovery_polls = 1000
    provider = build(recovery_timeout=0.2, recovery_poll_interval=0.05)
    error = await failure(provider.put("db-url", VALUE))
    assert error.retryable
    assert error.retry_after == 0.05
    assert "has not finished" in error.message


async def test_a_secret_still_being_recovered_is_retryable(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    azure.state.fail(
        409,
        path="/secrets/db-url",
        method="PUT",
        code="Conflict",
        inner_code="ObjectIsBeingRecovered",
    )
    error = await failure(provider.put("db-url", VALUE))
    assert error.retryable
    assert error.retry_after is not None
    assert "ObjectIsBeingRecovered" in error.message


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "expected_wait"),
    [
        (429, "7", True, 7.0),
        (429, "http-date in 30s", True, 30.0),
        (429, None, True, None),
        (500, None, True, None),
        (503, "2", True, 2.0),
        (400, None, False, None),
        (403, None, False, None),
        (404, None, False, None),
    ],
)
async def test_vault_faults_are_classified(
    azure: FakeAzure,
    provider: AzureKeyVaultProvider,
    status: int,
    retry_after: str | None,
    retryable: bool,
    expected_wait: float | None,
) -> None:
    if retry_after == "http-date in 30s":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    azure.state.fail(status, secret="db-url", retry_after=retry_after)
    error = await failure(provider.put("db-url", VALUE))
    assert error.retryable is retryable
    if expected_wait is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(expected_wait, abs=2)
    assert f"{status}" in error.message or not retryable
    assert VALUE not in error.message
    # No library exception rides along: those hold the request, value included.
    assert error.__cause__ is None and error.__context__ is None
    # One failure only: the provider did not retry by itself, and the next attempt works.
    await provider.put("db-url", VALUE)
    assert azure.state.value("db-url") == VALUE


@pytest.mark.parametrize("operation", ["test", "list_remote", "delete"])
async def test_faults_on_every_operation(
    azure: FakeAzure, provider: AzureKeyVaultProvider, operation: str
) -> None:
    azure.state.fail(429, retry_after="11")
    call = provider.delete("x") if operation == "delete" else getattr(provider, operation)()
    error = await failure(call)
    assert error.retryable
    assert error.retry_after == 11.0


async def test_a_slow_vault_times_out_retryably(azure: FakeAzure, build: Build) -> None:
    provider = build(read_timeout=0.3)
    azure.state.slow(3, path="/secrets/db-url", method="PUT", times=3)
    error = await failure(provider.put("db-url", VALUE))
    assert error.retryable
    assert "timed out" in error.message


async def test_an_unreachable_vault_is_retryable(tmp_path: Path) -> None:
    with serve_fake_azure() as fake:
        pass  # stopped: nothing listens on its port any more
    ca_file = str(make_tls_files(tmp_path).ca_file)
    provider = make(fake, ca_file=ca_file)
    error = await failure(provider.test())
    await provider.aclose()
    assert error.retryable
    assert "could not be reached" in error.message


async def test_an_untrusted_certificate_is_not_retryable(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, build: Build
) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    provider = build(ca_file=None)
    error = await failure(provider.test())
    assert not error.retryable
    assert "not trusted" in error.message


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
async def test_the_ca_bundle_comes_from_the_environment(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, variable: str, build: Build
) -> None:
    for other in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(variable, azure.ca_file)
    provider = build(ca_file=None)
    await provider.test()


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_wait"),
    [(503, None, None), (500, None, None), (429, "9", 9.0)],
)
async def test_token_endpoint_faults_are_retryable(
    azure: FakeAzure,
    status: int,
    retry_after: str | None,
    expected_wait: float | None,
    build: Build,
) -> None:
    azure.state.fail(status, path=azure.state.token_path, retry_after=retry_after)
    provider = build()
    error = await failure(provider.test())
    assert error.retryable
    assert "Microsoft Entra" in error.message
    if expected_wait is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(expected_wait, abs=1)


async def test_a_slow_token_endpoint_times_out_retryably(azure: FakeAzure, build: Build) -> None:
    azure.state.slow(3, path=azure.state.token_path)
    provider = build(read_timeout=0.3)
    error = await failure(provider.test())
    assert error.retryable
    assert "Microsoft Entra timed out" in error.message


async def test_a_value_the_vault_refuses_is_not_retryable_and_not_quoted(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    huge = "Z" * (26 * 1024)
    error = await failure(provider.put("big", huge))
    assert not error.retryable
    assert "BadParameter" in error.message
    assert "ZZZZ" not in error.message


# -- the fake follows the protocol the official client speaks ------------------------------


async def test_requests_match_the_protocol(
    azure: FakeAzure, provider: AzureKeyVaultProvider
) -> None:
    http_challenge_cache.clear()
    await provider.test()
    await provider.put("a", "1")
    await provider.delete("a")
    await provider.put("a", "2")
    await provider.list_remote()
    allowed = [
        ("GET", rf"/{azure.state.tenant_id}/v2\.0/\.well-known/openid-configuration"),
        ("POST", rf"/{azure.state.tenant_id}/oauth2/v2\.0/token"),
        ("GET", r"/secrets"),
        ("PUT", r"/secrets/[0-9A-Za-z-]{1,127}"),
        ("GET", r"/secrets/[0-9A-Za-z-]{1,127}/?"),
        ("DELETE", r"/secrets/[0-9A-Za-z-]{1,127}"),
        ("POST", r"/deletedsecrets/[0-9A-Za-z-]{1,127}/recover"),
    ]
    for request in azure.state.requests:
        assert any(
            request.method == method and re.fullmatch(pattern, request.path)
            for method, pattern in allowed
        ), f"{request.method} {request.path}"
        if not request.path.startswith(f"/{azure.state.tenant_id}/"):
            assert request.query["api-version"] == DEFAULT_API_VERSION
            if not request.had_authorization:  # the challenge probe carries no body
                assert request.body == b""
        if request.body and request.method == "PUT":
            assert set(request.json()) <= {"value", "tags", "contentType", "attributes"}


def test_fake_answers_the_official_client(azure: FakeAzure) -> None:
    """Drive the fake through the official client directly: shapes it parses, errors it maps."""
    state = azure.state
    credential = ClientSecretCredential(
        state.tenant_id,
        state.client_id,
        state.client_secret,
        authority=azure.authority_host,
        disable_instance_discovery=True,
        connection_verify=azure.ca_file,
    )
    client = SecretClient(
        azure.vault_url,
        credential,
        verify_challenge_resource=False,
        connection_verify=azure.ca_file,
        retry_total=0,
    )
    with client, credential:
        created = client.set_secret("Mixed-Case", "v1", tags=MANAGED, content_type="text/plain")
        assert created.value == "v1"
        assert created.properties.tags == MANAGED
        assert created.properties.content_type == "text/plain"
        assert created.properties.version is not None
        assert client.get_secret("mixed-case").value == "v1"  # names are case-insensitive
        older = created.properties.version
        client.set_secret("mixed-case", "v2")
        assert client.get_secret("Mixed-Case", older).value == "v1"
        deleted = client.begin_delete_secret("mixed-case").result()
        assert deleted.recovery_id is not None and deleted.recovery_id.endswith(
            "/deletedsecrets/Mixed-Case"
        )
        assert deleted.scheduled_purge_date is not None
        assert client.get_deleted_secret("mixed-case").name == "Mixed-Case"
        with pytest.raises(ResourceExistsError) as conflict:
            client.set_secret("mixed-case", "v3")
        assert conflict.value.status_code == 409
        body = json.loads(conflict.value.response.text())  # type: ignore[union-attr]
        assert body["error"]["innererror"]["code"] == "ObjectIsDeletedButRecoverable"
        client.begin_recover_deleted_secret("mixed-case", _polling_interval=0.01).wait()
        assert client.get_secret("mixed-case").value == "v2"
        client.begin_delete_secret("mixed-case")
        client.purge_deleted_secret("mixed-case")
        with pytest.raises(ResourceNotFoundError):
            client.get_deleted_secret("mixed-case")
        client.set_secret("mixed-case", "fresh")  # the name is free again after a purge
        assert state.value("MIXED-CASE") == "fresh"


def test_fake_rejects_what_key_vault_rejects(azure: FakeAzure) -> None:
    """Direct HTTPS calls with a real token: bad names, no api-version, no token."""
    with httpx.Client(verify=ssl.create_default_context(cafile=azure.ca_file)) as http:
        token_url = f"{azure.authority_host}{azure.state.token_path}"
        answer = http.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": azure.state.client_id,
                "client_secret": azure.state.client_secret,
                "scope": "https://vault.azure.net/.default",
            },
        )
        assert answer.status_code == 200
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        missing = http.get(f"{azure.vault_url}/secrets")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == (
            f'Bearer authorization="{azure.authority_host}/{azure.state.tenant_id}", '
            'resource="https://vault.azure.net"'
        )
        assert missing.json()["error"]["code"] == "Unauthorized"
        bad_name = http.put(
            f"{azure.vault_url}/secrets/under_score?api-version={DEFAULT_API_VERSION}",
            json={"value": "x"},
            headers=bearer,
        )
        assert bad_name.status_code == 400
        no_version = http.get(f"{azure.vault_url}/secrets", headers=bearer)
        assert no_version.status_code == 400
        too_big_page = http.get(
            f"{azure.vault_url}/secrets?api-version={DEFAULT_API_VERSION}&maxresults=26",
            headers=bearer,
        )
        assert too_big_page.status_code == 400
        assert azure.state.value("under_score") is None
    assert len(azure.state.violations) == 2  # the bad name and the missing api-version
    azure.state.violations.clear()


async def test_real_vaults_keep_the_official_resource_check(
    azure: FakeAzure, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off loopback the client's own check holds: a vault host outside the resource's domain
    (here 127.0.0.1 against vault.azure.net) gets no token at all."""
    http_challenge_cache.clear()
    # The vault counts as remote; the authority (same fake, named localhost) stays local, so
    # even a broken check could only reach the fake.
    authority = azure.authority_host.replace("127.0.0.1", "localhost")
    monkeypatch.setattr(azure_provider, "_is_loopback", lambda origin: "localhost" in origin)
    error = await failure(build(authority_host=authority).test())
    assert not error.retryable
    assert "does not match the requested domain" in error.message
    assert azure.state.requests_to(azure.state.token_path) == []
