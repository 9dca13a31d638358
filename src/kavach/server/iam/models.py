"""Tables for users, the resource tree and user groups."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey, utcnow


class User(UUIDPrimaryKey, CreatedAt, Base):
    """A person who signs in through an identity provider."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id", name="uq_users_provider_identity"),
    )

    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_id: Mapped[str] = mapped_column(String(255), nullable=False)
    login: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255))
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Organization(UUIDPrimaryKey, CreatedAt, Base):
    """The top of the tree: a team or company."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class SecretGroup(UUIDPrimaryKey, CreatedAt, Base):
    """A set of related environments inside an organization, e.g. one application."""

    __tablename__ = "secret_groups"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_secret_groups_name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class Environment(UUIDPrimaryKey, CreatedAt, Base):
    """One deployment target of a secret group, e.g. dev or prod."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("secret_group_id", "name", name="uq_environments_name"),)

    secret_group_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("secret_groups.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class UserGroup(UUIDPrimaryKey, CreatedAt, Base):
    """A named set of users in an organization; roles granted to it apply to every member."""

    __tablename__ = "user_groups"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_user_groups_name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))


class UserGroupMember(Base):
    """Membership of a user in a user group."""

    __tablename__ = "user_group_members"

    user_group_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # None: added by a person. "oidc:NAME": brought by that provider's group mapping, which
    # removes it again at a sign-in whose groups no longer map here.
    source: Mapped[str | None] = mapped_column(String(32))


class UserIdentity(UUIDPrimaryKey, CreatedAt, Base):
    """Another provider's identity an administrator linked to an existing user."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_user_identities_subject"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
