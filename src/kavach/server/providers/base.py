"""The contract every sync target implements, and the registry of targets by name."""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import httpx
from pydantic import BaseModel

from kavach.server.providers.egress import Egress

MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "kavach"
# What of a remote's error answer may be repeated: a machine-readable code, never free text
# (a target's body can hold anything, up to the data of an internal service).
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def error_code(value: object) -> str:
    """Return a remote's error code when it looks like one (`PERMISSION_DENIED`), else ""."""
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else ""


@dataclass(frozen=True)
class RemoteSecret:
    """A secret that exists on the target, and whether it carries Kavach's managed-by mark."""

    name: str
    managed: bool = False


class SyncProvider(ABC):
    """One configured target: maps names, lists, writes and deletes secrets there.

    Implementations raise `kavach.server.errors.ProviderError` for every failure, with
    `retryable=True` (and `retry_after` when the target said so) for 429, 5xx and timeouts,
    and messages that never contain a secret value or credential. They do not retry
    themselves: the sync engine owns retries, backoff and concurrency.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    credentials_model: ClassVar[type[BaseModel]]
    # How many writes the engine may run against this target at once.
    max_concurrency: ClassVar[int] = 4
    # Config fields that decide where the credentials are sent or what they act on: changing
    # one requires the complete credential set again, so stored credentials can never be
    # redirected to another host or target.
    credential_bound: ClassVar[frozenset[str]] = frozenset()
    # The same for fields of the credentials themselves (e.g. a token endpoint): a partial
    # credential update that changes one is refused, as stored secrets would follow it.
    bound_credential_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, *, config: BaseModel, credentials: BaseModel, http: httpx.AsyncClient, egress: Egress
    ):
        self.config = config
        self.credentials = credentials
        self.http = http
        self.egress = egress

    @classmethod
    def destinations(cls, config: BaseModel, credentials: BaseModel) -> list[str]:
        """Return the URLs (or hosts) the credentials are sent to, checked when configured."""
        return []

    @abstractmethod
    def target_key(self) -> str:
        """Identify the target (e.g. `github:owner/repo[:env]`) for the ledger and locks."""

    @abstractmethod
    def remote_name(self, name: str) -> str:
        """Map a Kavach secret name to the target's rules (ValidationFailed if impossible)."""

    @abstractmethod
    async def test(self) -> None:
        """Check the credentials and target without writing anything."""

    @abstractmethod
    async def list_remote(self) -> dict[str, RemoteSecret]:
        """Return the secrets that exist on the target now, by remote name."""

    @abstractmethod
    async def put(self, remote_name: str, value: str) -> None:
        """Create or update one secret (marking it managed by Kavach where the target can)."""

    @abstractmethod
    async def delete(self, remote_name: str) -> None:
        """Delete one secret; deleting one that is already gone is not an error."""

    async def aclose(self) -> None:
        """Release clients; the shared `http` client is not closed here."""
        return None


_REGISTRY: dict[str, type[SyncProvider]] = {}


def register(provider: type[SyncProvider]) -> type[SyncProvider]:
    """Register a provider class under its name (used as a class decorator)."""
    _REGISTRY[provider.name] = provider
    return provider


def provider_class(name: str) -> type[SyncProvider]:
    """Return the provider class for a name; KeyError if unknown."""
    _load_builtin()
    return _REGISTRY[name]


def provider_names() -> list[str]:
    """Return the registered provider names."""
    _load_builtin()
    return sorted(_REGISTRY)


BUILTIN = ("github", "gcp", "azure")


def _load_builtin() -> None:
    # Imported for their @register side effect, lazily: their client libraries are heavy and
    # only a sync or a provider call needs them.
    for module in BUILTIN:
        importlib.import_module(f"kavach.server.providers.{module}")
