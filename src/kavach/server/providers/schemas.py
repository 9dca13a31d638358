"""Request and response models for provider configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kavach.server.text_rules import NUL_FREE


class ProviderCreate(BaseModel):
    """Configure a sync target for an environment."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=32, pattern=NUL_FREE)
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)


class ProviderUpdate(BaseModel):
    """Change some fields of a configuration; absent fields keep their values."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class ProviderPublic(BaseModel):
    """A provider configuration as the API shows it: never the credentials."""

    provider: str
    config: dict[str, Any]
    credential_fields: list[str]
    created_at: datetime
    updated_at: datetime


class ProviderTestResult(BaseModel):
    """Outcome of checking a provider's credentials."""

    ok: bool
    target: str
