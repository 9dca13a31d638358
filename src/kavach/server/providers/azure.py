"""Azure Key Vault as a sync target, through the official `azure-keyvault-secrets` client.

Names: Key Vault allows `[0-9A-Za-z-]`, 1-127 characters, compared case-insensitively. A Kavach
name maps by turning `_` and `.` into `-` and lower-casing (`DB_URL` -> `db-url`), after the
configured prefix; so names that differ only in case or separator land on one remote name, which
the sync plan reports as a clash. A name longer than 127 characters after mapping is refused.

Trust: the clients speak HTTPS only, to the vault and to Microsoft Entra alike, and always verify
certificates: against the `ca_file` option when given, else the CA bundle file named by the
environment variable `REQUESTS_CA_BUNDLE` or else `SSL_CERT_FILE` (read when the provider is
built), else the public CAs that `certifi` ships.

Tokens: the vault's `401` challenge names the tenant and resource; the official policy then asks
Microsoft Entra for a token. It checks that the resource is a parent domain of the vault host; a
vault on a loopback address (a local stand-in, never a real vault) cannot pass that check, so there
the provider instead refuses tokens for anything but the Key Vault resources of the Azure clouds.

Soft delete: `delete` soft-deletes (never purges). Writing a name that is soft-deleted answers
`409 ObjectIsDeletedButRecoverable`; `put` then recovers the secret, waits until the recovery is
visible and writes again. The clients never retry (the sync engine does) nor follow redirects, and
connect only where the egress policy allows; errors repeat the service's codes, never its text.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers.base import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    RemoteSecret,
    SyncProvider,
    error_code,
    register,
)
from kavach.server.providers.egress import Egress
from kavach.server.text_rules import worded

PUBLIC_CLOUD_AUTHORITY = "https://login.microsoftonline.com"
# What vaults of the public and sovereign clouds name as resource in their challenge.
KEY_VAULT_RESOURCES = frozenset(
    {
        "https://vault.azure.net",
        "https://vault.azure.cn",
        "https://vault.usgovcloudapi.net",
        "https://vault.microsoftazure.de",
    }
)
MAX_NAME_LENGTH = 127
PAGE_SIZE = 25  # Key Vault's largest page
_REMOTE_NAME = re.compile(r"[0-9a-z-]+")
_AADSTS = re.compile(r"\bAADSTS\d{1,10}\b")
_SEPARATORS = str.maketrans({"_": "-", ".": "-"})
_T = TypeVar("_T")


def _https_origin(value: str, what: str) -> str:
    """Return `https://host[:port]` for a URL that is only that, lower-cased."""
    parts = urlsplit(value.strip() if "://" in value else f"https://{value.strip()}")
    if parts.scheme.lower() != "https":
        raise ValueError(f"{what} must be an https URL")
    if not parts.hostname or parts.username or parts.password:
        raise ValueError(f"{what} must name a host (and nothing else)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a path, query or fragment")
    _ = parts.port  # ValueError for a bad port
    return f"https://{parts.netloc.lower()}"


def _is_loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_PREFIX = worded(r"^[0-9A-Za-z-]*$", "prefixes hold only letters, digits and '-'")
_TENANT = worded(r"^[0-9A-Za-z.-]+$", "tenant ids hold only letters, digits, '.' and '-'")


class AzureKeyVaultConfig(BaseModel):
    """Where to sync: the vault, an optional name prefix, and the cloud's Entra authority."""

    model_config = ConfigDict(extra="forbid")

    vault_url: str = Field(description="e.g. https://my-vault.vault.azure.net")
    prefix: str = Field(default="", max_length=64, pattern=_PREFIX)
    authority_host: str = Field(
        default=PUBLIC_CLOUD_AUTHORITY,
        description="Microsoft Entra authority, e.g. https://login.microsoftonline.us",
    )

    @field_validator("vault_url")
    @classmethod
    def _vault_url(cls, value: str) -> str:
        return _https_origin(value, "vault_url")

    @field_validator("authority_host")
    @classmethod
    def _authority_host(cls, value: str) -> str:
        return _https_origin(value, "authority_host")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.lower()


class AzureKeyVaultCredentials(BaseModel):
    """A service principal: its tenant, application (client) ID and client secret."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=100, pattern=_TENANT)
    client_id: str = Field(min_length=1, max_length=100)
    client_secret: SecretStr = Field(min_length=1)


class _KeyVaultTokensOnly:
    """A credential that hands out tokens for Key Vault resources only."""

    def __init__(self, inner: ClientSecretCredential) -> None:
        self._inner = inner

    @staticmethod
    def _check(scopes: tuple[str, ...]) -> None:
        for scope in scopes:
            if scope.removesuffix("/.default").rstrip("/").lower() not in KEY_VAULT_RESOURCES:
                raise ValueError(
                    f"the vault asked for a token for {scope!r}, not a Key Vault resource"
                )

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self._check(scopes)
        return self._inner.get_token(
            *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
        )

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        self._check(scopes)
        return self._inner.get_token_info(*scopes, options=options)

    def close(self) -> None:
        self._inner.close()


@register
class AzureKeyVaultProvider(SyncProvider):
    """Sync to the secrets of one Azure Key Vault, tagging them managed-by=kavach."""

    name: ClassVar[str] = "azure"
    config_model: ClassVar[type[BaseModel]] = AzureKeyVaultConfig
    credentials_model: ClassVar[type[BaseModel]] = AzureKeyVaultCredentials
    max_concurrency: ClassVar[int] = 4
    credential_bound: ClassVar[frozenset[str]] = frozenset({"vault_url", "authority_host"})
    # The client secret is posted to `<authority_host>/<tenant_id>/…`.
    bound_credential_fields: ClassVar[frozenset[str]] = frozenset({"tenant_id"})

    def __init__(
        self,
        *,
        config: BaseModel,
        credentials: BaseModel,
        http: httpx.AsyncClient,
        egress: Egress,
        ca_file: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        recovery_poll_interval: float = 2.0,
        recovery_timeout: float = 60.0,
    ) -> None:
        super().__init__(config=config, credentials=credentials, http=http, egress=egress)
        if not isinstance(config, AzureKeyVaultConfig) or not isinstance(
            credentials, AzureKeyVaultCredentials
        ):
            raise TypeError("AzureKeyVaultProvider needs AzureKeyVaultConfig and -Credentials")
        self._config = config
        self._secret = credentials.client_secret.get_secret_value()
        self._poll_interval = recovery_poll_interval
        self._recovery_timeout = recovery_timeout
        self._entra_failure: tuple[int, float | None] | None = None  # (status, retry at)
        verify: str | bool = (
            ca_file
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("SSL_CERT_FILE")
            or True
        )
        connection: dict[str, Any] = {
            "connection_verify": verify,
            "connection_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }

        def transport() -> RequestsTransport:
            # Each client owns (and closes) its checked session.
            return RequestsTransport(session=egress.session(), **connection)

        self._credential = ClientSecretCredential(
            credentials.tenant_id,
            credentials.client_id,
            self._secret,
            authority=config.authority_host,
            # Instance discovery asks login.microsoftonline.com to vouch for an unknown
            # authority; a loopback authority is a local stand-in it cannot know.
            disable_instance_discovery=_is_loopback(config.authority_host),
            raw_response_hook=self._observe_entra,
            transport=transport(),
            retry_total=0,
        )
        local_vault = _is_loopback(config.vault_url)
        self._client = SecretClient(
            config.vault_url,
            _KeyVaultTokensOnly(self._credential) if local_vault else self._credential,
            verify_challenge_resource=not local_vault,
            transport=transport(),
            retry_total=0,
            permit_redirects=False,
        )

    @classmethod
    def destinations(cls, config: BaseModel, credentials: BaseModel) -> list[str]:
        """Return the vault and the Microsoft Entra authority."""
        if not isinstance(config, AzureKeyVaultConfig):
            raise TypeError("AzureKeyVaultProvider needs an AzureKeyVaultConfig")
        return [config.vault_url, config.authority_host]

    def target_key(self) -> str:
        """Return `azure:<vault host[:port]>[/<prefix>]`."""
        host = self._config.vault_url.removeprefix("https://")
        return f"azure:{host}/{self._config.prefix}" if self._config.prefix else f"azure:{host}"

    def remote_name(self, name: str) -> str:
        """Map `_` and `.` to `-`, lower-case and prefix the name; ValidationFailed if too long."""
        remote = self._config.prefix + name.translate(_SEPARATORS).lower()
        if not _REMOTE_NAME.fullmatch(remote):
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to Azure Key Vault: names may only hold "
                "letters, digits, '-', '_' and '.'"
            )
        if len(remote) > MAX_NAME_LENGTH:
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to Azure Key Vault: its name {remote!r} is "
                f"{len(remote)} characters long, the limit is {MAX_NAME_LENGTH}"
            )
        return remote

    async def test(self) -> None:
        """List one page of secrets (no writes)."""
        await self._run(self._test_sync, "list secrets")

    async def list_remote(self) -> dict[str, RemoteSecret]:
        """Return the vault's secrets under the prefix, by lower-case name."""
        return await self._run(self._list_sync, "list secrets")

    async def put(self, remote_name: str, value: str) -> None:
        """Write a new version tagged managed-by=kavach, recovering a soft-deleted one first."""
        await self._run(lambda: self._put_sync(remote_name, value), f"write {remote_name!r}")

    async def delete(self, remote_name: str) -> None:
        """Soft-delete a secret; one that is already gone is fine."""
        await self._run(lambda: self._delete_sync(remote_name), f"delete {remote_name!r}")

    async def aclose(self) -> None:
        """Close the vault client and the credential's HTTP sessions."""
        await asyncio.to_thread(self._close_sync)

    # -- blocking work, run in a worker thread ------------------------------------------------

    def _test_sync(self) -> None:
        pages = self._client.list_properties_of_secrets(max_page_size=1).by_page()
        list(next(pages, iter(())))

    def _list_sync(self) -> dict[str, RemoteSecret]:
        found: dict[str, RemoteSecret] = {}
        for item in self._client.list_properties_of_secrets(max_page_size=PAGE_SIZE):
            name = (item.name or "").lower()
            if name and name.startswith(self._config.prefix):
                managed = (item.tags or {}).get(MANAGED_BY_KEY) == MANAGED_BY_VALUE
                found[name] = RemoteSecret(name, managed)
        return found

    def _put_sync(self, name: str, value: str) -> None:
        tags = {MANAGED_BY_KEY: MANAGED_BY_VALUE}
        try:
            self._client.set_secret(name, value, tags=tags)
            return
        except HttpResponseError as exc:
            # Key Vault names it as inner code; accept it as the outer code too.
            if "ObjectIsDeletedButRecoverable" not in _error_codes(exc)[:2]:
                raise
        self._recover_sync(name)
        self._client.set_secret(name, value, tags=tags)

    def _recover_sync(self, name: str) -> None:
        forbidden = False
        try:
            self._client.begin_recover_deleted_secret(name)
        except ResourceNotFoundError:
            return  # purged meanwhile: the name is free again
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            forbidden = True
        if forbidden:  # raised here, outside `except`, so it carries no library exception
            raise ProviderError(
                f"Azure Key Vault {self._host}: secret {name!r} is soft-deleted and these "
                "credentials may not recover it (the 'recover' secret permission is missing); "
                "recover or purge it in Azure, or grant that permission",
                retryable=False,
            )
        # Recovery is asynchronous: the secret reappears when it is done (the official
        # poller's test too; a 403 means it exists but we may not read it).
        deadline = time.monotonic() + self._recovery_timeout
        while True:
            try:
                self._client.get_secret(name)
                return
            except ResourceNotFoundError:
                pass
            except HttpResponseError as exc:
                if exc.status_code == 403:
                    return
                raise
            if time.monotonic() >= deadline:
                raise ProviderError(
                    f"Azure Key Vault {self._host}: recovery of soft-deleted secret {name!r} "
                    "has not finished yet",
                    retryable=True,
                    retry_after=self._poll_interval,
                )
            time.sleep(self._poll_interval)

    def _delete_sync(self, name: str) -> None:
        try:
            # Sends DELETE and returns; waiting for the purge-able state is not needed.
            self._client.begin_delete_secret(name)
        except ResourceNotFoundError:
            return

    def _close_sync(self) -> None:
        self._client.close()
        self._credential.close()

    # -- failures -------------------------------------------------------------------------------

    @property
    def _host(self) -> str:
        return self._config.vault_url.removeprefix("https://")

    def _observe_entra(self, response: PipelineResponse[Any, Any]) -> None:
        """Remember the last failing Entra answer: MSAL's errors drop the status and headers."""
        http = response.http_response
        if http.status_code < 400:
            self._entra_failure = None
            return
        wait = _retry_after(http.headers)
        self._entra_failure = (http.status_code, None if wait is None else time.time() + wait)

    async def _run(self, work: Callable[[], _T], doing: str) -> _T:
        try:
            return await asyncio.to_thread(work)
        except ProviderError:
            raise
        except Exception as exc:
            error = self._classify(exc, doing)
        # Raised outside `except` so that it chains no library exception: those hold the
        # request (with the value) and its open connection.
        raise error

    def _scrub(self, text: str) -> str:
        text = text.replace(self._secret, "***") if self._secret else text
        return " ".join(text.split(" Trace ID:")[0].split())[:300]

    def _classify(self, exc: Exception, doing: str) -> ProviderError:
        """Turn a client exception into a ProviderError that says whether to retry."""
        where = f"Azure Key Vault {self._host}: {doing}"
        entra = isinstance(exc, ClientAuthenticationError) and not _response_url(exc).startswith(
            self._config.vault_url
        )
        side = "Microsoft Entra" if entra else "the vault"
        network = _network_cause(exc)
        if network is not None and "CERTIFICATE_VERIFY_FAILED" in str(network):
            return ProviderError(
                f"{where}: the TLS certificate of {side} is not trusted (set REQUESTS_CA_BUNDLE "
                "or SSL_CERT_FILE to a CA bundle that holds its CA)",
                retryable=False,
            )
        if network is not None:
            timed_out = isinstance(
                network, ServiceRequestTimeoutError | ServiceResponseTimeoutError
            )
            return ProviderError(
                f"{where}: {side} {'timed out' if timed_out else 'could not be reached'}",
                retryable=True,
            )
        if not isinstance(exc, HttpResponseError):
            # ValueError: e.g. a challenge naming a resource outside the vault's domain;
            # OSError: e.g. an unreadable CA bundle.
            detail = self._scrub(str(exc)) if isinstance(exc, ValueError | OSError) else ""
            return ProviderError(f"{where}: {type(exc).__name__} {detail}".strip())
        status, wait = exc.status_code, _retry_after(getattr(exc.response, "headers", None))
        if status is None and entra and self._entra_failure is not None:
            status, until = self._entra_failure
            wait = None if until is None else max(0.0, until - time.time())
        code, inner, message = _error_codes(exc)
        detail = " ".join(p for p in (code, inner, message) if p) or "no error code"
        if status is not None and (status in (408, 429) or status >= 500):
            return ProviderError(
                f"{where}: {side} answered HTTP {status} ({detail})",
                retryable=True,
                retry_after=wait,
            )
        if entra:
            return ProviderError(
                f"{where}: authentication with Microsoft Entra failed (check tenant_id, "
                f"client_id, client_secret and authority_host): {detail}"
            )
        if status == 409:
            # A delete or recovery of that name is still in progress: "retry later".
            return ProviderError(
                f"{where}: another operation on it is in progress ({detail})",
                retryable=True,
                retry_after=wait or self._poll_interval,
            )
        hint = {
            401: "the vault rejected the token (is the vault in the credentials' tenant?)",
            403: "permission denied (grant the service principal access to secrets, e.g. the "
            "role 'Key Vault Secrets Officer')",
        }.get(status or 0, f"HTTP {status}")
        return ProviderError(f"{where}: {hint}: {detail}")


def _network_cause(exc: BaseException) -> BaseException | None:
    """Return the connection or timeout error behind an exception, if there is one."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ServiceRequestError | ServiceResponseError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _response_url(exc: Exception) -> str:
    request = getattr(getattr(exc, "response", None), "request", None)
    return str(getattr(request, "url", "") or "")


def _error_codes(exc: HttpResponseError) -> tuple[str, str, str]:
    """Return (code, inner code, Entra `AADSTS…` code) of an error, never its message text."""
    try:
        body = json.loads(exc.response.text()) if exc.response is not None else None
    except Exception:  # a body that is not JSON (or not readable) has no codes
        body = None
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    if isinstance(error, dict):
        inner = error.get("innererror")
        inner_code = inner.get("code") if isinstance(inner, dict) else None
        return error_code(error.get("code")), error_code(inner_code), ""
    # Microsoft Entra: {"error": "invalid_client", "error_description": "AADSTS7000215: ..."};
    # azure-identity may keep only that description, in the exception's message.
    described = _AADSTS.search(str(body.get("error_description") or exc.message or ""))
    return error_code(error), "", described.group(0) if described else ""


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Read the wait an answer asked for: retry-after-ms, x-ms-retry-after-ms or Retry-After."""
    headers = headers or {}
    for header in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(headers.get(header) or "") / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
