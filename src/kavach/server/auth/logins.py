"""Opening a login session for a signed-in user: a CLI's (tokens) or a browser's (a cookie)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth import service as auth_service
from kavach.server.auth.models import LoginSession
from kavach.server.auth.tokens import BROWSER_TOKEN_TYPE, AccessTokens
from kavach.server.db.base import utcnow
from kavach.server.iam.models import User
from kavach.server.settings import AuthSettings


@dataclass(frozen=True)
class BrowserSignIn:
    """A browser's new session: the token its cookie holds, and for how long."""

    token: str
    ttl: int


async def start_login(
    session: AsyncSession,
    *,
    user: User,
    provider: str,
    origin: RequestOrigin,
    ttl: int,
    **details: str,
) -> tuple[LoginSession, str]:
    """Open a login session, record the sign-in, and return it with its first refresh token."""
    login, refresh = await auth_service.start_login_session(
        session,
        user=user,
        identity_provider=provider,
        client_address=origin.client_address,
        now=utcnow(),
        refresh_ttl=ttl,
    )
    await audit.record(
        session,
        actor=Actor(type="user", id=user.id, label=user.login),
        action="auth.login",
        origin=origin,
        resource_type="session",
        resource_id=str(login.id),
        details={"identity_provider": provider, **details},
    )
    return login, refresh


async def open_browser_session(
    session: AsyncSession,
    *,
    settings: AuthSettings,
    access_tokens: AccessTokens,
    user: User,
    provider: str,
    origin: RequestOrigin,
) -> BrowserSignIn:
    """Start a login session for a browser and return the token of its cookie."""
    ttl = settings.browser_session_ttl_seconds
    # A browser never refreshes: its session ends with the cookie.
    login, _refresh = await start_login(
        session, user=user, provider=provider, origin=origin, ttl=ttl, client="browser"
    )
    token = access_tokens.issue(
        user_id=user.id, session_id=login.id, now=utcnow(), kind=BROWSER_TOKEN_TYPE, ttl_seconds=ttl
    )
    return BrowserSignIn(token=token.token, ttl=ttl)
