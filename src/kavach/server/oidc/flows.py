"""OpenID sign-in from start to finish: for a browser session, or to approve a CLI's login.

The trip out stores its state (hashed), nonce and PKCE verifier in `oidc_logins`; the
way back consumes that row once, and checks that the browser coming back is the one that
left (the state is also in a short-lived cookie). Everything the provider says is checked
before anything is written: a refusal leaves no user, no membership and no session
behind, only its audit event.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import ANONYMOUS, Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.auth import approval
from kavach.server.auth import service as auth_service
from kavach.server.auth.logins import open_browser_session
from kavach.server.auth.models import DeviceAuthorization
from kavach.server.auth.tokens import AccessTokens, token_hash
from kavach.server.db.base import utcnow
from kavach.server.errors import KavachError, NotFound, StateRefused
from kavach.server.iam.models import User
from kavach.server.oidc import accounts
from kavach.server.oidc.keys import IssuerKeys
from kavach.server.oidc.models import OidcLogin
from kavach.server.oidc.relying import RelyingParty
from kavach.server.settings import AuthSettings, OidcProvider

Purpose = Literal["browser", "device"]
BROWSER: Purpose = "browser"
DEVICE: Purpose = "device"


class SignInFailed(KavachError):
    """A sign-in that ends here: its trip is used up and its failure audited."""

    persist_changes = True

    def __init__(self, cause: KavachError) -> None:
        super().__init__(cause.message, data=cause.data)
        self.error_code = cause.error_code
        self.cause = cause


@dataclass(frozen=True)
class Trip:
    """Where to send the browser, and the state to remember in its cookie."""

    url: str
    state: str


@dataclass(frozen=True)
class Finished:
    """A finished sign-in: who, and what it was for."""

    user: User
    purpose: str
    user_code: str | None = None  # the CLI login it approved
    session_token: str | None = None  # the browser's session cookie
    session_ttl: int = 0
    return_to: str | None = None


@dataclass(frozen=True)
class OidcContext:
    """What the sign-in flows need of the server's runtime."""

    settings: AuthSettings
    issuers: IssuerKeys
    http: httpx.AsyncClient
    access_tokens: AccessTokens

    def party(self, name: str) -> RelyingParty:
        """Return the relying party of a configured provider, or 404."""
        provider = self.settings.oidc_provider(name)
        if provider is None:
            raise NotFound(f"no OpenID provider named {name!r} on this server")
        return RelyingParty(provider, self.issuers, self.http)


def callback_url(settings: AuthSettings, base_url: str, name: str) -> str:
    """Return where the provider sends the browser back to."""
    return f"{(settings.public_url or base_url).rstrip('/')}/oidc/{name}/callback"


def safe_return(path: str | None) -> str | None:
    """Keep a return address only if it is a path on this server (no open redirect).

    Browsers drop tabs and line breaks from an address before reading it (so `/\t/evil`
    would become `//evil`, another host): an address with any control character, space or
    backslash is refused, and what remains must name no scheme and no host.
    """
    if not path or len(path) > 512 or not path.startswith("/") or path.startswith("//"):
        return None
    if any(ch <= " " or ch in "\\\x7f" for ch in path):
        return None
    parts = urlsplit(path)
    return path if not (parts.scheme or parts.netloc) else None


async def start(
    context: OidcContext,
    session: AsyncSession,
    *,
    name: str,
    base_url: str,
    user_code: str | None,
    return_to: str | None,
) -> Trip:
    """Store a new trip through a provider and return where the browser goes."""
    party = context.party(name)
    device = None
    if user_code is not None:
        device, _shown = await approval.pending_login(session, user_code[:32])
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    # The provider's metadata first: a provider that is down leaves no trip behind.
    url = await party.authorization_url(
        redirect_uri=callback_url(context.settings, base_url, name),
        state=state,
        nonce=nonce,
        code_verifier=verifier,
    )
    session.add(
        OidcLogin(
            state_hash=token_hash(state),
            provider=party.provider.name,
            nonce=nonce,
            code_verifier=verifier,
            purpose=DEVICE if device is not None else BROWSER,
            device_authorization_id=device.id if device is not None else None,
            return_to=safe_return(return_to),
            expires_at=utcnow() + timedelta(seconds=context.settings.oidc_login_ttl_seconds),
        )
    )
    await session.flush()
    return Trip(url=url, state=state)


async def _consume(session: AsyncSession, name: str, state: str, cookie: str | None) -> OidcLogin:
    """Use up the trip a state names; refuse one that is unknown, used, expired or foreign."""
    now = utcnow()
    used = await session.scalar(
        update(OidcLogin)
        .where(
            OidcLogin.state_hash == token_hash(state),
            OidcLogin.provider == name,
            OidcLogin.used_at.is_(None),
            OidcLogin.expires_at > now,
        )
        .values(used_at=now)
        .returning(OidcLogin.id)
    )
    if used is None:
        raise StateRefused("this sign-in link is unknown, used or expired; start again")
    trip = await session.get(OidcLogin, used, populate_existing=True)
    if trip is None:  # pragma: no cover - the row was just updated in this transaction
        raise StateRefused("this sign-in link is unknown; start again")
    if cookie is None or not secrets.compare_digest(cookie, state):
        # Another browser than the one that started: a link someone was sent.
        raise StateRefused("this sign-in was started in another browser; start again here")
    return trip


async def finish(
    context: OidcContext,
    session: AsyncSession,
    *,
    name: str,
    base_url: str,
    state: str,
    code: str | None,
    error: str | None,
    cookie_state: str | None,
    origin: RequestOrigin,
) -> Finished:
    """Check the provider's answer, then sign the person in (or approve the CLI's login)."""
    party = context.party(name)
    provider = party.provider
    try:
        trip = await _consume(session, name, state, cookie_state)
        device = await _device_of(session, trip)
        if error is not None or not code:
            raise accounts.SignInRefused(
                f"{provider.label} did not sign you in ({(error or 'no code')[:64]})"
            )
        person = await party.sign_in(
            code=code,
            code_verifier=trip.code_verifier,
            redirect_uri=callback_url(context.settings, base_url, name),
            nonce=trip.nonce,
        )
        accounts.admit(provider, person)
        user = await accounts.user_for(session, provider, person, origin)
    except KavachError as cause:
        await _failed(session, origin, provider, cause)
        raise SignInFailed(cause) from None
    await accounts.sync_groups(session, provider, user, person, origin)
    if device is not None:
        return await _approve(session, device, user, provider, origin)
    return await _browser_session(context, session, user, provider, trip, origin)


async def _device_of(session: AsyncSession, trip: OidcLogin) -> DeviceAuthorization | None:
    if trip.device_authorization_id is None:
        return None
    device = await session.get(DeviceAuthorization, trip.device_authorization_id)
    if device is None or device.status != auth_service.PENDING or device.expires_at <= utcnow():
        raise NotFound("the CLI login this sign-in was for has ended; run `kavach login` again")
    return device


async def _approve(
    session: AsyncSession,
    device: DeviceAuthorization,
    user: User,
    provider: OidcProvider,
    origin: RequestOrigin,
) -> Finished:
    actor = Actor(type="user", id=user.id, label=user.login)
    shown = await approval.approve(
        session, device, user=user, actor=actor, origin=origin, via=provider.key
    )
    device.identity_provider = provider.key
    return Finished(user=user, purpose=DEVICE, user_code=shown)


async def _browser_session(
    context: OidcContext,
    session: AsyncSession,
    user: User,
    provider: OidcProvider,
    trip: OidcLogin,
    origin: RequestOrigin,
) -> Finished:
    opened = await open_browser_session(
        session,
        settings=context.settings,
        access_tokens=context.access_tokens,
        user=user,
        provider=provider.key,
        origin=origin,
    )
    return Finished(
        user=user,
        purpose=BROWSER,
        session_token=opened.token,
        session_ttl=opened.ttl,
        return_to=trip.return_to,
    )


async def _failed(
    session: AsyncSession, origin: RequestOrigin, provider: OidcProvider, cause: KavachError
) -> None:
    reason = getattr(cause, "reason", None) or cause.error_code
    await audit.record(
        session,
        actor=ANONYMOUS,
        action="auth.login",
        outcome="failure",
        origin=origin,
        details={"reason": str(reason), "identity_provider": provider.key},
    )
