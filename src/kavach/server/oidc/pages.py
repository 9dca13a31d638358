"""The browser's side of OpenID sign-in: the sign-in page, the trip out and the way back.

These pages write (a trip, a user, a session), so each opens its own transaction rather
than the request's read-only session, and commits only what `oidc.flows` says to keep.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kavach.server.auth.browser import start_session
from kavach.server.deps import OriginDep, RuntimeDep
from kavach.server.errors import KavachError, http_status_for
from kavach.server.oidc import flows
from kavach.server.ratelimit import client_key
from kavach.server.runtime import Runtime
from kavach.server.web import PAGE_HEADERS, page

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "kavach_oidc_state"


def context_of(runtime: Runtime) -> flows.OidcContext:
    """Return what the sign-in flows need of the runtime."""
    return flows.OidcContext(
        settings=runtime.settings.auth,
        issuers=runtime.oidc_issuers,
        http=runtime.http,
        access_tokens=runtime.access_tokens,
    )


def _secure(runtime: Runtime, request: Request) -> bool:
    public = runtime.settings.auth.public_url or ""
    return public.startswith("https://") or request.url.scheme == "https"


def _count(runtime: Runtime, name: str, outcome: str) -> None:
    """Count a sign-in that ended, under its provider (only configured names: bounded)."""
    if runtime.metrics is not None and runtime.settings.auth.oidc_provider(name) is not None:
        runtime.metrics.login(f"oidc:{name}", outcome)


def _status(error: KavachError) -> int:
    return http_status_for(error.cause if isinstance(error, flows.SignInFailed) else error)


def _error_page(error: KavachError) -> HTMLResponse:
    return page(
        "signin.html",
        status_code=_status(error),
        title="Sign-in failed",
        message=error.message,
        error_code=error.error_code,
    )


@router.get("/oidc/{name}/login")
async def go_to_provider(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    origin: OriginDep,
    user_code: str | None = None,
    return_to: str | None = None,
) -> Response:
    """Send the browser to the provider (for a browser session, or to approve a CLI login)."""
    try:
        await runtime.limiter.hit("oidc_login", client_key(origin.client_address))
        async with runtime.sessionmaker() as session, session.begin():
            trip = await flows.start(
                context_of(runtime),
                session,
                name=name,
                base_url=str(request.base_url),
                user_code=user_code,
                return_to=return_to,
            )
    except KavachError as error:
        return _error_page(error)
    response = RedirectResponse(trip.url, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        STATE_COOKIE,
        trip.state,
        max_age=runtime.settings.auth.oidc_login_ttl_seconds,
        path=f"/oidc/{name}/",
        secure=_secure(runtime, request),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/oidc/{name}/callback")
async def back_from_provider(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    origin: OriginDep,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
) -> Response:
    """Finish a sign-in: start a browser session, or approve the CLI login it was for."""
    try:
        await runtime.limiter.hit("oidc_login", client_key(origin.client_address))
        async with runtime.sessionmaker() as session:
            try:
                done = await flows.finish(
                    context_of(runtime),
                    session,
                    name=name,
                    base_url=str(request.base_url),
                    state=state[:256],
                    code=code[:2048] if code else None,
                    error=error,
                    cookie_state=request.cookies.get(STATE_COOKIE),
                    origin=origin,
                )
            except KavachError as failure:
                await (session.commit() if failure.persist_changes else session.rollback())
                raise
            await session.commit()
    except KavachError as failure:
        _count(runtime, name, failure.error_code)
        response: Response = _error_page(failure)
        response.delete_cookie(STATE_COOKIE, path=f"/oidc/{name}/")
        return response
    _count(runtime, name, "success")
    if done.session_token is None:
        response = page(
            "signin.html",
            title="Login approved",
            message=f"Signed in as {done.user.login}.",
            user_code=done.user_code,
        )
    else:
        response = RedirectResponse(done.return_to or "/", status_code=303, headers=PAGE_HEADERS)
        start_session(
            response,
            key=runtime.keys.jwt_signing_key,
            token=done.session_token,
            ttl=done.session_ttl,
            secure=_secure(runtime, request),
        )
    response.delete_cookie(STATE_COOKIE, path=f"/oidc/{name}/")
    return response
