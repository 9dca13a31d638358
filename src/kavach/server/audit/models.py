"""The append-only audit trail, hash-chained per organization (see audit/chain.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who did what to which resource, when, from where, and how it ended."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        # The listings: newest first within a scope.
        Index("ix_audit_events_organization", "organization_id", "id"),
        Index("ix_audit_events_secret_group", "secret_group_id", "id"),
        Index("ix_audit_events_environment", "environment_id", "id"),
        # One event per place in a chain: two appends can never fork it.
        UniqueConstraint("chain", "chain_seq", name="uq_audit_events_chain_seq"),
    )

    id: Mapped[int] = mapped_column(
        # INTEGER on SQLite so the key is the rowid and auto-increments.
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    actor_label: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    client_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # Where in the tree the event happened, kept after the resource is deleted (no foreign
    # keys): the audit API shows a scope's events by these.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    secret_group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    environment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The chain: the organization's id, or "server" for events outside any organization.
    # All four are NULL only on events recorded before chaining existed.
    chain: Mapped[str | None] = mapped_column(String(40))
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    # Which audit key computed `hash` (a non-secret id), so a changed key is told apart
    # from a changed event.
    key_id: Mapped[str | None] = mapped_column(String(16))
