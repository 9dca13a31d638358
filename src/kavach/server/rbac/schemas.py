"""Request and response models for role bindings (members)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from kavach.server.text_rules import NUL_FREE

Role = Literal["viewer", "editor", "admin", "owner"]
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NUL_FREE)]


class _ExactlyOne(BaseModel):
    """A body naming who it is about by exactly one of its `ONE_OF` fields."""

    model_config = ConfigDict(extra="forbid")
    ONE_OF: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _exactly_one(self) -> _ExactlyOne:
        if sum(getattr(self, name) is not None for name in self.ONE_OF) != 1:
            *first, last = self.ONE_OF
            raise ValueError(f"give exactly one of {', '.join(first)} or {last}")
        return self


class Subject(_ExactlyOne):
    """Exactly one of a user (by login) or a user group (by name or id)."""

    ONE_OF: ClassVar[tuple[str, ...]] = ("user", "user_group")

    user: Name | None = None
    user_group: Name | None = None


class Grant(Subject):
    """Give a subject a role on a resource (or change the role it has).

    A login nobody has signed in with yet, or an e-mail address, gets a pending grant: it
    becomes a role when that person signs in.
    """

    ONE_OF: ClassVar[tuple[str, ...]] = ("user", "user_group", "email")

    email: EmailStr | None = None
    role: Role


class Revoke(Subject):
    """Take a subject's role on a resource away; a role, if given, must match."""

    role: Role | None = None


class Invitee(_ExactlyOne):
    """Exactly one of a login or an e-mail address a pending grant names; a role must match."""

    ONE_OF: ClassVar[tuple[str, ...]] = ("user", "email")

    user: Name | None = None
    email: EmailStr | None = None
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


class PendingGrantPublic(BaseModel):
    """A role granted to someone who has not signed in yet, applied when they do."""

    id: uuid.UUID
    pending: Literal[True] = True
    login: str | None
    email: str | None
    role: str
    resource_type: str
    resource_id: uuid.UUID
    resource_name: str
    granted_by: UserRef | None
    created_at: datetime
