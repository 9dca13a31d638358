"""Request and response models for organizations, secret groups, environments, user groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kavach.server.text_rules import NUL_FREE, RESOURCE_NAME

Name = Annotated[str, StringConstraints(pattern=RESOURCE_NAME)]
Description = Annotated[str, StringConstraints(max_length=500, pattern=NUL_FREE)]


class ResourceCreate(BaseModel):
    """Create an organization, secret group or environment."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None


class ResourceUpdate(BaseModel):
    """Rename or describe a resource; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None


class UserGroupCreate(ResourceCreate):
    """Create a user group in an organization."""

    organization_id: uuid.UUID


class OrganizationPublic(BaseModel):
    """An organization and the caller's role on it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    role: str | None = None


class SecretGroupPublic(OrganizationPublic):
    """A secret group and the caller's role on it."""

    organization_id: uuid.UUID


class EnvironmentPublic(OrganizationPublic):
    """An environment and the caller's role on it."""

    secret_group_id: uuid.UUID
    organization_id: uuid.UUID


class UserGroupPublic(BaseModel):
    """A user group."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class UserGroupMemberPublic(BaseModel):
    """A member of a user group."""

    user_id: uuid.UUID
    login: str
    name: str | None
    added_at: datetime


class MemberChange(BaseModel):
    """Name a user (by login) to add to or remove from a user group."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=255, pattern=NUL_FREE)


class Deleted(BaseModel):
    """Result of a delete."""

    id: uuid.UUID
    deleted: bool = True


class Removed(BaseModel):
    """Result of removing a member or binding."""

    removed: bool = True
