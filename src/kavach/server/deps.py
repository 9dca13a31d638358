"""FastAPI dependencies shared by every router: runtime, database session, caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Principal, RequestOrigin, UserPrincipal
from kavach.server.auth import browser
from kavach.server.errors import CsrfFailed, Forbidden, KavachError
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
    """Return the request's credential: its bearer token, else its browser session cookie.

    A change authenticated by the cookie needs the session's CSRF token too (auth.browser).
    """
    # Parsed as the HTTPBearer dependency parses it, so both find the same cached caller.
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer" and token:
        return token
    return browser_session(request)


def bearer_given(request: Request) -> bool:
    """Say whether the request carries a bearer token (which then wins over any cookie)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return scheme.lower() == "bearer" and bool(token)


def browser_session(request: Request) -> str | None:
    """Return the browser session cookie's token, once its CSRF token is checked."""
    cookie = request.cookies.get(browser.SESSION_COOKIE)
    if not cookie:
        return None
    if request.method not in browser.SAFE_METHODS:
        key = runtime_of(request).keys.jwt_signing_key
        if not browser.csrf_matches(key, cookie, request.headers.get(browser.CSRF_HEADER)):
            raise CsrfFailed("a change made with the browser session needs its X-CSRF-Token header")
    return cookie


async def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the bearer token at the access gate."""
    token = credentials.credentials if credentials is not None else None
    if credentials is None or credentials.scheme.lower() != "bearer":
        token = browser_session(request)
    return await runtime_of(request).gate.authenticate(session, token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_user_principal(principal: PrincipalDep) -> UserPrincipal:
    """Require a signed-in user: service tokens may not do this."""
    if not isinstance(principal, UserPrincipal):
        raise Forbidden("service tokens may not do this; sign in as a user")
    return principal


UserDep = Annotated[UserPrincipal, Depends(get_user_principal)]
