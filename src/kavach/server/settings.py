"""Server settings from KAVACH_* environment variables (or an env file), validated at start."""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kavach.formats.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SECRETS,
    DEFAULT_MAX_VALUE_BYTES,
)


class Mode(StrEnum):
    """How strict the server is about its configuration."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    """How log lines are written: chosen by stderr (auto), or always JSON or console."""

    AUTO = "auto"  # console on a terminal, JSON otherwise (a file, a pipe, a collector)
    JSON = "json"
    CONSOLE = "console"


def default_data_dir() -> Path:
    """Return the directory for the embedded database and generated keys."""
    return Path.home() / ".kavach" / "server"


# GitHub logins and organization names: letters, digits and single inner hyphens.
_GITHUB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def _names(value: str | None) -> frozenset[str]:
    """Split a comma-separated list into lower-case names (GitHub names ignore case)."""
    return frozenset(part.strip().lower() for part in (value or "").split(",") if part.strip())


def split_host_port(value: str) -> tuple[str, int]:
    """Split `host:port` (`[::1]:9464` for IPv6); raise ValueError when it is not one."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {value!r}")
    return host, int(port)


_PROVIDER_NAME = r"^[a-z0-9][a-z0-9-]{0,23}$"
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class OidcProvider(BaseModel):
    """One OpenID provider people sign in with (an entry of KAVACH_OIDC_PROVIDERS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_PROVIDER_NAME)  # in URLs and in users' provider: "oidc:NAME"
    display_name: str | None = Field(default=None, max_length=100)
    issuer: str = Field(min_length=8, max_length=512)
    client_id: str = Field(min_length=1, max_length=512)
    # None: a public client (PKCE alone), unless client_secret_file names the secret.
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    token_endpoint_auth_method: str | None = Field(
        default=None, pattern=r"^(client_secret_basic|client_secret_post|none)$"
    )
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    # The ID token's signature algorithm registered for this client (asymmetric only).
    id_token_alg: str = "RS256"  # noqa: S105 - an algorithm's name, not a credential
    login_claim: str = "preferred_username"
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    # An address without email_verified counts as verified only if this says so: some
    # providers (Entra ID) send addresses anyone may set on their own account.
    trust_unmarked_email: bool = False
    # Who may sign in: any of these e-mail domains (verified addresses), any of these
    # groups, or, said explicitly, everyone the provider signs in.
    allowed_email_domains: tuple[str, ...] = ()
    required_groups: tuple[str, ...] = ()
    allow_all_users: bool = False
    # Provider group -> Kavach user group as "organization/group".
    group_map: dict[str, str] = Field(default_factory=dict)
    # Provider groups named PREFIX + "organization/group" map to that user group.
    group_prefix: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the issuer must be an https:// URL")
        return value

    @field_validator("allowed_email_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(domain.strip().lower().lstrip("@") for domain in value)
        bad = [domain for domain in domains if not _DOMAIN.match(domain)]
        if bad:
            raise ValueError(f"not e-mail domains: {', '.join(bad)}")
        return domains

    @field_validator("group_map")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [target for target in value.values() if target.count("/") != 1]
        if bad:
            raise ValueError(f"group_map targets are organization/group: {', '.join(bad)}")
        return value

    @field_validator("id_token_alg")
    @classmethod
    def _asymmetric(cls, value: str) -> str:
        if value[:2] not in ("RS", "PS", "ES") and value != "EdDSA":
            raise ValueError("id_token_alg must be an asymmetric algorithm (RS256, ES256, …)")
        return value

    @model_validator(mode="after")
    def _admission_rule(self) -> OidcProvider:
        if not (self.allowed_email_domains or self.required_groups or self.allow_all_users):
            raise ValueError(
                f"provider {self.name!r}: say who may sign in: allowed_email_domains, "
                "required_groups, or allow_all_users: true"
            )
        if self.client_secret is not None and self.client_secret_file is not None:
            raise ValueError(f"provider {self.name!r}: client_secret or client_secret_file")
        return self

    @property
    def label(self) -> str:
        """Return the name shown on sign-in pages."""
        return self.display_name or self.name

    @property
    def key(self) -> str:
        """Return how users and sessions name this provider: "oidc:NAME"."""
        return f"oidc:{self.name}"

    def secret(self) -> str | None:
        """Return the client secret (read from its file at each use, so it can rotate)."""
        if self.client_secret_file is not None:
            return self.client_secret_file.read_text(encoding="utf-8").strip()
        return None if self.client_secret is None else self.client_secret.get_secret_value()

    @property
    def auth_method(self) -> str:
        """Return how the client authenticates at the token endpoint."""
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        public = self.client_secret is None and self.client_secret_file is None
        return "none" if public else "client_secret_basic"

    @property
    def scope(self) -> str:
        """Return the scopes asked for, openid first."""
        rest = [scope for scope in self.scopes if scope != "openid"]
        return " ".join(["openid", *rest])


def _config() -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix="KAVACH_", env_file_encoding="utf-8", extra="ignore")


class DatabaseSettings(BaseSettings):
    """Where the data lives."""

    model_config = _config()

    database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    # Off: a ping is a round trip on every checkout. A connection the server lost is
    # detected on use instead (that request gets a 503, the pool replaces every older one).
    db_pool_pre_ping: bool = False
    # The driver's own pool, for the hottest statements (reads of the latest secrets, their
    # audit batches): kept small, as each statement holds a connection for a moment only.
    db_driver_pool_size: int = Field(default=4, ge=1, le=100)


class KeySettings(BaseSettings):
    """Key material; in development, whatever is missing is generated into the data directory."""

    model_config = _config()

    jwt_signing_key: SecretStr | None = None
    jwt_signing_key_file: Path | None = None
    secret_encryption_key: SecretStr | None = None
    secret_encryption_key_file: Path | None = None
    secret_encryption_old_keys: SecretStr | None = None
    provider_credential_key: SecretStr | None = None
    provider_credential_key_file: Path | None = None


class AuthSettings(BaseSettings):
    """Login, tokens and identity providers."""

    model_config = _config()

    public_url: str | None = None
    jwt_issuer: str = "kavach"
    jwt_audience: str = "kavach-api"
    access_token_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60)
    device_code_ttl_seconds: int = Field(default=900, ge=10, le=3_600)
    device_poll_interval_seconds: int = Field(default=5, ge=0, le=60)
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    github_timeout_seconds: float = Field(default=10.0, gt=0)
    # Comma-separated GitHub organizations and logins allowed to sign in; neither set: only
    # users who already exist sign in through GitHub, nobody new.
    github_allowed_orgs: str | None = None
    github_allowed_logins: str | None = None
    # OpenID providers people sign in with: a JSON list of OidcProvider objects.
    oidc_providers: list[OidcProvider] = Field(default_factory=list)
    # A browser's session cookie lasts this long (and never beyond its login session).
    browser_session_ttl_seconds: int = Field(default=12 * 3600, ge=300, le=30 * 86_400)
    # A trip through a provider (sign-in page to callback) must end within this.
    oidc_login_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    enable_local_idp: bool | None = None
    # Removed (the /device page approves nothing any more); read only to refuse it at start.
    device_page_allow_remote: str | None = None
    rate_limit_device_code: str = "20/minute"
    rate_limit_device_token: str = "120/minute"  # noqa: S105 - a rate, not a credential
    rate_limit_device_approve: str = "10/minute"
    rate_limit_refresh: str = "60/minute"
    rate_limit_oidc_login: str = "60/minute"
    # Workloads exchanging their platform's OIDC token (per client address).
    rate_limit_oidc_token: str = "60/minute"  # noqa: S105 - a rate, not a credential
    rate_limit_api: str = "1200/minute"

    @field_validator("github_url", "github_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("github_allowed_orgs", "github_allowed_logins")
    @classmethod
    def _github_names(cls, value: str | None) -> str | None:
        bad = sorted(name for name in _names(value) if not _GITHUB_NAME.match(name))
        if bad:
            raise ValueError(f"not GitHub account names: {', '.join(bad)}")
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_names(cls, value: list[OidcProvider]) -> list[OidcProvider]:
        names = [provider.name for provider in value]
        if len(set(names)) != len(names):
            raise ValueError("OpenID providers need distinct names")
        return value

    def oidc_provider(self, name: str) -> OidcProvider | None:
        """Return the OpenID provider of this name, if configured."""
        return next((p for p in self.oidc_providers if p.name == name), None)

    @property
    def server_device_flow(self) -> bool:
        """Say whether this server runs device logins itself (local or OpenID approval)."""
        return bool(self.oidc_providers) or (
            self.identity_provider == "local" and self.local_idp_enabled
        )

    @property
    def allowed_github_orgs(self) -> frozenset[str]:
        """Return the GitHub organizations whose active members may sign in (lower case)."""
        return _names(self.github_allowed_orgs)

    @property
    def allowed_github_logins(self) -> frozenset[str]:
        """Return the GitHub logins allowed to sign in (lower case)."""
        return _names(self.github_allowed_logins)

    @property
    def identity_provider(self) -> str:
        """Name the identity provider in use: GitHub when a client id is set, else local."""
        return "github" if self.github_client_id else "local"

    @property
    def login_method(self) -> str:
        """Name how people log in, as clients are told: oidc, github or local."""
        return "oidc" if self.oidc_providers else self.identity_provider

    @property
    def local_idp_enabled(self) -> bool:
        """Say whether the local identity provider serves logins."""
        if self.enable_local_idp is not None:
            return self.enable_local_idp
        return self.identity_provider == "local" and not self.oidc_providers


class Settings(BaseSettings):
    """All server settings; one instance per process, built by get_settings()."""

    model_config = _config()

    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO
    # The older switch: with log_format auto, true means JSON and false console.
    log_json: bool | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_secret_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, ge=1)
    max_secrets_per_version: int = Field(default=DEFAULT_MAX_SECRETS, ge=1)
    auto_migrate: bool = True
    # Shared rate-limit counters across instances; in-process counters when unset.
    redis_url: str | None = None
    sync_max_attempts: int = Field(default=4, ge=1, le=10)
    sync_call_timeout_seconds: float = Field(default=30.0, gt=0)
    sync_max_retry_after_seconds: float = Field(default=30.0, ge=0)
    # Sync targets on loopback, private or link-local addresses; unset: allowed outside
    # production mode only (local test doubles), see private_targets_allowed.
    sync_allow_private_targets: bool | None = None
    # Webhooks: this process delivers them (turn off on instances that should not); how
    # often it looks for new events and due deliveries; the waits between a delivery's
    # attempts (6 attempts over about an hour by default), after which it has failed.
    webhook_dispatcher_enabled: bool = True
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_retry_delays_seconds: tuple[Annotated[float, Field(ge=0, le=86_400)], ...] = Field(
        default=(10.0, 60.0, 300.0, 900.0, 2400.0), max_length=20
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Proxies whose X-Forwarded-For names the client; empty: none, the peer is the client.
    trusted_proxies: str = ""
    # Comma-separated browser origins allowed to call the API; unset: no CORS headers at all.
    cors_origins: str | None = None
    # Prometheus metrics: served at /metrics on the API port, or on a listener of their own.
    metrics_enabled: bool = False
    metrics_addr: str | None = None
    # How often a waiting change feed asks the database for the environment's revision
    # (seconds): what a watcher waits at most beyond the commit, per waiting request.
    changes_poll_interval: float = Field(default=0.2, gt=0, le=5)
    # The longest a change feed request waits, whatever its timeout asks (seconds): a proxy
    # that cuts idle requests sooner than 60 s wants it lower. It then answers changed=false.
    changes_max_wait: float = Field(default=60, ge=0, le=60)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        # uvicorn takes any other word as a literal host name and never matches it: say so.
        for entry in filter(None, (part.strip() for part in value.split(","))):
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return value

    @field_validator("metrics_addr")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @property
    def chosen_log_format(self) -> LogFormat:
        """Return the log format asked for: auto unless set (or set by the older switch)."""
        if self.log_format is LogFormat.AUTO and self.log_json is not None:
            return LogFormat.JSON if self.log_json else LogFormat.CONSOLE
        return self.log_format

    @property
    def metrics_on(self) -> bool:
        """Say whether this server collects metrics (on the API port or its own listener)."""
        return self.metrics_enabled or self.metrics_addr is not None

    @property
    def metrics_on_api_port(self) -> bool:
        """Say whether GET /metrics is served on the API port (not with a listener of its own)."""
        return self.metrics_enabled and self.metrics_addr is None

    @property
    def proxy_list(self) -> list[str]:
        """Return the trusted proxy addresses and networks, without blanks."""
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @property
    def database_url(self) -> str:
        """Return the SQLAlchemy async URL, defaulting to SQLite in the data directory."""
        url = self.db.database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'kavach.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def private_targets_allowed(self) -> bool:
        """Say whether sync providers may connect to non-public addresses."""
        if self.sync_allow_private_targets is not None:
            return self.sync_allow_private_targets
        return self.mode is not Mode.PRODUCTION

    @property
    def is_sqlite(self) -> bool:
        """Say whether the database is SQLite."""
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Read the settings from the environment (and KAVACH_ENV_FILE) now, never at import time."""
    env_file = os.environ.get("KAVACH_ENV_FILE")
    return Settings(
        _env_file=env_file,
        db=DatabaseSettings(_env_file=env_file),
        keys=KeySettings(_env_file=env_file),
        auth=AuthSettings(_env_file=env_file),
    )


def check_startable(settings: Settings) -> None:
    """Refuse configurations that are unsafe for the chosen mode."""
    from kavach.server.errors import ConfigurationError

    if settings.auth.device_page_allow_remote is not None:
        raise ConfigurationError(
            "KAVACH_DEVICE_PAGE_ALLOW_REMOTE no longer exists: the /device page approves "
            "nothing; approve logins with `kavach login --approve CODE` (signed in) or "
            "`kavach server approve CODE --user NAME` (on the server). Remove the setting."
        )
    if settings.mode is not Mode.PRODUCTION:
        return
    problems = []
    if settings.is_sqlite:
        problems.append("SQLite is for one machine; set KAVACH_DATABASE_URL to PostgreSQL")
    auth = settings.auth
    if auth.local_idp_enabled and auth.enable_local_idp is not True:
        problems.append(
            "the local identity provider needs KAVACH_ENABLE_LOCAL_IDP=true in production "
            "(or configure GitHub with KAVACH_GITHUB_CLIENT_ID)"
        )
    if auth.identity_provider == "local" and not (auth.local_idp_enabled or auth.oidc_providers):
        problems.append(
            "nobody could log in: set KAVACH_OIDC_PROVIDERS, KAVACH_GITHUB_CLIENT_ID, "
            "or KAVACH_ENABLE_LOCAL_IDP=true"
        )
    insecure = [p.name for p in auth.oidc_providers if not p.issuer.startswith("https://")]
    if insecure:
        problems.append(f"OpenID provider issuers must be https:// URLs: {', '.join(insecure)}")
    if auth.oidc_providers and not (auth.public_url or "").startswith("https://"):
        problems.append(
            "OpenID sign-in needs KAVACH_PUBLIC_URL, the https:// address browsers reach "
            "(providers send people back to it)"
        )
    if "*" in settings.proxy_list:
        problems.append(
            "KAVACH_TRUSTED_PROXIES=* lets every client choose its address; name your proxies"
        )
    if problems:
        raise ConfigurationError("refusing to start in production mode: " + "; ".join(problems))
