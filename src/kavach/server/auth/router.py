"""HTTP routes of login: device flow, refresh, logout, me."""

from __future__ import annotations

from fastapi import Request, Response

from kavach.server import deps
from kavach.server.access import TokenPrincipal
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.auth import approval, browser, flows, sessions
from kavach.server.auth.schemas import (
    BrowserSession,
    DeviceCodeRequest,
    DeviceCodeResponse,
    DeviceDecision,
    DeviceDecisionRequest,
    DeviceTokenRequest,
    LoginSessionPublic,
    LogoutResponse,
    ProviderPublic,
    RefreshRequest,
    ServiceTokenPublic,
    TokenResponse,
    UserPublic,
    WhoAmI,
)
from kavach.server.deps import OriginDep, PrincipalDep, RuntimeDep, SessionDep, UserDep
from kavach.server.iam.schemas import Removed
from kavach.server.ratelimit import client_key

router = api_router(prefix=f"{API_PREFIX}/auth", tags=["auth"])


def _client_key(origin: OriginDep) -> str:
    return client_key(origin.client_address)


@router.post("/device/code", response_model=Envelope[DeviceCodeResponse])
async def device_code(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
    body: DeviceCodeRequest | None = None,
) -> Envelope[DeviceCodeResponse]:
    """Start a device login (RFC 8628 §3.1)."""
    await runtime.limiter.hit("device_code", _client_key(origin))
    return ok(
        await flows.start_device_flow(
            runtime, session, origin=origin, base_url=str(request.base_url)
        )
    )


@router.post("/device/token", response_model=Envelope[TokenResponse])
async def device_token(
    body: DeviceTokenRequest, runtime: RuntimeDep, session: SessionDep, origin: OriginDep
) -> Envelope[TokenResponse]:
    """Poll once for the tokens of a device login; answers at once (RFC 8628 §3.4)."""
    await runtime.limiter.hit("device_token", _client_key(origin))
    return ok(
        await flows.exchange_device_code(
            runtime, session, device_code=body.device_code, origin=origin
        )
    )


@router.post("/device/approve", response_model=Envelope[DeviceDecision])
async def device_approve(
    body: DeviceDecisionRequest,
    principal: UserDep,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[DeviceDecision]:
    """Approve a pending local login for the caller themselves, never for anyone else."""
    flows.require_local_logins(runtime)
    # Per user: guessing codes needs a login, and a login cannot pick a new key.
    await runtime.limiter.hit("device_approve", str(principal.user.id))
    shown = await approval.approve_for(
        session,
        user_code=body.user_code,
        user=principal.user,
        actor=principal.actor,
        origin=origin,
        via="session",
        approver_session=str(principal.login_session.id),
    )
    user = UserPublic.model_validate(principal.user)
    return ok(DeviceDecision(user_code=shown, approved=True, user=user))


@router.post("/device/deny", response_model=Envelope[DeviceDecision])
async def device_deny(
    body: DeviceDecisionRequest,
    principal: UserDep,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[DeviceDecision]:
    """Deny a pending local login (one started by mistake, or by someone else)."""
    flows.require_local_logins(runtime)
    await runtime.limiter.hit("device_approve", str(principal.user.id))
    shown = await approval.deny(
        session, user_code=body.user_code, actor=principal.actor, origin=origin, via="session"
    )
    return ok(DeviceDecision(user_code=shown, approved=False))


@router.post("/refresh", response_model=Envelope[TokenResponse])
async def refresh(
    body: RefreshRequest, runtime: RuntimeDep, session: SessionDep, origin: OriginDep
) -> Envelope[TokenResponse]:
    """Rotate a refresh token into a new token pair."""
    await runtime.limiter.hit("refresh", _client_key(origin))
    return ok(
        await flows.refresh_tokens(
            runtime, session, refresh_token=body.refresh_token, origin=origin
        )
    )


@router.post("/logout", response_model=Envelope[LogoutResponse])
async def logout(
    principal: UserDep, session: SessionDep, origin: OriginDep, response: Response
) -> Envelope[LogoutResponse]:
    """End the caller's login session; its tokens (and a browser's cookie) stop working at once."""
    await flows.logout(session, user=principal.user, login=principal.login_session, origin=origin)
    browser.end_session(response)
    return ok(LogoutResponse(logged_out=True))


@router.get("/providers", response_model=Envelope[list[ProviderPublic]])
async def providers(request: Request, runtime: RuntimeDep) -> Envelope[list[ProviderPublic]]:
    """List the OpenID providers people sign in with (no sign-in needed)."""
    auth = runtime.settings.auth
    root = (auth.public_url or str(request.base_url)).rstrip("/")
    return ok(
        [
            ProviderPublic(
                name=provider.name,
                display_name=provider.label,
                login_url=f"{root}/oidc/{provider.name}/login",
            )
            for provider in auth.oidc_providers
        ]
    )


@router.get("/session", response_model=Envelope[BrowserSession])
async def browser_session(
    request: Request, principal: UserDep, runtime: RuntimeDep
) -> Envelope[BrowserSession]:
    """Describe the caller's session; for a browser's cookie, the CSRF token its changes need."""
    cookie = None if deps.bearer_given(request) else request.cookies.get(browser.SESSION_COOKIE)
    csrf = browser.csrf_token(runtime.keys.jwt_signing_key, cookie) if cookie else None
    return ok(BrowserSession(user=UserPublic.model_validate(principal.user), csrf_token=csrf))


@router.get("/me", response_model=Envelope[UserPublic])
async def me(principal: UserDep) -> Envelope[UserPublic]:
    """Return the signed-in user."""
    return ok(UserPublic.model_validate(principal.user))


@router.get("/whoami", response_model=Envelope[WhoAmI])
async def whoami(principal: PrincipalDep) -> Envelope[WhoAmI]:
    """Describe the caller: a user, or a service token with its environment and role."""
    if isinstance(principal, TokenPrincipal):
        token = ServiceTokenPublic.model_validate(principal.token)
        return ok(WhoAmI(type="service_token", token=token))
    return ok(WhoAmI(type="user", user=UserPublic.model_validate(principal.user)))


@router.get("/sessions", response_model=Envelope[list[LoginSessionPublic]])
async def list_sessions(
    principal: UserDep, session: SessionDep
) -> Envelope[list[LoginSessionPublic]]:
    """List the caller's sessions that still work (CLIs, browsers, CI), newest first."""
    return ok(await sessions.listed(session, principal))


@router.delete("/sessions/{session_id}", response_model=Envelope[Removed])
async def end_session(
    session_id: str, principal: UserDep, session: SessionDep, origin: OriginDep
) -> Envelope[Removed]:
    """End one of the caller's sessions; its tokens (or cookie) stop working at once."""
    await sessions.end(session, principal, origin, session_id)
    return ok(Removed())
