"""The table of workload trusts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UUIDPrimaryKey


class WorkloadTrust(UUIDPrimaryKey, CreatedAt, Base):
    """Which platform tokens may sign in to one environment, and with which role."""

    __tablename__ = "workload_trusts"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_workload_trusts_name"),)

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    issuer: Mapped[str] = mapped_column(String(512), nullable=False)
    audience: Mapped[str] = mapped_column(String(512), nullable=False)
    # Claim name -> an exact value or a glob pattern; every one must match.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_ttl_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
