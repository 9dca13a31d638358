"""Request and response models for secrets, versions, diffs and history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kavach.formats.limits import MAX_MESSAGE_CHARS
from kavach.server.text_rules import NUL_FREE, REVISION, SECRET_NAME, VERSION_ID, VERSION_REF

SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME)]
VersionId = Annotated[str, StringConstraints(pattern=VERSION_ID)]
# A version by id, by number (`3` or `v3`), or from the newest (`latest`, `latest~1`).
VersionRef = Annotated[str, StringConstraints(pattern=VERSION_REF)]
Revision = Annotated[str, StringConstraints(pattern=REVISION)]
CommitMessage = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=NUL_FREE)
]


class CommitRequest(BaseModel):
    """A change on top of the latest version (set/unset) or a whole snapshot (replace)."""

    model_config = ConfigDict(extra="forbid")

    message: CommitMessage
    set: dict[SecretName, str] = Field(default_factory=dict)
    unset: list[SecretName] = Field(default_factory=list)
    secrets: dict[SecretName, str] | None = None
    replace: bool = False
    parent_version: VersionId | None = None
    # Remove secrets other environments' values refer to (their reads then fail).
    force: bool = False

    @model_validator(mode="after")
    def _one_shape(self) -> CommitRequest:
        if self.replace != (self.secrets is not None):
            raise ValueError("send `secrets` together with `replace: true` for a whole snapshot")
        if self.replace and (self.set or self.unset):
            raise ValueError("a snapshot (replace) cannot be combined with set or unset")
        if not self.replace and not (self.set or self.unset):
            raise ValueError("nothing to change: give set, unset, or secrets with replace")
        if set(self.set) & set(self.unset):
            raise ValueError("a name cannot be both set and unset")
        return self


class RollbackRequest(BaseModel):
    """Make a new version equal to an older one."""

    model_config = ConfigDict(extra="forbid")

    version_id: VersionRef
    commit_message: CommitMessage


class Author(BaseModel):
    """Who made a version."""

    type: str
    id: uuid.UUID | None
    label: str | None


class SourceVersion(BaseModel):
    """Another environment references were resolved from, and the version read there."""

    environment_id: uuid.UUID
    label: str  # secret group/environment
    seq: int | None  # None: it has no version


class VersionSummary(BaseModel):
    """A version without its values."""

    id: str
    seq: int
    parent_id: str | None
    message: str
    author: Author
    secret_count: int
    created_at: datetime
    rollback_of: str | None
    # The other environments its references reached, at their versions when committed.
    sources: list[SourceVersion] = Field(default_factory=list)


class CommittedVersion(VersionSummary):
    """A commit's new version, and what a forced removal left broken elsewhere."""

    # `group/env.NAME -> REMOVED`: values of other environments that no longer resolve.
    broken_references: list[str] = Field(default_factory=list)


class VersionDetail(VersionSummary):
    """A version with its values."""

    secrets: dict[str, str]


class Changes(BaseModel):
    """The change feed's answer: the environment's revision and whether it differs."""

    revision: str  # opaque: compare it for equality, send it back as `after`
    changed: bool
    latest: VersionSummary | None


class SecretsResponse(BaseModel):
    """An environment's secrets at a version (the latest unless asked)."""

    version: VersionSummary | None
    secrets: dict[str, str]
    # The other environments the values' references were resolved from (none when raw).
    sources: list[SourceVersion] = Field(default_factory=list)


class SecretNames(BaseModel):
    """The names in an environment's latest version, without values."""

    version: VersionSummary | None
    names: list[str]


class Modified(BaseModel):
    """A value that changed between two versions."""

    old: str
    new: str


class DiffResponse(BaseModel):
    """What changed from one version to another; values only when revealed."""

    from_version: VersionSummary | None
    to_version: VersionSummary
    added: list[str]
    removed: list[str]
    modified: list[str]
    unchanged: int
    values: dict[str, Modified | str] | None = None


class HistoryEntry(BaseModel):
    """One change to one secret."""

    version: VersionSummary
    change: Literal["added", "modified", "removed"]
    value: str | None = None
