"""Provider configurations: config in the clear, credentials sealed with the provider key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey, utcnow


class ProviderConfig(UUIDPrimaryKey, CreatedAt, Base):
    """One sync target configured for an environment."""

    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("environment_id", "provider", name="uq_provider_per_env"),)

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    credentials_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
