"""The access gate: the one place a request's caller is authenticated and its access decided.

Every route reaches it: routes declared with dependencies through `get_principal` (deps)
and `Requirement` (rbac.deps), the secrets routes through their use cases. It alone
authenticates a bearer token, reads and fills the access cache, compares the access epoch,
records a service token's use and counts the API rate limit.

Invariants (docs/architecture.md says where a new rule goes):

- The access epoch (the one row of `access_epoch`) moves, by database triggers (migrations
  0006 and 0011), with every change that ends or narrows access: a role binding removed or
  lowered, a user group membership lost, a session or service token revoked or expired
  early, a resource deleted. Changes that only widen access leave it alone.
- Cached, per process: who a bearer token is (until the earliest of its expiries), and
  granted (caller, action, resource) decisions, each under the epoch it was made under.
  Never cached: refusals (a 403 or 404 always comes from the database), resources, and a
  service token whose use is due to be recorded.
- A cached answer is used only under the epoch it was made under. `admit` reads the epoch
  in the request's session before it decides. `admit_provisionally` reads nothing when the
  cache answers; its admission holds only once `confirm` finds the epoch read together with
  the data it guards (in one statement or transaction) to be the one it was made under, and
  otherwise `recheck` decides again in the database. A store that writes without first
  reading (PostgreSQL's commits at the known head) is handed `expected_epoch` instead, and
  has the database compare it under its locks.
- The API rate limit is counted once per request, however the request is admitted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.access import (
    Access,
    Grant,
    Principal,
    ResourceKind,
    TokenPrincipal,
    UserPrincipal,
    caller_key,
    limit_key,
)
from kavach.server.auth import service as auth_service
from kavach.server.auth.tokens import SERVICE_TOKEN_PREFIX, AccessTokens
from kavach.server.db.base import detached_copy, utcnow
from kavach.server.errors import Forbidden, InvalidToken, NotAuthenticated, NotFound
from kavach.server.ratelimit import RateLimiter
from kavach.server.rbac.cache import NO_EPOCH, AccessCache
from kavach.server.rbac.decide import authorize, authorize_token_reference, load_resource

# A request's state (the ASGI scope's): where the gate notes that it counted the request.
State = dict[str, Any]
_COUNTED = "api_request_counted"
Authenticated = tuple[Principal, datetime | None]  # the principal, and when it stops being valid


@dataclass(frozen=True)
class Ticket:
    """What a request asks the gate: its bearer token wants an action on one environment."""

    token: str | None
    action: str
    environment_id: uuid.UUID | None  # None: the path's id is malformed (a 404, as unknown)
    state: State


@dataclass(frozen=True)
class Admission:
    """An admitted request's access, and the epoch it was decided under."""

    access: Access
    epoch: int
    checked: bool  # decided in the database during this request, not from the cache


class AccessGate:
    """Authenticate callers and decide their access, from the cache the epoch keeps exact."""

    def __init__(
        self,
        *,
        cache: AccessCache,
        limiter: RateLimiter,
        access_tokens: AccessTokens,
        read_sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.cache = cache
        self._limiter = limiter
        self._access_tokens = access_tokens
        self._read_sessions = read_sessions  # no transaction: a token's use commits alone

    async def authenticate(self, session: AsyncSession, token: str | None) -> Principal:
        """Return who a bearer token is: a service token, or an access token's live session."""
        if not token:
            raise NotAuthenticated("authentication required: send a bearer access token")
        cache, now = self.cache, utcnow()
        epoch = await cache.sync(session)
        principal = cache.principal(epoch, token, now)
        if principal is None:
            if token.startswith(SERVICE_TOKEN_PREFIX):
                principal, expires_at = await _service_token_principal(session, token, now)
            else:
                principal, expires_at = await self._user_principal(session, token, now)
            # The copy is what later requests get, so the use recorded below is noted on it.
            principal = _detached(principal)
            cache.remember_principal(epoch, token, principal, expires_at)
        if isinstance(principal, TokenPrincipal):
            await auth_service.touch_service_token(session, token=principal.token, now=now)
        return principal

    async def admit(
        self,
        session: AsyncSession,
        principal: Principal,
        state: State,
        *,
        action: str,
        kind: ResourceKind | None = None,
        resource_id: uuid.UUID | None = None,
        cached: bool = False,
    ) -> Access:
        """Decide an action on a resource (none: a user's own request) for an authenticated caller.

        Only decisions on an environment are cached, and only when asked (`cached`): a cached
        admission carries no resource object (Access.resource is None).
        """
        await self.count(state, principal)
        if kind is None or resource_id is None:
            if not isinstance(principal, UserPrincipal):
                raise Forbidden("service tokens may not do this")
            return Access(principal=principal)
        if cached and kind == "environment":
            return await self._environment(session, principal, action, resource_id)
        resource, scope = await load_resource(session, kind, resource_id)
        role = await authorize(session, principal, scope=scope, action=action, kind=kind)
        return Access(principal=principal, scope=scope, role=role, resource=resource)

    async def admit_provisionally(self, ticket: Ticket) -> Admission:
        """Admit from the cache without a query when it can; else decide in the database.

        Use the admission only once `confirm` accepts the epoch read with the data.
        """
        epoch, token, environment_id = self.cache.epoch, ticket.token, ticket.environment_id
        if epoch is not None and token and environment_id is not None:
            now = utcnow()
            principal = self.cache.principal(epoch, token, now)
            # A token due to record its use goes the full way, which records it.
            if principal is not None and not _use_due(principal, now):
                grant = self.cache.grant(
                    epoch, caller_key(principal), ticket.action, environment_id
                )
                if grant is not None:
                    await self.count(ticket.state, principal)
                    access = Access(principal=principal, scope=grant.scope, role=grant.role)
                    return Admission(access, epoch, checked=False)
        return await self.recheck(ticket)

    def confirm(self, admission: Admission, epoch: int | None) -> bool:
        """Tell whether an admission holds under the epoch read with the data it guards.

        A decision made in the database during this request stands, as any route's does;
        one from the cache stands only under the epoch it was made under.
        """
        if admission.checked:
            return True
        return epoch is not None and epoch != NO_EPOCH and epoch == admission.epoch

    def expected_epoch(self, admission: Admission) -> int | None:
        """Return the epoch a store must find with what it writes for the admission to hold.

        None: the admission was decided in the database during the request and holds as is.
        """
        return None if admission.checked else admission.epoch

    async def recheck(self, ticket: Ticket) -> Admission:
        """Decide a ticket in the database (filling the cache), in a session of its own."""
        async with self._read_sessions() as session:
            access = await self.admit_in(session, ticket)
            epoch = await self.cache.sync(session)
        return Admission(access, epoch, checked=True)

    async def admit_in(self, session: AsyncSession, ticket: Ticket) -> Access:
        """Decide a ticket under the epoch read in `session` (cached answers included)."""
        principal = await self.authenticate(session, ticket.token)
        await self.count(ticket.state, principal)  # refused or not, the request counts
        if ticket.environment_id is None:
            raise NotFound("environment not found")
        return await self.admit(
            session,
            principal,
            ticket.state,
            action=ticket.action,
            kind="environment",
            resource_id=ticket.environment_id,
            cached=True,
        )

    async def admit_reader(
        self, session: AsyncSession, principal: Principal, environment_id: uuid.UUID
    ) -> Access:
        """Admit a caller, already admitted and counted, to read one more environment's secrets.

        For references: a value that pulls from another environment is read only by a caller
        who may read that environment too; a service token, only as far as its maker may
        (decided in the database each time, never cached).
        """
        if (
            isinstance(principal, TokenPrincipal)
            and principal.token.environment_id != environment_id
        ):
            _resource, scope = await load_resource(session, "environment", environment_id)
            role = await authorize_token_reference(session, principal, scope)
            return Access(principal=principal, scope=scope, role=role)
        return await self._environment(session, principal, "secret.read", environment_id)

    async def count(self, state: State, principal: Principal) -> None:
        """Count the request against the caller's API rate limit, once however it is admitted."""
        if not state.get(_COUNTED, False):
            state[_COUNTED] = True
            await self._limiter.hit("api", limit_key(principal))

    async def _environment(
        self, session: AsyncSession, principal: Principal, action: str, environment_id: uuid.UUID
    ) -> Access:
        """Answer from the cache under the session's epoch, or decide and cache a grant."""
        cache, caller = self.cache, caller_key(principal)
        epoch = await cache.sync(session)
        grant = cache.grant(epoch, caller, action, environment_id)
        if grant is None:
            _resource, scope = await load_resource(session, "environment", environment_id)
            role = await authorize(
                session, principal, scope=scope, action=action, kind="environment"
            )
            if role is None:  # allowed without a role here: nothing to cache
                return Access(principal=principal, scope=scope)
            grant = Grant(scope=scope, role=role)
            cache.remember_grant(epoch, caller, action, environment_id, grant)
        return Access(principal=principal, scope=grant.scope, role=grant.role)

    async def _user_principal(
        self, session: AsyncSession, token: str, now: datetime
    ) -> Authenticated:
        claims = self._access_tokens.verify(token)
        found = await auth_service.load_session_user(
            session, user_id=claims.user_id, session_id=claims.session_id
        )
        if found is None:
            raise InvalidToken("invalid access token")
        user, login = found
        if login.revoked_at is not None or login.expires_at <= now:
            raise InvalidToken("the login session has ended; log in again")
        token_expiry = datetime.fromtimestamp(claims.expires_at, UTC)
        return UserPrincipal(user=user, login_session=login), min(token_expiry, login.expires_at)


def _use_due(principal: Principal, now: datetime) -> bool:
    return isinstance(principal, TokenPrincipal) and auth_service.touch_due(principal.token, now)


async def _service_token_principal(
    session: AsyncSession, token: str, now: datetime
) -> Authenticated:
    record = await auth_service.find_service_token(session, token=token)
    if record is None or record.revoked_at is not None:
        raise InvalidToken("invalid or revoked service token")
    if record.expires_at is not None and record.expires_at <= now:
        raise InvalidToken("the service token has expired")
    return TokenPrincipal(token=record), record.expires_at


def _detached(principal: Principal) -> Principal:
    """Return a copy of a principal that outlives this request's session."""
    if isinstance(principal, TokenPrincipal):
        return TokenPrincipal(token=detached_copy(principal.token))
    return UserPrincipal(
        user=detached_copy(principal.user), login_session=detached_copy(principal.login_session)
    )
