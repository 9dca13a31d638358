"""Tables for data keys, secret versions and the secrets in each version."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kavach.server.db.base import Base, CreatedAt, UTCDateTime, UUIDPrimaryKey


class DataKey(UUIDPrimaryKey, CreatedAt, Base):
    """A per-environment data key, stored only wrapped by a key-encryption key."""

    __tablename__ = "data_keys"

    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecretVersion(CreatedAt, Base):
    """An immutable full snapshot of an environment's secrets, with a commit message."""

    __tablename__ = "secret_versions"
    # The unique constraint's index also serves "latest version of an environment".
    __table_args__ = (UniqueConstraint("environment_id", "seq", name="uq_secret_versions_seq"),)

    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(8))
    author_type: Mapped[str] = mapped_column(String(16), nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    author_label: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(String(500), nullable=False)
    secret_count: Mapped[int] = mapped_column(Integer, nullable=False)
    rollback_of: Mapped[str | None] = mapped_column(String(8))
    # The data key every secret of the version is sealed with: one per version, so a commit
    # checks one reference, not one per secret. None only for versions from before 0010
    # that hold no secrets.
    data_key_id: Mapped[uuid.UUID | None] = mapped_column(
        # Deferred: deleting an environment cascades to its data keys and its versions in
        # one statement, in no guaranteed order; the check waits until commit.
        Uuid,
        ForeignKey("data_keys.id", deferrable=True, initially="DEFERRED"),
        index=True,
    )
    # Where the version's references lead, as JSON (secrets.linking.Links): for each secret
    # holding one, the secrets it pulls from, and the versions of other environments they
    # were at when this version was committed. None when no value holds `${`, and on every
    # version from before references existed, whose values are read literally.
    links: Mapped[str | None] = mapped_column(Text)


class ReferenceEdge(Base):
    """An environment whose values (may) refer to a secret of another environment.

    Written before the commit that makes the reference, never at commit time and never
    pruned, so it may hold edges no latest version has: it only tells a removal which
    environments to check.
    """

    __tablename__ = "reference_edges"
    __table_args__ = (Index("ix_reference_edges_target", "target_environment_id", "target_name"),)

    source_environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    target_environment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    target_name: Mapped[str] = mapped_column(String(256), primary_key=True)


class Secret(Base):
    """One secret of one version, sealed with the version's data key."""

    __tablename__ = "secrets"

    version_id: Mapped[str] = mapped_column(
        String(8), ForeignKey("secret_versions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    value_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
