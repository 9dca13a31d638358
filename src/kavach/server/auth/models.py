"""Tables for device authorizations, login sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey


class DeviceAuthorization(UUIDPrimaryKey, CreatedAt, Base):
    """One RFC 8628 device authorization request of the local identity provider."""

    __tablename__ = "device_authorizations"

    device_code_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_code: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    interval: Mapped[int] = mapped_column(Integer, nullable=False)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_from: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE")
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who vouched for the user it was approved for: an OpenID provider ("oidc:NAME"), or
    # none (approved by the user's own session, or by the server's operator).
    identity_provider: Mapped[str | None] = mapped_column(String(32))


class LoginSession(UUIDPrimaryKey, CreatedAt, Base):
    """A signed-in CLI or client; revoking it ends every token issued under it."""

    __tablename__ = "login_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    identity_provider: Mapped[str] = mapped_column(String(32), nullable=False)
    client_address: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(UUIDPrimaryKey, CreatedAt, Base):
    """One refresh token of a session, stored as a hash; used at most once."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("login_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServiceToken(UUIDPrimaryKey, CreatedAt, Base):
    """A machine identity for CI: one environment, one role, until it expires or is revoked."""

    __tablename__ = "service_tokens"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_service_tokens_name"),)

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A token a workload got by exchanging its platform's OIDC token: the trust that
    # admitted it (deleting the trust deletes its tokens) and the platform's subject.
    workload_trust_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    subject: Mapped[str | None] = mapped_column(String(255))
