"""Request and response models of webhooks and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from kavach.server.webhooks.targets import MAX_URL_CHARS, check_url

# The audit actions a webhook can receive, by the names its events carry.
EVENT_TYPES = ("secret.commit", "secret.rollback", "secret.sync", "member.grant", "member.revoke")
PING = "ping"  # a test delivery (POST /webhooks/{id}/test), sent whatever the filter
EventType = Literal[
    "secret.commit", "secret.rollback", "secret.sync", "member.grant", "member.revoke"
]
Format = Literal["kavach", "slack"]


class WebhookCreate(BaseModel):
    """Where to send events, which ones, and in which shape."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    # None: every event type, including ones added later.
    events: list[EventType] | None = Field(default=None, min_length=1)
    format: Format = "kavach"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))


class WebhookPublic(BaseModel):
    """A webhook as the API shows it: never its signing secret, its URL partly hidden."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    environment_id: uuid.UUID | None
    url: str = Field(validation_alias=AliasChoices("url_shown", "url"))
    format: str
    events: list[str] | None
    created_by: uuid.UUID | None
    created_at: datetime


class WebhookCreated(WebhookPublic):
    """A new webhook, with its signing secret: shown this once, never again."""

    secret: str


class DeliveryPublic(BaseModel):
    """One delivery of an event to a webhook, and how its attempts went."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    webhook_id: uuid.UUID
    event_type: str
    audit_event_id: int | None
    status: str
    attempts: int
    response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
