"""Request and response models of workload trusts and of the token exchange."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kavach.server.text_rules import NUL_FREE, RESOURCE_NAME

CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CONDITIONS = 20
MAX_PATTERN_CHARS = 256
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 3600
DEFAULT_TTL_SECONDS = 900
MAX_PLATFORM_TOKEN_CHARS = 16_384

NO_CONDITION = (
    "at least one condition is required: an issuer such as GitHub Actions signs tokens for "
    "every repository it serves, so a trust without a condition (on sub or repository, say) "
    "would admit them all"
)
ISSUER_FORM = (
    "must be the issuer's URL exactly as its tokens' iss claim writes it, e.g. "
    "https://token.actions.githubusercontent.com (no user, query or fragment)"
)


def _check_issuer(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(ISSUER_FORM) from None
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(char.isspace() or char == "\x00" for char in value)
    ):
        raise ValueError(ISSUER_FORM)
    return value


def _check_conditions(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError(NO_CONDITION)
    if len(value) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} conditions")
    for claim, pattern in value.items():
        if CLAIM_NAME.fullmatch(claim) is None:
            raise ValueError(
                "claim names are 1-64 characters: letters, digits, '_', '.', ':' or '-'"
            )
        if not pattern:
            raise ValueError(f"the pattern of claim {claim} must not be empty")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(
                f"the pattern of claim {claim} must be at most {MAX_PATTERN_CHARS} characters"
            )
        if "\x00" in pattern:
            raise ValueError(f"the pattern of claim {claim} must not contain a NUL character")
    return value


class TrustCreate(BaseModel):
    """Which platform tokens may sign in to an environment, and with which role."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=RESOURCE_NAME)
    issuer: str = Field(min_length=1, max_length=512)
    audience: str = Field(min_length=1, max_length=512, pattern=NUL_FREE)
    # Claim name -> an exact value or a glob (`*`, `?`, `[…]`); every one must match.
    conditions: dict[str, str]
    role: Literal["viewer", "editor"] = "viewer"
    token_ttl_seconds: int = Field(
        default=DEFAULT_TTL_SECONDS, ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _check_issuer(value)

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_conditions(value)


class TrustPublic(BaseModel):
    """A workload trust as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    environment_id: uuid.UUID
    name: str
    issuer: str
    audience: str
    conditions: dict[str, str]
    role: str
    token_ttl_seconds: int
    created_by: uuid.UUID | None
    created_at: datetime


class TrustDeleted(TrustPublic):
    """A deleted trust, and how many of its tokens ended with it."""

    tokens_deleted: int


class TokenExchange(BaseModel):
    """A platform's OIDC token, and the environment (by id or by names) it asks to enter."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_PLATFORM_TOKEN_CHARS)
    environment_id: uuid.UUID | None = None
    organization: str | None = Field(default=None, pattern=RESOURCE_NAME)
    secret_group: str | None = Field(default=None, pattern=RESOURCE_NAME)
    environment: str | None = Field(default=None, pattern=RESOURCE_NAME)
    trust: str | None = Field(default=None, pattern=RESOURCE_NAME)

    @model_validator(mode="after")
    def _one_environment(self) -> TokenExchange:
        names = (self.organization, self.secret_group, self.environment)
        by_names = all(name is not None for name in names)
        if self.environment_id is not None and not any(name is not None for name in names):
            return self
        if self.environment_id is None and by_names:
            return self
        raise ValueError(
            "name the environment either by environment_id, or by organization, "
            "secret_group and environment"
        )

    @property
    def names(self) -> tuple[str, str, str] | None:
        """Return (organization, secret group, environment) when named so."""
        if self.organization is None or self.secret_group is None or self.environment is None:
            return None
        return self.organization, self.secret_group, self.environment


class WorkloadToken(BaseModel):
    """A service token for the environment, issued to a workload for a short while."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a credential
    expires_in: int
    environment_id: uuid.UUID
    role: str
    trust: str
