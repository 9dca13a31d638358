"""`Requirement`: the one place a route declares the action it needs, checked per request."""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Path, Query, Request
from sqlalchemy import select

from kavach.server.deps import (
    Principal,
    PrincipalDep,
    SessionDep,
    TokenPrincipal,
    UserPrincipal,
    runtime_of,
)
from kavach.server.errors import Forbidden, NotFound, ValidationFailed
from kavach.server.iam.models import Environment, Organization, SecretGroup, UserGroup
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.cache import Grant
from kavach.server.rbac.policy import ROLES, TOKEN_ACTIONS, role_allows
from kavach.server.rbac.service import Scope
from kavach.server.runtime import Runtime

ResourceKind = Literal["organization", "secret_group", "environment", "user_group"]
Resource = Organization | SecretGroup | Environment | UserGroup
# What a role held only beneath an organization or secret group allows there: seeing the
# node itself (by id and by name) and listing its children, each listing showing only the
# children the caller holds a role on or under. None of the node's own permissions: no
# bindings, no audit trail, no user groups, nothing to change.
_SEEN_FROM_BELOW: dict[str, frozenset[str]] = {
    "organization": frozenset({"org.read", "group.read"}),
    "secret_group": frozenset({"group.read", "env.read"}),
}
_LABELS = {
    "organization": "organization",
    "secret_group": "secret group",
    "environment": "environment",
    "user_group": "user group",
}


@dataclass(frozen=True)
class Access:
    """What an authorized request may act on: the caller, the resource and the caller's role."""

    principal: Principal
    scope: Scope | None = None
    role: str | None = None
    resource: Resource | None = None

    @property
    def environment_id(self) -> uuid.UUID:
        """Return the environment a route on an environment acts on."""
        if self.scope is None or self.scope.environment_id is None:
            raise NotFound("environment not found")
        return self.scope.environment_id

    @property
    def user(self) -> UserPrincipal:
        """Return the caller as a user (routes that allow tokens must not call this)."""
        if not isinstance(self.principal, UserPrincipal):
            raise Forbidden("service tokens may not do this")
        return self.principal


def minimum_role(action: str) -> str:
    """Return the weakest role that grants an action."""
    return next((role for role in ROLES if role_allows(role, action)), "owner")


async def load_resource(
    session: SessionDep, kind: ResourceKind, resource_id: uuid.UUID
) -> tuple[Resource, Scope]:
    """Load a resource by id with its place in the tree, or raise NotFound."""
    found: Resource | None
    if kind == "environment":
        row = (
            await session.execute(
                select(Environment, SecretGroup.organization_id)
                .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
                .where(Environment.id == resource_id)
            )
        ).first()
        if row is not None:
            env, org_id = row
            return env, Scope(org_id, env.secret_group_id, env.id)
        found = None
    elif kind == "secret_group":
        found = await session.get(SecretGroup, resource_id)
        if isinstance(found, SecretGroup):
            return found, Scope(found.organization_id, found.id)
    elif kind == "user_group":
        found = await session.get(UserGroup, resource_id)
        if isinstance(found, UserGroup):
            return found, Scope(found.organization_id)
    else:
        found = await session.get(Organization, resource_id)
        if isinstance(found, Organization):
            return found, Scope(found.id)
    raise NotFound(f"{_LABELS[kind]} not found")


async def authorize(
    session: SessionDep, principal: Principal, *, scope: Scope, action: str, kind: str
) -> str | None:
    """Return the caller's role on the scope if it grants the action; else 404 or 403."""
    label = _LABELS.get(kind, kind)
    if isinstance(principal, TokenPrincipal):
        token = principal.token
        if scope.environment_id != token.environment_id or kind != "environment":
            raise NotFound(f"{label} not found")
        if action not in TOKEN_ACTIONS or not role_allows(token.role, action):
            raise Forbidden(f"this service token may not {action} (role {token.role})")
        return token.role
    user_id = principal.user.id
    role = await rbac_service.effective_role(session, user_id=user_id, scope=scope)
    if role is not None and role_allows(role, action):
        return role
    if role is None:
        seen_from_below = _SEEN_FROM_BELOW.get(kind)
        if seen_from_below is None or not await rbac_service.sees_below(
            session, user_id=user_id, scope=scope
        ):
            raise NotFound(f"{label} not found")
        if action in seen_from_below:
            return None
    raise Forbidden(f"this needs permission {action!r} ({minimum_role(action)} or higher)")


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


async def count_api_request(request: Request, principal: Principal) -> None:
    """Count the request against the caller's API rate limit, once however it is served."""
    # The scope's state dict itself: request.state builds a wrapper on every access.
    state = request.scope.setdefault("state", {})
    if not state.get("api_request_counted", False):
        state["api_request_counted"] = True
        await runtime_of(request).limiter.hit("api", limit_key(principal))


class Requirement:
    """A route's declared action, and the resource (from path, query or body) it applies to."""

    def __init__(
        self,
        action: str,
        resource: ResourceKind | None = None,
        *,
        param: str = "id",
        source: Literal["path", "query", "body"] = "path",
        by_name: bool = False,
        cached: bool = False,
    ) -> None:
        if cached and (resource != "environment" or source != "path"):
            raise ValueError("only checks on an environment named in the path are cached")
        self.action = action
        # A cached check hands the route no resource object (Access.resource is None).
        self.cached = cached
        self.resource = resource
        self.param = param
        self.source = source
        self.by_name = by_name
        # FastAPI reads a dependency's parameters from its signature: declare the one this
        # requirement reads, so the API description names it.
        self.__signature__ = self._signature()

    def _signature(self) -> inspect.Signature:
        call = inspect.signature(type(self).__call__, eval_str=True)
        params = [
            p
            for p in list(call.parameters.values())[1:]  # without self
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        if self.resource is not None and self.source != "body":
            where = Path if self.source == "path" else Query
            # Not a UUID type: a malformed id in a path is a 404, like an unknown one.
            shape = None if self.by_name else {"format": "uuid"}
            declared = Annotated[str, where(json_schema_extra=shape)]
            params.append(
                inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, annotation=declared)
            )
        return call.replace(parameters=params)

    def __repr__(self) -> str:
        return f"Requirement({self.action!r}, {self.resource!r})"

    async def _resource_id(self, request: Request) -> uuid.UUID:
        if self.source == "path":
            raw = request.path_params.get(self.param)
        elif self.source == "query":
            raw = request.query_params.get(self.param)
        else:
            try:
                body = await request.json()
            except ValueError:
                raise ValidationFailed("the request body is not valid JSON") from None
            raw = body.get(self.param) if isinstance(body, dict) else None
        if raw is None:
            raise ValidationFailed(f"{self.param} is required")
        try:
            return uuid.UUID(str(raw))
        except ValueError:
            if self.source == "path":
                raise NotFound(f"{_LABELS[self.resource or 'organization']} not found") from None
            raise ValidationFailed(f"{self.param} must be an id") from None

    async def __call__(
        self,
        request: Request,
        principal: PrincipalDep,
        session: SessionDep,
        **_declared: str,
    ) -> Access:
        """Check the action for this request; the route receives what it may act on."""
        runtime = runtime_of(request)
        await count_api_request(request, principal)
        if self.resource is None:
            if not isinstance(principal, UserPrincipal):
                raise Forbidden("service tokens may not do this")
            return Access(principal=principal)
        if self.by_name:
            org = await session.scalar(
                select(Organization).where(Organization.name == request.path_params[self.param])
            )
            if org is None:
                raise NotFound("organization not found")
            resource_id = org.id
        else:
            resource_id = await self._resource_id(request)
        if self.cached:
            return await self._cached_check(session, runtime, principal, resource_id)
        resource, scope = await load_resource(session, self.resource, resource_id)
        role = await authorize(
            session, principal, scope=scope, action=self.action, kind=self.resource
        )
        return Access(principal=principal, scope=scope, role=role, resource=resource)

    async def _cached_check(
        self, session: SessionDep, runtime: Runtime, principal: Principal, resource_id: uuid.UUID
    ) -> Access:
        """Answer from the access cache, or check in the database and cache a grant."""
        cache, caller = runtime.access_cache, caller_key(principal)
        epoch = await cache.sync(session)
        grant = cache.grant(epoch, caller, self.action, resource_id)
        if grant is None:
            _resource, scope = await load_resource(session, "environment", resource_id)
            role = await authorize(
                session, principal, scope=scope, action=self.action, kind="environment"
            )
            if role is None:  # allowed without a role here: nothing to cache
                return Access(principal=principal, scope=scope)
            grant = Grant(scope=scope, role=role)
            cache.remember_grant(epoch, caller, self.action, resource_id, grant)
        return Access(principal=principal, scope=grant.scope, role=grant.role)
