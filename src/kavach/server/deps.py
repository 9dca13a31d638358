"""FastAPI dependencies shared by every router: runtime, database session, caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.service import Actor, RequestOrigin
from kavach.server.auth import service as auth_service
from kavach.server.auth.models import LoginSession, ServiceToken
from kavach.server.auth.tokens import SERVICE_TOKEN_PREFIX
from kavach.server.db.base import detached_copy, utcnow
from kavach.server.errors import Forbidden, InvalidToken, KavachError, NotAuthenticated
from kavach.server.iam.models import User
from kavach.server.runtime import Runtime


# Dependencies are `async def` even when they never await: FastAPI runs plain functions in
# a thread pool, a hand-off that costs more than what these do.
async def get_runtime(request: Request) -> Runtime:
    """Return the process's runtime."""
    return runtime_of(request)


def runtime_of(request: Request) -> Runtime:
    """Return the process's runtime, for dependencies that already take the request.

    Every dependency FastAPI solves costs time on every request, so the dependencies on
    every route read the runtime from the request instead of declaring it.
    """
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# Requests with these methods only read (writes they make, like a service token's last use,
# stand alone), so they run without a transaction.
_READ_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Open the request's session: one transaction for a change, committed on success."""
    runtime = runtime_of(request)
    reads = request.method in _READ_METHODS
    async with (runtime.read_sessionmaker if reads else runtime.sessionmaker)() as session:
        try:
            yield session
        except KavachError as error:
            if error.persist_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response is sent, so a failed commit is
# reported to the caller instead of after a success was already promised.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_origin(request: Request) -> RequestOrigin:
    """Return the caller's address and the request id."""
    return origin_of(request)


def origin_of(request: Request) -> RequestOrigin:
    """Return the caller's address and the request id (see runtime_of for why)."""
    return RequestOrigin(
        client_address=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id"),  # see count_api_request
    )


OriginDep = Annotated[RequestOrigin, Depends(get_origin)]

_bearer = HTTPBearer(auto_error=False)


def bearer_token(request: Request) -> str | None:
    """Return the bearer token of a request's Authorization header, if it has one."""
    # Parsed as the HTTPBearer dependency parses it, so both find the same cached caller.
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    return token


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


Authenticated = tuple[Principal, datetime | None]  # the principal, and when it stops being valid


async def _service_token_principal(
    session: AsyncSession, token: str, now: datetime
) -> Authenticated:
    record = await auth_service.find_service_token(session, token=token)
    if record is None or record.revoked_at is not None:
        raise InvalidToken("invalid or revoked service token")
    if record.expires_at is not None and record.expires_at <= now:
        raise InvalidToken("the service token has expired")
    return TokenPrincipal(token=record), record.expires_at


async def _user_principal(
    runtime: Runtime, session: AsyncSession, token: str, now: datetime
) -> Authenticated:
    claims = runtime.access_tokens.verify(token)
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


def _detached(principal: Principal) -> Principal:
    """Return a copy of a principal that outlives this request's session."""
    if isinstance(principal, TokenPrincipal):
        return TokenPrincipal(token=detached_copy(principal.token))
    return UserPrincipal(
        user=detached_copy(principal.user), login_session=detached_copy(principal.login_session)
    )


async def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the bearer token: a service token, or an access token with a live session.

    A token seen before is answered from the access cache, which the epoch keeps exact.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("authentication required: send a bearer access token")
    runtime = runtime_of(request)
    token, cache, now = credentials.credentials, runtime.access_cache, utcnow()
    epoch = await cache.sync(session)
    principal = cache.principal(epoch, token, now)
    if principal is None:
        if token.startswith(SERVICE_TOKEN_PREFIX):
            principal, expires_at = await _service_token_principal(session, token, now)
        else:
            principal, expires_at = await _user_principal(runtime, session, token, now)
        # The copy is what later requests get, so the use recorded below is noted on it.
        principal = _detached(principal)
        cache.remember_principal(epoch, token, principal, expires_at)
    if isinstance(principal, TokenPrincipal):
        await auth_service.touch_service_token(session, token=principal.token, now=now)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_user_principal(principal: PrincipalDep) -> UserPrincipal:
    """Require a signed-in user: service tokens may not do this."""
    if not isinstance(principal, UserPrincipal):
        raise Forbidden("service tokens may not do this; sign in as a user")
    return principal


UserDep = Annotated[UserPrincipal, Depends(get_user_principal)]
