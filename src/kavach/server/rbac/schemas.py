"""Request and response models for role bindings (members)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kavach.server.text_rules import NUL_FREE

Role = Literal["viewer", "editor", "admin", "owner"]


class Subject(BaseModel):
    """Exactly one of a user (by login) or a user group (by name or id)."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, min_length=1, max_length=255, pattern=NUL_FREE)
    user_group: str | None = Field(default=None, min_length=1, max_length=255, pattern=NUL_FREE)

    @model_validator(mode="after")
    def _exactly_one(self) -> Subject:
        if (self.user is None) == (self.user_group is None):
            raise ValueError("give exactly one of user or user_group")
        return self


class Grant(Subject):
    """Give a subject a role on a resource (or change the role it has)."""

    role: Role


class Revoke(Subject):
    """Take a subject's role on a resource away; a role, if given, must match."""

    role: Role | None = None


class UserRef(BaseModel):
    """A user, briefly."""

    id: uuid.UUID
    login: str


class UserGroupRef(BaseModel):
    """A user group, briefly."""

    id: uuid.UUID
    name: str


class BindingPublic(BaseModel):
    """A role held on a resource, directly or inherited from an ancestor."""

    subject_type: Literal["user", "user_group"]
    user: UserRef | None
    user_group: UserGroupRef | None
    role: str
    resource_type: str
    resource_id: uuid.UUID
    resource_name: str
    inherited: bool
