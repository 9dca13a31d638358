"""Request and response models of the login endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kavach.server.text_rules import RESOURCE_NAME


class DeviceCodeRequest(BaseModel):
    """Start a device login; no fields are needed."""

    model_config = ConfigDict(extra="forbid")


class DeviceCodeResponse(BaseModel):
    """RFC 8628 device authorization response."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    # Not in RFC 8628 (which allows extra fields): tells a client how the code is approved.
    # "oidc": approved by signing in with one of the server's OpenID providers.
    identity_provider: Literal["local", "github", "oidc"]


class DeviceDecisionRequest(BaseModel):
    """Approve or deny a pending local login by the code its terminal shows."""

    model_config = ConfigDict(extra="forbid")

    user_code: str = Field(min_length=1, max_length=32)


class DeviceTokenRequest(BaseModel):
    """Poll for the tokens of a device login."""

    model_config = ConfigDict(extra="forbid")

    device_code: str = Field(min_length=1, max_length=512)


class RefreshRequest(BaseModel):
    """Trade a refresh token for a new token pair."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=512)


class UserPublic(BaseModel):
    """A user as the API shows them."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None
    provider: str
    created_at: datetime


class TokenResponse(BaseModel):
    """A new access and refresh token pair."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a credential
    expires_in: int
    user: UserPublic


class DeviceDecision(BaseModel):
    """What became of a pending login: approved for `user`, or denied."""

    user_code: str
    approved: bool
    user: UserPublic | None = None


class LogoutResponse(BaseModel):
    """Result of a logout."""

    logged_out: bool


MAX_TOKEN_SECONDS = 366 * 86_400
DEFAULT_TOKEN_SECONDS = 90 * 86_400


class ServiceTokenCreate(BaseModel):
    """Create a service token for an environment."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=RESOURCE_NAME)
    role: Literal["viewer", "editor"]
    expires_in: int = Field(default=DEFAULT_TOKEN_SECONDS, ge=60, le=MAX_TOKEN_SECONDS)


class ServiceTokenPublic(BaseModel):
    """A service token without its secret part."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: str
    environment_id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    # Set for a token a workload got by exchanging its platform's OIDC token: the trust
    # that admitted it and the platform's subject (e.g. repo:acme/app:ref:refs/heads/main).
    workload_trust_id: uuid.UUID | None = None
    subject: str | None = None


class ServiceTokenCreated(ServiceTokenPublic):
    """A new service token, with its secret shown this once."""

    token: str


class WhoAmI(BaseModel):
    """Who the bearer token belongs to: a user, or a service token and its environment."""

    type: Literal["user", "service_token"]
    user: UserPublic | None = None
    token: ServiceTokenPublic | None = None


class ProviderPublic(BaseModel):
    """An OpenID provider people can sign in with, as sign-in pages list it."""

    name: str
    display_name: str
    login_url: str


class LoginSessionPublic(BaseModel):
    """One of the caller's sessions: where it started and until when it works."""

    id: uuid.UUID
    identity_provider: str
    client_address: str | None
    created_at: datetime
    expires_at: datetime
    last_refreshed_at: datetime | None
    current: bool  # the session of the request that lists them


class BrowserSession(BaseModel):
    """The caller's browser session: who, and the CSRF token its changes must send."""

    user: UserPublic
    csrf_token: str | None  # None: the caller used a bearer token, which needs none
