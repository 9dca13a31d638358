"""Sync to GCP Secret Manager in one project (global secrets, or regional ones in a location).

Writes go through the official client over its REST transport, in a worker thread, with the
library's retries off (the sync engine retries). A write creates a missing secret labelled
`managed-by=kavach` (plus the configured labels) and adds a version carrying a CRC32C checksum;
it can then disable the older enabled versions. Names: Kavach's `.` becomes `_` (GCP allows
`[A-Za-z0-9_-]`), the configured prefix goes first, 255 characters at most.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from contextlib import suppress
from email.utils import parsedate_to_datetime
from functools import partial
from ipaddress import ip_address
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import google.auth.transport.requests
import google_crc32c
import httpx
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.rest import (
    DEFAULT_CLIENT_INFO,
    SecretManagerServiceRestTransport,
)
from google.oauth2 import service_account
from google.protobuf import json_format  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers.base import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    RemoteSecret,
    SyncProvider,
    error_code,
    register,
)
from kavach.server.providers.egress import Egress, NoRedirects
from kavach.server.text_rules import worded

T = TypeVar("T")

MAX_NAME = 255
MAX_VALUE_BYTES = 64 * 1024  # GCP refuses larger payloads
PAGE_SIZE = 1000
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - an address
DEFAULT_API_ENDPOINT = "secretmanager.googleapis.com"
_MAPPABLE = re.compile(r"^[A-Za-z0-9_.-]+$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")

# At DEBUG these loggers write request bodies, i.e. secret payloads: keep them above it.
for _logger in ("google.cloud.secretmanager_v1", "google.auth.transport.requests"):
    logging.getLogger(_logger).setLevel(logging.INFO)


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _endpoint(value: str, what: str) -> str:
    """Check an https URL (or bare host); plain http only to this machine."""
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be a host name or an http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{what} cannot carry a query, fragment or user info")
    # Bearer tokens travel to it: plain HTTP only for loopback addresses.
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https (plain http only for loopback addresses)")
    return value.rstrip("/")


_PROJECT = worded(
    r"^(?:(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$",
    "project ids are 6–30 characters: a–z, 0–9 or '-', starting with a letter and not "  # noqa: RUF001
    "ending with '-', perhaps after a domain and ':' (example.com:my-project); or a "
    "project number of up to 20 digits",
)
_LOCATION = worded(
    r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$",
    "locations are 2–63 characters: a–z, 0–9 or '-', starting with a letter and not "  # noqa: RUF001
    "ending with '-'",
)
_PREFIX = worded(
    r"^[A-Za-z0-9_-]{0,200}$", "prefixes are up to 200 characters: letters, digits, '_' or '-'"
)
_EMAIL = worded(
    r"^[^@\s]+@[^@\s]+$", "must be an email address, e.g. name@project.iam.gserviceaccount.com"
)


class GCPConfig(BaseModel):
    """Where to sync: a project's global secrets, or its regional secrets in one location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A project id (`my-project`, `example.com:my-project`) or number.
    project_id: Annotated[str, Field(pattern=_PROJECT)]
    location: Annotated[str | None, Field(pattern=_LOCATION)] = None
    prefix: Annotated[str, Field(pattern=_PREFIX)] = ""
    labels: dict[str, str] = Field(default_factory=dict)
    disable_older_versions: bool = False
    api_endpoint: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if MANAGED_BY_KEY in value:
            raise ValueError(f"the label {MANAGED_BY_KEY!r} is set by Kavach itself")
        if len(value) > 63:
            raise ValueError("at most 63 labels (GCP allows 64, one is Kavach's)")
        for key, label in value.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r}: lowercase letters, digits, _ and -, starting with a letter"
                )
            if not _LABEL_VALUE.match(label):
                raise ValueError(f"label {key!r}: values are lowercase letters, digits, _ and -")
        return value

    @field_validator("api_endpoint")
    @classmethod
    def _api_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _endpoint(value.strip(), "api_endpoint")


class GCPCredentials(BaseModel):
    """A service-account key file (its JSON object as is); the private key stays secret."""

    # Errors must never echo the input: it holds the private key.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    type: Literal["service_account"]
    client_email: Annotated[str, Field(pattern=_EMAIL)]
    private_key: Annotated[SecretStr, Field(min_length=1)]
    private_key_id: str | None = None
    project_id: str | None = None
    client_id: str | None = None
    token_uri: str = DEFAULT_TOKEN_URI
    auth_uri: str | None = None
    auth_provider_x509_cert_url: str | None = None
    client_x509_cert_url: str | None = None
    universe_domain: str | None = None

    @field_validator("token_uri")
    @classmethod
    def _token_uri(cls, value: str) -> str:
        return _endpoint(value.strip(), "token_uri")

    @model_validator(mode="after")
    def _loadable(self) -> GCPCredentials:
        try:
            key = load_pem_private_key(self.private_key.get_secret_value().encode(), None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("private_key is not a PEM-encoded RSA private key")
        return self

    def key_file(self) -> dict[str, Any]:
        """Return the key file as google-auth reads it (with the private key revealed)."""
        info = self.model_dump(exclude_none=True)
        info["private_key"] = self.private_key.get_secret_value()
        return info


def _api_endpoint(config: GCPConfig) -> str | None:
    """Return the configured endpoint, the location's regional one, or None for the default."""
    if config.api_endpoint is None and config.location:
        return f"secretmanager.{config.location}.rep.googleapis.com"
    return config.api_endpoint


def _retry_after(response: Any) -> float | None:
    """Return the wait a Retry-After header asks for (seconds or an HTTP date), if any."""
    headers = getattr(response, "headers", None)
    value = str(headers.get("retry-after", "") if headers is not None else "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _status(exc: api_exceptions.GoogleAPICallError) -> str:
    """Return the google.rpc status name of an API error (`NOT_FOUND`), never its message."""
    try:
        error = exc.response.json()["error"] if exc.response is not None else {}
        return error_code(error.get("status"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _api_error(
    action: str, exc: api_exceptions.GoogleAPICallError, conflict_ok: bool
) -> ProviderError:
    """Classify an API error: 429/5xx/408 retryable, auth and not-found not."""
    code = int(exc.code or 0)
    status = _status(exc)
    detail = f"HTTP {code}{f' {status}' if status else ''}"
    retry_after = _retry_after(exc.response)
    if code == 429:
        return ProviderError(
            f"GCP Secret Manager is rate limiting ({detail}) while trying to {action}",
            retryable=True,
            retry_after=retry_after,
        )
    if code == 408 or code >= 500:
        return ProviderError(
            f"GCP Secret Manager failed to {action} ({detail})",
            retryable=True,
            retry_after=retry_after,
        )
    if conflict_ok and status in ("FAILED_PRECONDITION", "ABORTED"):
        return ProviderError(
            f"the secret changed while trying to {action} ({detail})", retryable=True
        )
    if code == 401:
        return ProviderError(
            f"GCP rejected the service-account credentials while trying to {action} "
            f"(is the key deleted or disabled?) ({detail})"
        )
    if code == 403:
        return ProviderError(
            f"permission denied to {action}: the service account needs the Secret Manager Admin "
            f"role on the project, and the Secret Manager API must be enabled ({detail})"
        )
    if code == 404:
        return _NotFound(f"not found while trying to {action} ({detail})")
    if code == 409 and status == "ABORTED":
        return ProviderError(
            f"GCP Secret Manager aborted a concurrent {action} ({detail})", retryable=True
        )
    if code == 409:
        return _Exists(f"already exists, found while trying to {action} ({detail})")
    return ProviderError(f"GCP Secret Manager refused to {action} ({detail})")


class _CheckedAuthorizedSession(NoRedirects, AuthorizedSession):
    """google-auth's session, for which a redirect is an error (the client would parse it)."""

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request; refuse a 3xx answer instead of following it."""
        send = super().request
        response: requests.Response = send(method, url, *args, **kwargs)  # type: ignore[no-untyped-call]
        if 300 <= response.status_code < 400:
            response.close()
            raise ProviderError(
                f"GCP Secret Manager answered HTTP {response.status_code}, a redirect, "
                "which is not followed"
            )
        return response


class _CheckedTransport(SecretManagerServiceRestTransport):
    """The REST transport, with API and token requests sent through the egress policy."""

    def __init__(self, *, egress: Egress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token_session = egress.session()
        session = _CheckedAuthorizedSession(  # type: ignore[no-untyped-call]
            self._credentials,
            auth_request=google.auth.transport.requests.Request(self._token_session),
            default_host=self.DEFAULT_HOST,
        )
        egress.prepare(session)
        self._session.close()  # type: ignore[no-untyped-call]  # the unchecked one made above
        self._session = session
        # The wrapped methods are keyed by the session they were made with: make them again.
        client_info = kwargs.get("client_info", DEFAULT_CLIENT_INFO)
        self._prep_wrapped_messages(client_info)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Close the API and token sessions."""
        super().close()  # type: ignore[no-untyped-call]
        self._token_session.close()


class _NotFound(ProviderError):
    """A 404; callers for which "gone" is fine catch it."""


class _Exists(ProviderError):
    """A 409 ALREADY_EXISTS; callers for which "already there" is fine catch it."""


@register
class GCPSecretManager(SyncProvider):
    """GCP Secret Manager secrets of one project (global), or of one of its locations."""

    name: ClassVar[str] = "gcp"
    config_model: ClassVar[type[BaseModel]] = GCPConfig
    credentials_model: ClassVar[type[BaseModel]] = GCPCredentials
    max_concurrency: ClassVar[int] = 4
    # The location picks the regional endpoint when no api_endpoint is set.
    credential_bound: ClassVar[frozenset[str]] = frozenset(
        {"api_endpoint", "project_id", "location"}
    )
    # Where signed assertions go, and the domain the endpoints are derived from.
    bound_credential_fields: ClassVar[frozenset[str]] = frozenset({"token_uri", "universe_domain"})

    def __init__(
        self, *, config: BaseModel, credentials: BaseModel, http: httpx.AsyncClient, egress: Egress
    ):
        if not isinstance(config, GCPConfig) or not isinstance(credentials, GCPCredentials):
            raise TypeError("GCPSecretManager needs a GCPConfig and GCPCredentials")
        super().__init__(config=config, credentials=credentials, http=http, egress=egress)
        self._cfg = config
        self._parent = f"projects/{config.project_id}"
        if config.location:
            self._parent += f"/locations/{config.location}"
        endpoint = _api_endpoint(config)
        try:
            keys = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                credentials.key_file()
            )
        except (ValueError, auth_exceptions.GoogleAuthError):
            raise ValidationFailed("the GCP service-account key cannot be loaded") from None
        self._client = secretmanager_v1.SecretManagerServiceClient(
            credentials=keys,
            transport=partial(_CheckedTransport, egress=egress),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
        # No retries in the library: the engine owns them (and honours Retry-After).
        self._opts: dict[str, Any] = {"retry": None, "timeout": config.timeout_seconds}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target_key()}>"

    @classmethod
    def destinations(cls, config: BaseModel, credentials: BaseModel) -> list[str]:
        """Return the API endpoint and the token endpoint."""
        if not isinstance(config, GCPConfig) or not isinstance(credentials, GCPCredentials):
            raise TypeError("GCPSecretManager needs a GCPConfig and GCPCredentials")
        return [_api_endpoint(config) or DEFAULT_API_ENDPOINT, credentials.token_uri]

    def target_key(self) -> str:
        """Return `gcp:<project>` or `gcp:<project>/<location>` (the secrets' namespace)."""
        location = f"/{self._cfg.location}" if self._cfg.location else ""
        return f"gcp:{self._cfg.project_id}{location}"

    def remote_name(self, name: str) -> str:
        """Map `.` to `_` and put the prefix first; refuse what GCP cannot hold."""
        if not _MAPPABLE.match(name):
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to GCP Secret Manager: "
                "names may only hold letters, digits, _, - and ."
            )
        mapped = self._cfg.prefix + name.replace(".", "_")
        if len(mapped) > MAX_NAME:
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to GCP Secret Manager: its name there "
                f"({len(mapped)} characters with the prefix) is longer than {MAX_NAME}"
            )
        return mapped

    async def test(self) -> None:
        """List one secret: checks the key, the permission and the project, writes nothing."""
        await asyncio.to_thread(self._test)

    async def list_remote(self) -> dict[str, RemoteSecret]:
        """Return the secrets under the prefix (all when none), marking Kavach's label."""
        return await asyncio.to_thread(self._list)

    async def put(self, remote_name: str, value: str) -> None:
        """Create the secret if missing (labelled), mark it if not, and add a version."""
        await asyncio.to_thread(self._put, remote_name, value)

    async def delete(self, remote_name: str) -> None:
        """Delete the secret with all its versions; one already gone is fine."""
        await asyncio.to_thread(self._delete, remote_name)

    async def aclose(self) -> None:
        """Close the client's HTTP session."""
        self._client.transport.close()  # type: ignore[no-untyped-call]

    # The blocking work, run in worker threads.

    def _call(self, action: str, call: Callable[[], T], *, conflict_ok: bool = False) -> T:
        """Run one client call; turn every failure into a classified ProviderError."""
        try:
            return call()
        except api_exceptions.GoogleAPICallError as exc:
            raise _api_error(action, exc, conflict_ok) from None
        except json_format.ParseError:
            raise ProviderError(
                f"GCP Secret Manager answered with something other than its API's JSON while "
                f"trying to {action}"
            ) from None
        except requests.exceptions.Timeout:
            raise ProviderError(
                f"GCP Secret Manager did not answer in time while trying to {action}",
                retryable=True,
            ) from None
        except (requests.exceptions.RequestException, auth_exceptions.TransportError):
            raise ProviderError(
                f"could not reach GCP Secret Manager to {action}", retryable=True
            ) from None
        except auth_exceptions.RefreshError as exc:
            retryable = bool(getattr(exc, "retryable", False))
            raise ProviderError(
                f"GCP did not grant an access token for the service account to {action}",
                retryable=retryable,
            ) from None
        except auth_exceptions.GoogleAuthError:
            raise ProviderError(f"the service-account key could not be used to {action}") from None

    def _secret_path(self, remote_name: str) -> str:
        return f"{self._parent}/secrets/{remote_name}"

    def _test(self) -> None:
        self._call(
            f"list secrets in {self._parent}",
            lambda: self._client.list_secrets(
                request={"parent": self._parent, "page_size": 1}, **self._opts
            ),
        )

    def _list(self) -> dict[str, RemoteSecret]:
        action = f"list secrets in {self._parent}"
        pager = self._call(
            action,
            lambda: self._client.list_secrets(
                request={"parent": self._parent, "page_size": PAGE_SIZE}, **self._opts
            ),
        )
        pages = iter(pager.pages)  # later pages are fetched while iterating
        found: dict[str, RemoteSecret] = {}
        while (page := self._call(action, lambda: next(pages, None))) is not None:
            for secret in page.secrets:
                remote = secret.name.rsplit("/", 1)[-1]
                if remote.startswith(self._cfg.prefix):
                    managed = secret.labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE
                    found[remote] = RemoteSecret(remote, managed)
        return found

    def _put(self, remote_name: str, value: str) -> None:
        data = value.encode()
        if len(data) > MAX_VALUE_BYTES:
            raise ProviderError(
                f"the value of {remote_name} is {len(data)} bytes; "
                f"GCP Secret Manager holds at most {MAX_VALUE_BYTES}"
            )
        path = self._secret_path(remote_name)
        try:
            secret = self._call(
                f"read secret {remote_name}",
                lambda: self._client.get_secret(name=path, **self._opts),
            )
        except _NotFound:
            self._create(remote_name)
        else:
            self._mark(secret, remote_name)
        payload = secretmanager_v1.SecretPayload(data=data, data_crc32c=google_crc32c.value(data))
        try:
            version = self._call(
                f"add a version to {remote_name}",
                lambda: self._client.add_secret_version(
                    request={"parent": path, "payload": payload}, **self._opts
                ),
            )
        except _NotFound:
            # Deleted between our read and this write: a retry recreates it.
            raise ProviderError(
                f"secret {remote_name} vanished while a version was being added", retryable=True
            ) from None
        if self._cfg.disable_older_versions:
            self._disable_older(remote_name, int(version.name.rsplit("/", 1)[-1]))

    def _wanted_labels(self) -> dict[str, str]:
        return {**self._cfg.labels, MANAGED_BY_KEY: MANAGED_BY_VALUE}

    def _create(self, remote_name: str) -> None:
        secret = secretmanager_v1.Secret(labels=self._wanted_labels())
        if not self._cfg.location:  # regional secrets take no replication policy
            secret.replication = secretmanager_v1.Replication(
                automatic=secretmanager_v1.Replication.Automatic()
            )
        # Created concurrently since we looked? Then adding the version is all that is left.
        with suppress(_Exists):
            self._call(
                f"create secret {remote_name}",
                lambda: self._client.create_secret(
                    request={"parent": self._parent, "secret_id": remote_name, "secret": secret},
                    **self._opts,
                ),
            )

    def _mark(self, secret: secretmanager_v1.Secret, remote_name: str) -> None:
        """Give an existing (adopted) secret Kavach's label and the configured ones."""
        wanted = self._wanted_labels()
        current = dict(secret.labels)
        if all(current.get(key) == label for key, label in wanted.items()):
            return
        update = secretmanager_v1.Secret(
            name=self._secret_path(remote_name), labels={**current, **wanted}, etag=secret.etag
        )
        self._call(
            f"label secret {remote_name}",
            lambda: self._client.update_secret(
                request={
                    "secret": update,
                    "update_mask": {"paths": ["labels"]},
                },
                **self._opts,
            ),
            conflict_ok=True,
        )

    def _disable_older(self, remote_name: str, newest: int) -> None:
        """Disable the enabled versions older than the one just added."""
        action = f"list the versions of {remote_name}"
        pager = self._call(
            action,
            lambda: self._client.list_secret_versions(
                request={
                    "parent": self._secret_path(remote_name),
                    "filter": "state:ENABLED",
                    "page_size": PAGE_SIZE,
                },
                **self._opts,
            ),
        )
        pages = iter(pager.pages)
        older: list[str] = []
        while (page := self._call(action, lambda: next(pages, None))) is not None:
            older += [v.name for v in page.versions if int(v.name.rsplit("/", 1)[-1]) < newest]
        for name in older:
            try:
                self._call(
                    f"disable an old version of {remote_name}",
                    partial(
                        self._client.disable_secret_version, request={"name": name}, **self._opts
                    ),
                )
            except _NotFound:
                continue  # the secret or version went away meanwhile

    def _delete(self, remote_name: str) -> None:
        try:
            self._call(
                f"delete secret {remote_name}",
                lambda: self._client.delete_secret(
                    name=self._secret_path(remote_name), **self._opts
                ),
            )
        except _NotFound:
            return
