"""A person's own login sessions: listed, and one ended from another."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import RequestOrigin, UserPrincipal
from kavach.server.audit import service as audit
from kavach.server.auth import service as auth_service
from kavach.server.auth.models import LoginSession
from kavach.server.auth.schemas import LoginSessionPublic
from kavach.server.db.base import utcnow
from kavach.server.errors import NotFound

# A person holds a few sessions (a laptop, a browser, a CI job): the newest are listed.
MAX_LISTED = 100


async def active(session: AsyncSession, principal: UserPrincipal) -> list[LoginSession]:
    """Return the caller's sessions that still work, newest first."""
    rows = await session.scalars(
        select(LoginSession)
        .where(
            LoginSession.user_id == principal.user.id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > utcnow(),
        )
        .order_by(LoginSession.created_at.desc(), LoginSession.id)
        .limit(MAX_LISTED)
    )
    return list(rows)


async def listed(session: AsyncSession, principal: UserPrincipal) -> list[LoginSessionPublic]:
    """Describe the caller's working sessions, marking the one in use."""
    return [
        LoginSessionPublic(
            id=login.id,
            identity_provider=login.identity_provider,
            client_address=login.client_address,
            created_at=login.created_at,
            expires_at=login.expires_at,
            last_refreshed_at=login.last_refreshed_at,
            current=login.id == principal.login_session.id,
        )
        for login in await active(session, principal)
    ]


async def end(
    session: AsyncSession, principal: UserPrincipal, origin: RequestOrigin, session_id: str
) -> LoginSession:
    """End one of the caller's own sessions; its tokens stop working at once, everywhere."""
    try:
        wanted = uuid.UUID(session_id)
    except ValueError:
        raise NotFound("session not found") from None
    login = await session.get(LoginSession, wanted, populate_existing=True)
    # Someone else's session is as unknown as one that never was.
    if login is None or login.user_id != principal.user.id:
        raise NotFound("session not found")
    await auth_service.revoke_login_session(session, login=login, now=utcnow(), reason="ended")
    await audit.record(
        session,
        actor=principal.actor,
        action="auth.session.end",
        origin=origin,
        resource_type="session",
        resource_id=str(login.id),
        details={"identity_provider": login.identity_provider},
    )
    return login
