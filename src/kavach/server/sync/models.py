"""Sync runs, their per-secret results, and the ledger of what Kavach wrote where."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey, utcnow


class SyncRun(UUIDPrimaryKey, CreatedAt, Base):
    """One sync of an environment version to a target: its plan, outcome and who ran it."""

    __tablename__ = "sync_runs"

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    target_key: Mapped[str] = mapped_column(String(512), nullable=False)
    version_id: Mapped[str | None] = mapped_column(String(8))
    # What was pushed: the version and those of the environments it refers to (see
    # secrets.revisions); a target is out of date when the environment's revision differs.
    revision: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    prune: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    adopt: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_label: Mapped[str | None] = mapped_column(String(255))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncRunItem(Base):
    """What a run planned and did for one secret (never its value)."""

    __tablename__ = "sync_run_items"

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True
    )
    remote_name: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class SyncLedgerEntry(Base):
    """A remote secret Kavach wrote for an environment, with a keyed hash of the value."""

    __tablename__ = "sync_ledger"

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    target_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    remote_name: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    value_hmac: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
