"""Who acts, from where, on what, with which role: the value types every layer shares.

A leaf: it imports only models and errors, so the gate, the services and the routes can all
depend on it without depending on each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from kavach.server.auth.models import LoginSession, ServiceToken
from kavach.server.errors import Forbidden, NotFound
from kavach.server.iam.models import Environment, Organization, SecretGroup, User, UserGroup
from kavach.server.webhooks.models import Webhook

ORGANIZATION = "organization"
SECRET_GROUP = "secret_group"  # noqa: S105 - a resource type, not a credential
ENVIRONMENT = "environment"
# What a route may name as the resource it acts on, and how errors call each kind.
ResourceKind = Literal["organization", "secret_group", "environment", "user_group", "webhook"]
LABELS = {
    "organization": "organization",
    "secret_group": "secret group",
    "environment": "environment",
    "user_group": "user group",
    "webhook": "webhook",
}


@dataclass(frozen=True)
class Actor:
    """Who acted: a user, a service token, the server itself or an anonymous caller."""

    type: str
    id: uuid.UUID | None = None
    label: str | None = None


ANONYMOUS = Actor(type="anonymous")
SYSTEM = Actor(type="system")


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, for the audit trail."""

    client_address: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Scope:
    """Where a resource sits in the tree: its organization, group and environment ids."""

    organization_id: uuid.UUID
    secret_group_id: uuid.UUID | None = None
    environment_id: uuid.UUID | None = None

    @property
    def resource_type(self) -> str:
        """Name the most specific level of this scope."""
        if self.environment_id is not None:
            return ENVIRONMENT
        return SECRET_GROUP if self.secret_group_id is not None else ORGANIZATION

    @property
    def resource_id(self) -> uuid.UUID:
        """Return the id of the most specific level."""
        return self.environment_id or self.secret_group_id or self.organization_id

    def chain(self) -> list[tuple[str, uuid.UUID]]:
        """Return (type, id) from the organization down to this scope."""
        levels = [(ORGANIZATION, self.organization_id)]
        if self.secret_group_id is not None:
            levels.append((SECRET_GROUP, self.secret_group_id))
        if self.environment_id is not None:
            levels.append((ENVIRONMENT, self.environment_id))
        return levels


@dataclass(frozen=True)
class UserPrincipal:
    """A signed-in user and the login session their token belongs to."""

    user: User
    login_session: LoginSession

    @property
    def actor(self) -> Actor:
        """Describe the caller for the audit trail."""
        return Actor(type="user", id=self.user.id, label=self.user.login)


@dataclass(frozen=True)
class TokenPrincipal:
    """A service token acting within its one environment."""

    token: ServiceToken

    @property
    def actor(self) -> Actor:
        """Describe the caller for the audit trail."""
        return Actor(type="service_token", id=self.token.id, label=self.token.name)


Principal = UserPrincipal | TokenPrincipal
Resource = Organization | SecretGroup | Environment | UserGroup | Webhook


@dataclass(frozen=True)
class Grant:
    """A positive decision the gate may remember: where the resource sits, the caller's role."""

    scope: Scope
    role: str


@dataclass(frozen=True)
class Access:
    """What an admitted request may act on: the caller, the resource and the caller's role."""

    principal: Principal
    scope: Scope | None = None
    role: str | None = None
    resource: Resource | None = None

    @property
    def environment_id(self) -> uuid.UUID:
        """Return the environment a request on an environment acts on."""
        if self.scope is None or self.scope.environment_id is None:
            raise NotFound("environment not found")
        return self.scope.environment_id

    @property
    def user(self) -> UserPrincipal:
        """Return the caller as a user (routes that allow tokens must not call this)."""
        if not isinstance(self.principal, UserPrincipal):
            raise Forbidden("service tokens may not do this")
        return self.principal


def caller_key(principal: Principal) -> str:
    """Name whose roles a decision depends on: the user, or the service token."""
    if isinstance(principal, TokenPrincipal):
        return f"token:{principal.token.id}"
    return f"user:{principal.user.id}"


def limit_key(principal: Principal) -> str:
    """Count API requests per login session or per service token."""
    if isinstance(principal, TokenPrincipal):
        return f"token:{principal.token.id}"
    return f"session:{principal.login_session.id}"
