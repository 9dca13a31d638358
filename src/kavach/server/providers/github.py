"""Sync to GitHub Actions secrets of a repository, or of one of its deployment environments.

GitHub stores only values sealed to the target's public key (a libsodium sealed box), cannot
return them, and keeps no labels: every remote secret is listed with `managed=False` and the
sync ledger alone knows which ones Kavach wrote. Names follow GitHub's rules (uppercase
`[A-Z0-9_]`, no leading digit, no `GITHUB_` prefix).
"""

from __future__ import annotations

import asyncio
import re
import time
from base64 import b64decode, b64encode
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Annotated, Any, ClassVar, NoReturn
from urllib.parse import quote, urlsplit

import httpx
from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers.base import RemoteSecret, SyncProvider, register
from kavach.server.providers.egress import Egress
from kavach.server.text_rules import worded

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100  # GitHub's maximum page size
MAX_VALUE_BYTES = 48 * 1024  # GitHub refuses larger secrets
# GitHub asks clients hit by a rate limit that names no wait to pause at least a minute.
RATE_LIMIT_WAIT = 60.0
_NOT_ALLOWED = re.compile(r"[^A-Z0-9_]")
_RESERVED_PREFIX = "GITHUB_"


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_OWNER = worded(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    "owners are 1–100 characters: letters, digits, '_', '.' or '-', "  # noqa: RUF001
    "starting with a letter or digit",
)
_REPOSITORY = worded(
    r"^[A-Za-z0-9_.-]{1,100}$",
    "repository names are 1–100 characters: letters, digits, '_', '.' or '-'",  # noqa: RUF001
)


class GitHubConfig(BaseModel):
    """Where to sync: a repository's Actions secrets, or one environment's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: Annotated[str, Field(pattern=_OWNER)]
    repository: Annotated[str, Field(pattern=_REPOSITORY)]
    environment: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    api_url: str = DEFAULT_API_URL

    @field_validator("repository")
    @classmethod
    def _not_dots(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError("a repository name cannot be '.' or '..'")
        return value

    @field_validator("environment")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("environment names cannot contain control characters")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an http(s) URL, e.g. https://ghe.example.com/api/v3")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("api_url cannot carry a query, fragment or user info")
        # The token travels in every request: plain HTTP only to this machine.
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("api_url must use https (plain http only for loopback addresses)")
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class GitHubCredentials(BaseModel):
    """A token allowed to manage the repository's secrets (classic `repo` scope, or fine-grained
    "Secrets: read and write"; environment secrets also need "Environments: read")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: Annotated[SecretStr, Field(min_length=1)]


@dataclass(frozen=True)
class _Key:
    """A target's public key: what values are sealed to, and the id GitHub wants back."""

    key_id: str
    box: SealedBox[PublicKey]


def _retry_after(response: httpx.Response) -> float | None:
    """Return the wait a Retry-After header asks for (seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _github_message(response: httpx.Response) -> str:
    """Return GitHub's error message, to classify the answer (never repeated: it is free text)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ""
    return "".join(c for c in message if c.isprintable())[:200]


def _rate_limit_wait(response: httpx.Response, message: str) -> float | None:
    """Return how long to wait if a 403/429 is one of GitHub's rate limits, else None."""
    after = _retry_after(response)
    if after is not None:
        return after
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        return max(0.0, int(reset) - time.time()) if reset.isdigit() else RATE_LIMIT_WAIT
    if response.status_code == 429 or "rate limit" in message.lower():
        return RATE_LIMIT_WAIT
    return None


def _unexpected(what: str) -> ProviderError:
    return ProviderError(f"GitHub answered {what} with an unexpected body")


@register
class GitHubActionsProvider(SyncProvider):
    """GitHub Actions secrets of one repository, or of one of its environments."""

    name: ClassVar[str] = "github"
    config_model: ClassVar[type[BaseModel]] = GitHubConfig
    credentials_model: ClassVar[type[BaseModel]] = GitHubCredentials
    # GitHub asks integrators to avoid concurrent writes (secondary rate limits).
    max_concurrency: ClassVar[int] = 2
    # The host the token goes to, and the repository and environment it acts on.
    credential_bound: ClassVar[frozenset[str]] = frozenset(
        {"api_url", "owner", "repository", "environment"}
    )

    def __init__(
        self, *, config: BaseModel, credentials: BaseModel, http: httpx.AsyncClient, egress: Egress
    ):
        if not isinstance(config, GitHubConfig) or not isinstance(credentials, GitHubCredentials):
            raise TypeError("GitHubActionsProvider needs a GitHubConfig and GitHubCredentials")
        super().__init__(config=config, credentials=credentials, http=http, egress=egress)
        self._cfg = config
        self._host = urlsplit(config.api_url).hostname or ""
        self._token = credentials.token
        self._repo = f"{config.owner}/{config.repository}"
        repo_base = f"/repos/{quote(config.owner, safe='')}/{quote(config.repository, safe='')}"
        self._repo_key_path = f"{repo_base}/actions/secrets/public-key"
        self._env_key_path: str | None = None
        self._base = f"{repo_base}/actions/secrets"
        self._where = f"repository {self._repo}"
        if config.environment is not None:
            env_base = f"{repo_base}/environments/{quote(config.environment, safe='')}"
            self._env_key_path = f"{env_base}/secrets/public-key"
            self._base = f"{env_base}/secrets"
            self._where += f" (environment {config.environment!r})"
        self._key: _Key | None = None
        self._key_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target_key()}>"

    @classmethod
    def destinations(cls, config: BaseModel, credentials: BaseModel) -> list[str]:
        """Return the API URL: the token goes nowhere else."""
        if not isinstance(config, GitHubConfig):
            raise TypeError("GitHubActionsProvider needs a GitHubConfig")
        return [config.api_url]

    def target_key(self) -> str:
        """Return `github:owner/repo[:env]`, with the host first for GitHub Enterprise Server."""
        # GitHub compares owner, repository and environment names case-insensitively.
        host = urlsplit(self._cfg.api_url).netloc.lower()
        prefix = "" if self._cfg.api_url == DEFAULT_API_URL else f"{host}/"
        env = "" if self._cfg.environment is None else f":{self._cfg.environment.lower()}"
        return f"github:{prefix}{self._repo.lower()}{env}"

    def remote_name(self, name: str) -> str:
        """Uppercase, other characters to `_`; refuse a leading digit and the GITHUB_ prefix."""
        mapped = _NOT_ALLOWED.sub("_", name.upper())
        if not mapped:
            raise ValidationFailed("an empty secret name cannot be synced to GitHub")
        if mapped[0].isdigit():
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to GitHub: names must not start with a digit"
            )
        if mapped.startswith(_RESERVED_PREFIX):
            raise ValidationFailed(
                f"secret {name!r} cannot be synced to GitHub: the GITHUB_ prefix is reserved"
            )
        return mapped

    async def test(self) -> None:
        """Read the repository's (and environment's) public key and list one secret."""
        self._key = await self._check_target()
        await self._list_page(1, per_page=1)

    async def list_remote(self) -> dict[str, RemoteSecret]:
        """Return every secret name on the target (GitHub has no labels: none is marked)."""
        found: dict[str, RemoteSecret] = {}
        page = 1
        while True:
            total, names = await self._list_page(page, per_page=PER_PAGE)
            found.update((name, RemoteSecret(name, managed=False)) for name in names)
            if len(names) < PER_PAGE or page * PER_PAGE >= total:
                return found
            page += 1

    async def put(self, remote_name: str, value: str) -> None:
        """Seal the value to the target's public key and create or update the secret."""
        if self.remote_name(remote_name) != remote_name:
            raise ValidationFailed(f"{remote_name!r} is not a GitHub secret name")
        plain = value.encode()
        if len(plain) > MAX_VALUE_BYTES:
            raise ProviderError(f"secret {remote_name} is larger than GitHub's 48 KB limit")
        key = await self._public_key()
        sealed = b64encode(key.box.encrypt(plain)).decode("ascii")
        body = {"encrypted_value": sealed, "key_id": key.key_id}
        what = f"writing secret {remote_name} to {self._where}"
        response = await self._call("PUT", self._secret_path(remote_name), what, json=body)
        if response.status_code not in (201, 204):
            await self._raise(response, what)

    async def delete(self, remote_name: str) -> None:
        """Delete the secret; a 404 is fine once the target itself is known to exist."""
        what = f"deleting secret {remote_name} from {self._where}"
        response = await self._call("DELETE", self._secret_path(remote_name), what)
        if response.status_code == 404:
            await self._check_target()  # the secret is gone, unless the target is
        elif response.status_code != 204:
            await self._raise(response, what)

    def _secret_path(self, remote_name: str) -> str:
        return f"{self._base}/{quote(remote_name, safe='')}"

    async def _list_page(self, page: int, *, per_page: int) -> tuple[int, list[str]]:
        what = f"listing the secrets of {self._where}"
        params = {"per_page": per_page, "page": page}
        response = await self._call("GET", self._base, what, params=params)
        if response.status_code != 200:
            await self._raise(response, what)
        body = self._json(response, what)
        total, secrets = body.get("total_count"), body.get("secrets")
        if not isinstance(total, int) or not isinstance(secrets, list):
            raise _unexpected(what)
        names = [s.get("name") if isinstance(s, dict) else None for s in secrets]
        if not all(isinstance(n, str) for n in names):
            raise _unexpected(what)
        return total, [str(n) for n in names]

    async def _public_key(self) -> _Key:
        """Return the target's public key, fetched once per provider instance."""
        async with self._key_lock:
            if self._key is None:
                path = self._env_key_path or self._repo_key_path
                self._key = await self._read_key(path) or await self._check_target()
            return self._key

    async def _check_target(self) -> _Key:
        """Return the target's public key, or say which of repository or environment is missing."""
        repo_key = await self._read_key(self._repo_key_path)
        if repo_key is None:
            raise ProviderError(
                f"GitHub repository {self._repo} was not found, or the token cannot see it"
            )
        if self._env_key_path is None:
            return repo_key
        env_key = await self._read_key(self._env_key_path)
        if env_key is None:
            raise ProviderError(
                f"GitHub environment {self._cfg.environment!r} was not found in repository "
                f"{self._repo}; create it under the repository's Settings > Environments"
            )
        return env_key

    async def _read_key(self, path: str) -> _Key | None:
        """GET a public key; None when GitHub answers 404."""
        what = f"reading the public key of {self._where}"
        response = await self._call("GET", path, what)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            await self._raise(response, what)
        body = self._json(response, what)
        key_id, key = body.get("key_id"), body.get("key")
        if not isinstance(key_id, str) or not isinstance(key, str):
            raise _unexpected(what)
        try:
            return _Key(key_id, SealedBox(PublicKey(b64decode(key, validate=True))))
        except (ValueError, CryptoError):
            raise ProviderError(
                f"GitHub returned an unusable public key for {self._where}"
            ) from None

    async def _call(
        self, method: str, path: str, what: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        """Send one request (never retried here); network trouble becomes a ProviderError."""
        headers = {
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        url = f"{self._cfg.api_url}{path}"
        try:
            return await self.http.request(
                method,
                url,
                headers=headers,
                json=json,
                params=params,
                follow_redirects=False,
                extensions=self.egress.extensions(self._host),
            )
        except httpx.TimeoutException:
            raise ProviderError(f"GitHub timed out {what}", retryable=True) from None
        except httpx.TransportError as exc:
            message = f"could not reach GitHub ({type(exc).__name__}) {what}"
            raise ProviderError(message, retryable=True) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"GitHub request failed ({type(exc).__name__}) {what}") from None

    async def _raise(self, response: httpx.Response, what: str) -> NoReturn:
        """Raise the ProviderError an unwanted answer stands for."""
        status = response.status_code
        message = _github_message(response)
        detail = f"GitHub answered HTTP {status} {what}"
        if status in (403, 429):
            wait = _rate_limit_wait(response, message)
            if wait is not None:
                raise ProviderError(f"{detail} (rate limited)", retryable=True, retry_after=wait)
        if status >= 500:
            raise ProviderError(detail, retryable=True, retry_after=_retry_after(response))
        if status == 401:
            raise ProviderError(
                f"GitHub rejected the token {what}: bad, expired or revoked; update the credentials"
            )
        if status == 403:
            raise ProviderError(f"{detail}; the token lacks permission to manage Actions secrets")
        if status == 404:
            await self._check_target()
        if 300 <= status < 400:
            detail += " (was the repository renamed or transferred?)"
        raise ProviderError(detail)

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise _unexpected(what) from None
        if not isinstance(body, dict):
            raise _unexpected(what)
        return body
