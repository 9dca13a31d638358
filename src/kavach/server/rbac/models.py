"""Role bindings: the source of truth for who holds which role where."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UUIDPrimaryKey


class RoleBinding(UUIDPrimaryKey, CreatedAt, Base):
    """A role held by a user or a user group on an organization, secret group or environment."""

    __tablename__ = "role_bindings"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (user_group_id IS NULL)", name="one_subject"),
        # A resource's bindings in the members listing's order (role, then id).
        Index("ix_role_bindings_resource", "resource_type", "resource_id", "role", "id"),
        Index("uq_role_bindings_user", "resource_type", "resource_id", "user_id", unique=True),
        Index(
            "uq_role_bindings_user_group",
            "resource_type",
            "resource_id",
            "user_group_id",
            unique=True,
        ),
    )

    # The organization the resource lives in: deleting it removes its bindings with it.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    resource_type: Mapped[str] = mapped_column(String(16), nullable=False)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    user_group_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("user_groups.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class PendingGrant(UUIDPrimaryKey, CreatedAt, Base):
    """A role granted to a login or e-mail nobody has signed in with yet (an invite).

    It grants nothing until the person it names signs in: then it becomes their role
    binding, in the same transaction, and is removed (`rbac.pending`).
    """

    __tablename__ = "pending_grants"
    __table_args__ = (
        CheckConstraint("invitee_type IN ('login', 'email')", name="invitee_type"),
        # One per resource and invitee, in the pending listing's order.
        Index("uq_pending_grants_invitee", "resource_type", "resource_id", "invitee", unique=True),
        # What a sign-in looks up.
        Index("ix_pending_grants_by_invitee", "invitee"),
    )

    # The organization the resource lives in: deleting it removes its invites with it.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    resource_type: Mapped[str] = mapped_column(String(16), nullable=False)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    invitee_type: Mapped[str] = mapped_column(String(8), nullable=False)  # login or email
    # Lower-cased: logins and e-mail addresses are matched without case.
    invitee: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


class AccessEpoch(Base):
    """The one-row counter that every change ending or narrowing access moves (migration 0006)."""

    __tablename__ = "access_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)
