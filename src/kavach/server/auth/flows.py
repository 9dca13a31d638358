"""Login flows: device authorization (local or GitHub), approval, refresh and logout."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ANONYMOUS, Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth import github_access
from kavach.server.auth import service as auth_service
from kavach.server.auth.github import GitHubClient
from kavach.server.auth.logins import BrowserSignIn, open_browser_session, start_login
from kavach.server.auth.models import DeviceAuthorization, LoginSession
from kavach.server.auth.schemas import DeviceCodeResponse, TokenResponse, UserPublic
from kavach.server.auth.tokens import new_device_code
from kavach.server.auth.usercodes import format_user_code, new_user_code
from kavach.server.db.base import utcnow
from kavach.server.errors import (
    DeviceFlowError,
    InvalidRefreshToken,
    NotFound,
    RefreshTokenReused,
)
from kavach.server.iam import service as iam_service
from kavach.server.iam.models import User
from kavach.server.runtime import Runtime

_SLOW_DOWN_STEP = 5
# What a poll answers while the login may still succeed: not an outcome.
_STILL_WAITING = ("authorization_pending", "slow_down")


def github_client(runtime: Runtime) -> GitHubClient:
    """Return a GitHub client for the configured OAuth app."""
    auth = runtime.settings.auth
    if not auth.github_client_id:
        raise NotFound("GitHub login is not configured on this server")
    secret = auth.github_client_secret
    return GitHubClient(
        client_id=auth.github_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        web_url=auth.github_url,
        api_url=auth.github_api_url,
        http=runtime.http,
        scope=github_access.scope_for(auth),
    )


def require_local_logins(runtime: Runtime) -> None:
    """Refuse when this server does not run device logins itself (local or OpenID)."""
    if not runtime.settings.auth.server_device_flow:
        raise NotFound("this server does not use local logins")


def _uses_github(runtime: Runtime) -> bool:
    """Say whether device logins go through GitHub's own device flow."""
    auth = runtime.settings.auth
    return auth.identity_provider == "github" and not auth.oidc_providers


async def start_device_flow(
    runtime: Runtime, session: AsyncSession, *, origin: RequestOrigin, base_url: str
) -> DeviceCodeResponse:
    """Begin a device login with the configured identity provider."""
    auth = runtime.settings.auth
    if _uses_github(runtime):
        code = await github_client(runtime).request_device_code()
        return DeviceCodeResponse(
            device_code=code.device_code,
            user_code=code.user_code,
            verification_uri=code.verification_uri,
            verification_uri_complete=None,
            expires_in=code.expires_in,
            interval=code.interval,
            identity_provider="github",
        )
    require_local_logins(runtime)
    now = utcnow()
    user_code = new_user_code()
    while await session.scalar(
        select(DeviceAuthorization.id).where(DeviceAuthorization.user_code == user_code)
    ):
        user_code = new_user_code()
    device_code = new_device_code()
    await auth_service.create_device_authorization(
        session,
        device_code=device_code,
        user_code=user_code,
        expires_at=now + timedelta(seconds=auth.device_code_ttl_seconds),
        interval=auth.device_poll_interval_seconds,
        requested_from=origin.client_address,
    )
    root = (auth.public_url or base_url).rstrip("/")
    page = f"{root}/device"
    shown = format_user_code(user_code)
    complete = f"{page}?user_code={shown}"
    if len(auth.oidc_providers) == 1 and not auth.local_idp_enabled:
        # One way to approve: the link goes straight to the provider.
        complete = f"{root}/oidc/{auth.oidc_providers[0].name}/login?user_code={shown}"
    return DeviceCodeResponse(
        device_code=device_code,
        user_code=shown,
        verification_uri=page,
        verification_uri_complete=complete,
        expires_in=auth.device_code_ttl_seconds,
        interval=auth.device_poll_interval_seconds,
        identity_provider="oidc" if auth.oidc_providers else "local",
    )


async def _login_failed(
    session: AsyncSession,
    origin: RequestOrigin,
    reason: str,
    provider: str,
    *,
    login: str | None = None,
) -> None:
    details = {"reason": reason, "identity_provider": provider}
    if login is not None:
        details["login"] = login  # who was refused: a name, never a credential
    await audit.record(
        session,
        actor=ANONYMOUS,
        action="auth.login",
        outcome="failure",
        origin=origin,
        details=details,
    )


async def issue_tokens(
    runtime: Runtime, session: AsyncSession, *, user: User, provider: str, origin: RequestOrigin
) -> TokenResponse:
    """Open a login session for a user and return its first token pair."""
    login, refresh = await start_login(
        session,
        user=user,
        provider=provider,
        origin=origin,
        ttl=runtime.settings.auth.refresh_token_ttl_seconds,
    )
    access = runtime.access_tokens.issue(user_id=user.id, session_id=login.id, now=utcnow())
    return TokenResponse(
        access_token=access.token,
        refresh_token=refresh,
        expires_in=access.expires_in,
        user=UserPublic.model_validate(user),
    )


async def exchange_device_code(
    runtime: Runtime, session: AsyncSession, *, device_code: str, origin: RequestOrigin
) -> TokenResponse:
    """Answer one poll of the token endpoint at once: tokens, or why not yet."""
    user, provider = await _approved_user(runtime, session, device_code=device_code, origin=origin)
    return await issue_tokens(runtime, session, user=user, provider=provider, origin=origin)


async def browser_sign_in(
    runtime: Runtime, session: AsyncSession, *, device_code: str, origin: RequestOrigin
) -> BrowserSignIn:
    """Answer one poll of a browser's sign-in by code: its session, or why not yet."""
    user, provider = await _approved_user(runtime, session, device_code=device_code, origin=origin)
    return await open_browser_session(
        session,
        settings=runtime.settings.auth,
        access_tokens=runtime.access_tokens,
        user=user,
        provider=provider,
        origin=origin,
    )


async def _approved_user(
    runtime: Runtime, session: AsyncSession, *, device_code: str, origin: RequestOrigin
) -> tuple[User, str]:
    """Return whom a device login was approved for and through what, or why not yet."""
    github = _uses_github(runtime)
    provider = "github" if github else "local"
    if not github:
        require_local_logins(runtime)
    exchange = _exchange_github if github else _exchange_local
    metrics = runtime.metrics
    try:
        approved = await exchange(runtime, session, device_code=device_code, origin=origin)
    except DeviceFlowError as error:
        if metrics is not None and error.error_code not in _STILL_WAITING:
            metrics.login(provider, error.error_code)
        raise
    except Exception:
        if metrics is not None:
            metrics.login(provider, "error")
        raise
    if metrics is not None:
        metrics.login(provider, "success")
    return approved


async def _exchange_github(
    runtime: Runtime, session: AsyncSession, *, device_code: str, origin: RequestOrigin
) -> tuple[User, str]:
    client = github_client(runtime)
    try:
        github_token = await client.poll_device_token(device_code)
    except DeviceFlowError as error:
        if error.error_code not in _STILL_WAITING:
            await _login_failed(session, origin, error.error_code, "github")
        raise
    found = await client.fetch_identity(github_token)
    try:
        await github_access.admit(
            session,
            runtime.settings.auth,
            client,
            access_token=github_token,
            identity=found,
        )
    except DeviceFlowError as error:
        await _login_failed(session, origin, error.error_code, "github", login=found.login)
        raise
    user = await iam_service.upsert_user(
        session,
        identity=iam_service.Identity(
            provider="github",
            provider_id=found.provider_id,
            login=found.login,
            email=found.email,
            name=found.name,
            avatar_url=found.avatar_url,
            verified_emails=found.verified_emails,
        ),
        origin=origin,
    )
    return user, "github"


async def _exchange_local(
    runtime: Runtime, session: AsyncSession, *, device_code: str, origin: RequestOrigin
) -> tuple[User, str]:
    now = utcnow()
    record = await auth_service.find_device_by_code(session, device_code=device_code)
    if record is None or record.status == auth_service.CONSUMED:
        await _login_failed(session, origin, "invalid_grant", "local")
        raise DeviceFlowError("invalid_grant", "unknown or already used device code")
    if record.status == auth_service.DENIED:
        await _login_failed(session, origin, "access_denied", "local")
        raise DeviceFlowError("access_denied", "the login was denied")
    if record.expires_at <= now:
        await _login_failed(session, origin, "expired_token", "local")
        raise DeviceFlowError("expired_token", "the device code expired; start a new login")
    if record.status == auth_service.PENDING:
        too_fast = record.last_polled_at is not None and now - record.last_polled_at < timedelta(
            seconds=record.interval
        )
        record.last_polled_at = now
        if too_fast:
            record.interval += _SLOW_DOWN_STEP
            raise DeviceFlowError(
                "slow_down", "polling too fast; wait longer", data={"interval": record.interval}
            )
        raise DeviceFlowError(
            "authorization_pending",
            "waiting for the user to approve",
            data={"interval": record.interval},
        )
    if record.user_id is None or not await auth_service.consume_approved(
        session, authorization_id=record.id
    ):
        raise DeviceFlowError("invalid_grant", "unknown or already used device code")
    user = await iam_service.get_user(session, user_id=record.user_id)
    # Approved through an OpenID provider ("oidc:NAME"), or locally.
    return user, record.identity_provider or "local"


async def refresh_tokens(
    runtime: Runtime, session: AsyncSession, *, refresh_token: str, origin: RequestOrigin
) -> TokenResponse:
    """Rotate a refresh token; a replayed one revokes its whole session."""
    now = utcnow()
    found = await auth_service.find_refresh_token(session, token=refresh_token)
    if found is None:
        await _refresh_failed(session, origin, None, "unknown_token")
        raise InvalidRefreshToken("invalid refresh token")
    record, login = found
    user_actor = Actor(type="user", id=login.user_id)
    if record.used_at is not None or not await auth_service.mark_refresh_token_used(
        session, refresh_id=record.id, now=now
    ):
        await auth_service.revoke_login_session(session, login=login, now=now, reason="token_reuse")
        await _refresh_failed(session, origin, user_actor, "token_reuse", login.id)
        raise RefreshTokenReused("refresh token already used: the session has been revoked")
    if login.revoked_at is not None or record.expires_at <= now or login.expires_at <= now:
        await _refresh_failed(session, origin, user_actor, "session_ended", login.id)
        raise InvalidRefreshToken("the login session has ended; log in again")
    user = await iam_service.get_user(session, user_id=login.user_id)
    new_refresh = await auth_service.issue_refresh_token(
        session, login=login, now=now, refresh_ttl=runtime.settings.auth.refresh_token_ttl_seconds
    )
    login.last_refreshed_at = now
    access = runtime.access_tokens.issue(user_id=user.id, session_id=login.id, now=now)
    await audit.record(
        session,
        actor=Actor(type="user", id=user.id, label=user.login),
        action="auth.refresh",
        origin=origin,
        resource_type="session",
        resource_id=str(login.id),
    )
    return TokenResponse(
        access_token=access.token,
        refresh_token=new_refresh,
        expires_in=access.expires_in,
        user=UserPublic.model_validate(user),
    )


async def _refresh_failed(
    session: AsyncSession,
    origin: RequestOrigin,
    actor: Actor | None,
    reason: str,
    session_id: object = None,
) -> None:
    await audit.record(
        session,
        actor=actor or ANONYMOUS,
        action="auth.refresh",
        outcome="failure",
        origin=origin,
        resource_type="session" if session_id else None,
        resource_id=str(session_id) if session_id else None,
        details={"reason": reason},
    )


async def logout(
    session: AsyncSession, *, user: User, login: LoginSession, origin: RequestOrigin
) -> None:
    """Revoke the caller's login session."""
    # The caller's session object may come from the access cache, outside this transaction.
    current = await session.get(LoginSession, login.id, populate_existing=True)
    if current is not None:
        await auth_service.revoke_login_session(
            session, login=current, now=utcnow(), reason="logout"
        )
    await audit.record(
        session,
        actor=Actor(type="user", id=user.id, label=user.login),
        action="auth.logout",
        origin=origin,
        resource_type="session",
        resource_id=str(login.id),
    )
