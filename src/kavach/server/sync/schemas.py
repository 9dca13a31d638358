"""Request and response models for sync runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kavach.server.secrets.schemas import Author, VersionRef
from kavach.server.text_rules import NUL_FREE


class SyncRequest(BaseModel):
    """Sync a version (the latest unless given) of an environment to one provider."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=32, pattern=NUL_FREE)
    version_id: VersionRef | None = None
    dry_run: bool = False
    prune: bool = False
    # Take over remote secrets with the same name that Kavach did not write.
    adopt: bool = False


class SyncItemPublic(BaseModel):
    """One secret's planned action and outcome (never its value)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    remote_name: str
    action: str
    status: str
    attempts: int
    error: str | None
    note: str | None


class SyncRunPublic(BaseModel):
    """A sync run: target, version, status, counts, who and when."""

    id: uuid.UUID
    provider: str
    target: str
    version_id: str | None
    status: str
    dry_run: bool
    prune: bool
    adopt: bool
    counts: dict[str, Any]
    actor: Author
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class SyncRunDetail(SyncRunPublic):
    """A sync run with its per-secret results."""

    items: list[SyncItemPublic]


class SyncTargetStatus(BaseModel):
    """Whether a provider's target holds what the environment resolves to now."""

    provider: str
    current_revision: str  # the environment's version and its sources', now
    synced_revision: str | None  # what the last sync pushed
    up_to_date: bool
    reason: str | None  # why not, in words
    last_run: SyncRunPublic | None
