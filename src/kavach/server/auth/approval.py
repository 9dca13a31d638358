"""Deciding a pending local login: approved for a proven user, or denied.

A login is approved only by someone who proves who it is for: the signed-in user it will
belong to (their own bearer token), or the server's operator on the server's machine
(`kavach server approve CODE --user NAME`, which needs the server's database). Nothing is
decided by where a request comes from.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth import service as auth_service
from kavach.server.auth.models import DeviceAuthorization
from kavach.server.auth.usercodes import format_user_code, normalize_user_code
from kavach.server.db.base import utcnow
from kavach.server.errors import NotFound, ValidationFailed
from kavach.server.iam import service as iam_service
from kavach.server.iam.models import User

LOCAL_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


async def pending_login(session: AsyncSession, user_code: str) -> tuple[DeviceAuthorization, str]:
    """Return the pending authorization a typed code names, and the code as shown."""
    code = normalize_user_code(user_code)
    record = (
        await auth_service.find_pending_by_user_code(session, user_code=code, now=utcnow())
        if code
        else None
    )
    if record is None or code is None:
        raise NotFound("unknown, used or expired user code; start `kavach login` again")
    return record, format_user_code(code)


async def _decide(
    session: AsyncSession,
    record: DeviceAuthorization,
    *,
    user: User | None,
    actor: Actor,
    origin: RequestOrigin,
    details: dict[str, str],
) -> None:
    record.user_id = user.id if user is not None else None
    record.status = auth_service.APPROVED if user is not None else auth_service.DENIED
    record.decided_at = utcnow()
    await audit.record(
        session,
        actor=actor,
        action="auth.device.approve" if user is not None else "auth.device.deny",
        origin=origin,
        resource_type="device_authorization",
        resource_id=str(record.id),
        details=details,
    )


async def approve_for(
    session: AsyncSession,
    *,
    user_code: str,
    user: User,
    actor: Actor,
    origin: RequestOrigin,
    via: str,
    approver_session: str | None = None,
) -> str:
    """Approve a pending login for a user whose identity the caller proved; return the code."""
    record, _shown = await pending_login(session, user_code)
    return await approve(
        session,
        record,
        user=user,
        actor=actor,
        origin=origin,
        via=via,
        approver_session=approver_session,
    )


async def approve(
    session: AsyncSession,
    record: DeviceAuthorization,
    *,
    user: User,
    actor: Actor,
    origin: RequestOrigin,
    via: str,
    approver_session: str | None = None,
) -> str:
    """Approve a pending authorization already in hand; return its code as shown."""
    shown = format_user_code(record.user_code)
    details = {"user_code": shown, "user": user.login, "via": via}
    if approver_session is not None:
        details["approver_session"] = approver_session
    await _decide(session, record, user=user, actor=actor, origin=origin, details=details)
    return shown


async def deny(
    session: AsyncSession, *, user_code: str, actor: Actor, origin: RequestOrigin, via: str
) -> str:
    """Deny a pending login; return the code as shown."""
    record, shown = await pending_login(session, user_code)
    details = {"user_code": shown, "via": via}
    await _decide(session, record, user=None, actor=actor, origin=origin, details=details)
    return shown


async def decide_as_operator(
    session: AsyncSession,
    *,
    user_code: str,
    approve: bool,
    login: str | None,
    actor: Actor,
    origin: RequestOrigin,
) -> str:
    """Approve (as the named local user, created if new) or deny, for the server's operator."""
    if not approve:
        return await deny(session, user_code=user_code, actor=actor, origin=origin, via="server")
    name = (login or "").strip().lower()
    if not LOCAL_LOGIN.match(name):
        raise ValidationFailed(
            "user name must be 1-63 characters: a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    # The code is checked first, so an unknown code creates no user.
    await pending_login(session, user_code)
    user = await iam_service.upsert_user(
        session,
        identity=iam_service.Identity(provider="local", provider_id=name, login=name),
        origin=origin,
    )
    return await approve_for(
        session, user_code=user_code, user=user, actor=actor, origin=origin, via="server"
    )
