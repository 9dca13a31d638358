"""Database work for device authorizations, login sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from kavach.server.auth.models import (
    DeviceAuthorization,
    LoginSession,
    RefreshToken,
    ServiceToken,
)
from kavach.server.auth.tokens import new_refresh_token, token_hash
from kavach.server.iam.models import User

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
CONSUMED = "consumed"


async def create_device_authorization(
    session: AsyncSession,
    *,
    device_code: str,
    user_code: str,
    expires_at: datetime,
    interval: int,
    requested_from: str | None,
) -> DeviceAuthorization:
    """Store a new pending device authorization (the device code only as a hash)."""
    record = DeviceAuthorization(
        device_code_hash=token_hash(device_code),
        user_code=user_code,
        status=PENDING,
        expires_at=expires_at,
        interval=interval,
        requested_from=requested_from,
    )
    session.add(record)
    await session.flush()
    return record


async def find_device_by_code(
    session: AsyncSession, *, device_code: str
) -> DeviceAuthorization | None:
    """Return the authorization for a device code, locked for update where supported."""
    return await session.scalar(
        select(DeviceAuthorization)
        .where(DeviceAuthorization.device_code_hash == token_hash(device_code))
        .with_for_update()
    )


async def find_pending_by_user_code(
    session: AsyncSession, *, user_code: str, now: datetime
) -> DeviceAuthorization | None:
    """Return the pending, unexpired authorization a user code names."""
    return await session.scalar(
        select(DeviceAuthorization)
        .where(
            DeviceAuthorization.user_code == user_code,
            DeviceAuthorization.status == PENDING,
            DeviceAuthorization.expires_at > now,
        )
        .with_for_update()
    )


async def consume_approved(session: AsyncSession, *, authorization_id: uuid.UUID) -> bool:
    """Mark an approved authorization consumed; False if another request got there first."""
    result = await session.execute(
        update(DeviceAuthorization)
        .where(DeviceAuthorization.id == authorization_id, DeviceAuthorization.status == APPROVED)
        .values(status=CONSUMED)
    )
    assert isinstance(result, CursorResult)  # noqa: S101 - UPDATE always yields a cursor result
    return result.rowcount == 1


async def start_login_session(
    session: AsyncSession,
    *,
    user: User,
    identity_provider: str,
    client_address: str | None,
    now: datetime,
    refresh_ttl: int,
) -> tuple[LoginSession, str]:
    """Open a login session and return it with its first refresh token."""
    login = LoginSession(
        user_id=user.id,
        identity_provider=identity_provider,
        client_address=client_address,
        expires_at=now + timedelta(seconds=refresh_ttl),
    )
    session.add(login)
    await session.flush()
    refresh = await issue_refresh_token(session, login=login, now=now, refresh_ttl=refresh_ttl)
    return login, refresh


async def issue_refresh_token(
    session: AsyncSession, *, login: LoginSession, now: datetime, refresh_ttl: int
) -> str:
    """Add a refresh token to a session and slide the session's expiry with it."""
    token = new_refresh_token()
    expires_at = now + timedelta(seconds=refresh_ttl)
    session.add(
        RefreshToken(session_id=login.id, token_hash=token_hash(token), expires_at=expires_at)
    )
    login.expires_at = expires_at
    await session.flush()
    return token


async def find_refresh_token(
    session: AsyncSession, *, token: str
) -> tuple[RefreshToken, LoginSession] | None:
    """Return a refresh token and its session by the token's value."""
    row = (
        await session.execute(
            select(RefreshToken, LoginSession)
            .join(LoginSession, LoginSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash(token))
        )
    ).first()
    return (row[0], row[1]) if row else None


async def mark_refresh_token_used(
    session: AsyncSession, *, refresh_id: uuid.UUID, now: datetime
) -> bool:
    """Mark a refresh token used; False if it already was (a concurrent or replayed use)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == refresh_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    assert isinstance(result, CursorResult)  # noqa: S101 - UPDATE always yields a cursor result
    return result.rowcount == 1


async def revoke_login_session(
    session: AsyncSession, *, login: LoginSession, now: datetime, reason: str
) -> None:
    """Revoke a session, which ends every token issued under it."""
    if login.revoked_at is None:
        login.revoked_at = now
        login.revoked_reason = reason
        await session.flush()


async def load_session_user(
    session: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[User, LoginSession] | None:
    """Return the user and login session an access token names, in one query."""
    row = (
        await session.execute(
            select(User, LoginSession)
            .join(LoginSession, LoginSession.user_id == User.id)
            .where(User.id == user_id, LoginSession.id == session_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def find_service_token(session: AsyncSession, *, token: str) -> ServiceToken | None:
    """Return a service token by its value."""
    return await session.scalar(
        select(ServiceToken).where(ServiceToken.token_hash == token_hash(token))
    )


def touch_due(token: ServiceToken, now: datetime) -> bool:
    """Say whether a token's last use is over a minute old, so this use should be recorded."""
    return token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1)


async def touch_service_token(session: AsyncSession, *, token: ServiceToken, now: datetime) -> None:
    """Record when a token was last used, at most once a minute (a write per request is waste)."""
    if touch_due(token, now):
        # By statement, not through the object: a cached token is not in this session.
        await session.execute(
            update(ServiceToken).where(ServiceToken.id == token.id).values(last_used_at=now)
        )
        set_committed_value(token, "last_used_at", now)
