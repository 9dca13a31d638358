"""Response models of the audit API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventPublic(BaseModel):
    """One audit event as the API shows it (events never hold secret values)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None
    actor_label: str | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    organization_id: uuid.UUID | None
    secret_group_id: uuid.UUID | None
    environment_id: uuid.UUID | None
    client_address: str | None
    request_id: str | None
    details: dict[str, Any]
    chain: str | None
    seq: int | None = Field(validation_alias="chain_seq")
    hash: str | None


class AuditPage(BaseModel):
    """A page of events, newest first; pass `next_before` as `before` for the next page."""

    events: list[AuditEventPublic]
    next_before: int | None


class ChainBreak(BaseModel):
    """Where a chain stops holding, and why."""

    seq: int | None
    event_id: int | None
    reason: str
    message: str


class AuditVerification(BaseModel):
    """The result of recomputing an organization's chain."""

    organization_id: uuid.UUID
    intact: bool
    events: int
    legacy_events: int
    head_seq: int | None
    head_hash: str | None
    broken: ChainBreak | None
