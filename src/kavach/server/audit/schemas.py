"""Response models of the audit API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kavach.server.audit.integrity import ChainStatus
from kavach.server.audit.models import AuditEvent


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
    # chained: on its organization's chain, which verification checks; legacy: recorded
    # before chaining began; unchained: neither, so added or taken out of the chain since.
    chain_status: ChainStatus = "unchained"

    @classmethod
    def of(cls, event: AuditEvent, status: ChainStatus) -> AuditEventPublic:
        """Show a stored event with its place relative to its chain."""
        return cls.model_validate(event).model_copy(update={"chain_status": status})


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
