"""The table of OpenID Connect sign-ins in progress."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey


class OidcLogin(UUIDPrimaryKey, CreatedAt, Base):
    """One trip through a provider: its state (stored hashed), nonce and PKCE verifier.

    Any server replica may receive the provider's answer, so the trip is kept here; it is
    used at most once, and only before it expires.
    """

    __tablename__ = "oidc_logins"

    state_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    nonce: Mapped[str] = mapped_column(String(128), nullable=False)
    code_verifier: Mapped[str] = mapped_column(String(128), nullable=False)
    # "browser": a cookie session at the end; "device": approve this device authorization.
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    device_authorization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("device_authorizations.id", ondelete="CASCADE")
    )
    return_to: Mapped[str | None] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
