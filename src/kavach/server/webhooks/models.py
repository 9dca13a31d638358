"""The tables of webhooks: the endpoints, each chain's cursor, and the deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Webhook(UUIDPrimaryKey, CreatedAt, Base):
    """An endpoint that receives the events of an organization, or of one environment."""

    __tablename__ = "webhooks"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Set: only this environment's events; None: everything in the organization.
    environment_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    # The URL as shown (its last path segment and query hidden: a Slack URL is a credential).
    url_shown: Mapped[str] = mapped_column(String(2048), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    # The event types it receives; None: every type.
    events: Mapped[list[str] | None] = mapped_column(JSON)
    # The URL and the signing secret, sealed with the provider-credential key (see targets).
    sealed_target: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The place in the organization's audit chain of the webhook's own creation: only
    # events after it are delivered.
    after_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class WebhookCursor(Base):
    """How far the dispatcher has read an organization's audit chain (its chain_seq)."""

    __tablename__ = "webhook_cursors"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)


class WebhookDelivery(UUIDPrimaryKey, CreatedAt, Base):
    """One event for one webhook: what is sent, and how its attempts went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # Two dispatchers reading the same events never make the same delivery twice.
        UniqueConstraint("webhook_id", "audit_event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_listing", "webhook_id", "created_at", "id"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    )
    # The audit event delivered (no foreign key, as the audit trail's own scope columns);
    # None for a test ping.
    audit_event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # When it is next due (or, while an attempt is under way, when that claim lapses).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
