"""Store, validate and load provider configurations; credentials are sealed, never returned."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.crypto.envelope import DecryptionFailed, seal, unseal
from kavach.server.errors import (
    AlreadyExists,
    CredentialsRequired,
    CredentialsUnreadable,
    NotFound,
    ValidationFailed,
)
from kavach.server.pages import Keyset, PageRequest
from kavach.server.providers.base import SyncProvider, provider_class, provider_names
from kavach.server.providers.egress import Egress
from kavach.server.providers.models import ProviderConfig
from kavach.server.providers.schemas import ProviderPublic
from kavach.server.wording import in_words


def _aad(environment_id: uuid.UUID, provider: str) -> bytes:
    return f"kavach-provider:{environment_id}:{provider}".encode()


def provider_type(name: str) -> type[SyncProvider]:
    """Return a provider class, or a 422 listing the known ones."""
    try:
        return provider_class(name)
    except KeyError:
        known = ", ".join(provider_names())
        raise ValidationFailed(f"unknown provider {name!r}; known: {known}") from None


def _validated(model: type[BaseModel], data: dict[str, Any], what: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        # Fields and words only: inputs may be credentials.
        raise ValidationFailed(f"invalid {what}: {in_words(exc.errors())}") from None


def _plain(model: BaseModel) -> dict[str, Any]:
    """Dump a model with secret fields revealed, for sealing."""
    data = model.model_dump(mode="json")
    for key, value in model:
        if isinstance(value, SecretStr):
            data[key] = value.get_secret_value()
    return data


def public(record: ProviderConfig) -> ProviderPublic:
    """Describe a configuration without credentials."""
    fields = sorted(provider_type(record.provider).credentials_model.model_fields)
    return ProviderPublic(
        provider=record.provider,
        config=record.config,
        credential_fields=fields,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


async def find(
    session: AsyncSession, *, environment_id: uuid.UUID, provider: str
) -> ProviderConfig:
    """Return an environment's configuration of a provider, or 404."""
    record = await session.scalar(
        select(ProviderConfig).where(
            ProviderConfig.environment_id == environment_id, ProviderConfig.provider == provider
        )
    )
    if record is None:
        raise NotFound(f"provider {provider!r} is not configured for this environment")
    return record


PROVIDERS = Keyset("providers", ProviderConfig.provider)  # one of each per environment


async def list_for(
    session: AsyncSession, *, environment_id: uuid.UUID, request: PageRequest
) -> tuple[list[ProviderConfig], str | None]:
    """Return a page of an environment's provider configurations, by provider."""
    query = select(ProviderConfig).where(ProviderConfig.environment_id == environment_id)
    found = list(await session.scalars(PROVIDERS.page(query, request)))
    return PROVIDERS.cut(found, request, lambda record: (record.provider,))


async def create(
    session: AsyncSession,
    *,
    key: bytes,
    environment_id: uuid.UUID,
    provider: str,
    config: dict[str, Any],
    credentials: dict[str, Any],
    creator: uuid.UUID | None,
    egress: Egress,
) -> ProviderConfig:
    """Validate and store a new configuration."""
    kind = provider_type(provider)
    existing = await session.scalar(
        select(ProviderConfig.id).where(
            ProviderConfig.environment_id == environment_id, ProviderConfig.provider == provider
        )
    )
    if existing is not None:
        raise AlreadyExists(f"{provider} is already configured here; update it instead")
    checked_config = _validated(kind.config_model, config, "config")
    checked_credentials = _validated(kind.credentials_model, credentials, "credentials")
    await _check_destinations(kind, checked_config, checked_credentials, egress)
    record = ProviderConfig(
        environment_id=environment_id,
        provider=provider,
        config=checked_config.model_dump(mode="json", exclude_none=True),
        credentials_encrypted=seal(
            key, json.dumps(_plain(checked_credentials)).encode(), _aad(environment_id, provider)
        ),
        created_by=creator,
    )
    session.add(record)
    await session.flush()
    return record


async def _check_destinations(
    kind: type[SyncProvider], config: BaseModel, credentials: BaseModel, egress: Egress
) -> None:
    """Refuse early a target the connection check would refuse (422 target_not_allowed)."""
    for url in kind.destinations(config, credentials):
        await egress.check_url(url)


def credentials_of(record: ProviderConfig, key: bytes) -> dict[str, Any]:
    """Unseal a configuration's credentials (503 credentials_unreadable if they do not decrypt)."""
    aad = _aad(record.environment_id, record.provider)
    try:
        plain = unseal(key, record.credentials_encrypted, aad)
    except DecryptionFailed:
        raise CredentialsUnreadable(
            f"the stored credentials of provider {record.provider!r} cannot be decrypted (was "
            "the provider-credential key replaced?); configure them again with the complete set"
        ) from None
    data: dict[str, Any] = json.loads(plain)
    return data


def _required(kind: type[SyncProvider]) -> list[str]:
    model = kind.credentials_model
    return sorted(name for name, field in model.model_fields.items() if field.is_required())


def _replacement(
    kind: type[SyncProvider],
    record: ProviderConfig,
    key: bytes,
    given: dict[str, Any],
    moved: list[str],
) -> BaseModel:
    """Return the credentials an update leaves: a complete set replaces, a partial one merges.

    Stored secrets are merged only into an update that sends them nowhere new.
    """
    required = _required(kind)
    missing = [name for name in required if name not in given]
    if not missing:
        return _validated(kind.credentials_model, given, "credentials")

    def refuse(reason: str) -> CredentialsRequired:
        return CredentialsRequired(
            f"{reason}; send the complete credential set ({', '.join(required)}) in the same "
            f"update (missing: {', '.join(missing)})",
            data={"missing": missing},
        )

    if moved:
        raise refuse(f"changing {', '.join(moved)} would send the stored credentials elsewhere")
    try:
        stored = credentials_of(record, key)
    except CredentialsUnreadable:
        raise refuse("the stored credentials cannot be decrypted") from None
    merged = _validated(kind.credentials_model, {**stored, **given}, "credentials")
    previous = _validated(kind.credentials_model, stored, "credentials")
    shifted = [
        f"credentials.{name}"
        for name in sorted(kind.bound_credential_fields)
        if getattr(merged, name) != getattr(previous, name)
    ]
    if shifted:
        raise refuse(f"changing {', '.join(shifted)} would send the stored credentials elsewhere")
    return merged


async def update(
    session: AsyncSession,
    *,
    key: bytes,
    record: ProviderConfig,
    config: dict[str, Any] | None,
    credentials: dict[str, Any] | None,
    egress: Egress,
) -> list[str]:
    """Apply a partial update; changing where credentials go needs the complete set again."""
    kind = provider_type(record.provider)
    changed: list[str] = []
    new_config = record.config
    checked = _validated(kind.config_model, {**record.config, **(config or {})}, "config")
    if config:
        new_config = checked.model_dump(mode="json", exclude_none=True)
        changed += [f"config.{name}" for name in sorted(config)]
    # Compared after normalisation, so re-sending the same URL in another spelling is no move.
    moved = [
        f"config.{name}"
        for name in sorted(kind.credential_bound)
        if new_config.get(name) != record.config.get(name)
    ]
    replacement = None
    if credentials or moved:
        replacement = _replacement(kind, record, key, credentials or {}, moved)
        await _check_destinations(kind, checked, replacement, egress)
    record.config = new_config
    if replacement is not None:
        record.credentials_encrypted = seal(
            key,
            json.dumps(_plain(replacement)).encode(),
            _aad(record.environment_id, record.provider),
        )
        changed += [f"credentials.{name}" for name in sorted(credentials or {})]
    await session.flush()
    return changed


def build(
    record: ProviderConfig, *, key: bytes, http: httpx.AsyncClient, egress: Egress
) -> SyncProvider:
    """Instantiate the provider a configuration describes."""
    kind = provider_type(record.provider)
    return kind(
        config=_validated(kind.config_model, record.config, "config"),
        credentials=_validated(kind.credentials_model, credentials_of(record, key), "credentials"),
        http=http,
        egress=egress,
    )
