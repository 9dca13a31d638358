"""The sign-in page: every way this server signs a browser in, and signing in by a code.

OpenID providers send the browser out and back (`oidc.pages`). GitHub's device flow and
local approval sign a browser in by a code, as they sign the CLI in: the page shows the
code, the person approves it (at GitHub, or from a terminal already signed in as them), and
the page, asking every few seconds, receives its session. The device code stays in an
HttpOnly cookie scoped to these paths, so only the browser that asked can collect it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kavach.server.auth import flows
from kavach.server.auth.browser import start_session
from kavach.server.dashboard.pages import HEADERS, STATIC
from kavach.server.deps import OriginDep, RuntimeDep
from kavach.server.errors import DeviceFlowError, KavachError, NotFound, http_status_for
from kavach.server.oidc.flows import safe_return
from kavach.server.ratelimit import client_key
from kavach.server.runtime import Runtime
from kavach.server.settings import AuthSettings, OidcProvider
from kavach.server.web import render

router = APIRouter(include_in_schema=False)
CODE_PATH = "/login/code"
CODE_COOKIE = "kavach_sign_in_code"
HOME = "/ui/"
_STILL_WAITING = ("authorization_pending", "slow_down")
_MIN_WAIT, _MAX_WAIT = 2, 60  # seconds between two asks of the waiting page


@dataclass(frozen=True)
class Ways:
    """The ways this server signs a browser in."""

    providers: tuple[OidcProvider, ...]
    github: bool  # a code approved at GitHub
    approval: bool  # a code approved from a signed-in terminal or on the server's machine

    @property
    def any(self) -> bool:
        """Say whether there is at least one."""
        return bool(self.providers) or self.github or self.approval


def ways_of(settings: AuthSettings) -> Ways:
    """Return the ways to sign in that the settings enable (as the CLI's login has them)."""
    return Ways(
        providers=tuple(settings.oidc_providers),
        github=settings.identity_provider == "github" and not settings.oidc_providers,
        approval=settings.server_device_flow and settings.local_idp_enabled,
    )


def _page(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = render(template, static=STATIC, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _secure(runtime: Runtime, request: Request) -> bool:
    public = runtime.settings.auth.public_url or ""
    return public.startswith("https://") or request.url.scheme == "https"


@router.get("/login", response_class=HTMLResponse)
async def sign_in_page(runtime: RuntimeDep, return_to: str = "") -> HTMLResponse:
    """List the ways to sign in."""
    ways = ways_of(runtime.settings.auth)
    return _page(
        "dashboard/sign_in.html",
        status_code=200 if ways.any else 404,
        title="Sign in to Kavach",
        ways=ways,
        return_to=safe_return(return_to),
    )


def _waiting(return_to: str | None, seconds: object, **more: Any) -> dict[str, Any]:
    """What the waiting part of the page needs: where to ask next, and when."""
    wait = seconds if isinstance(seconds, int) else _MIN_WAIT
    query = urlencode({"return_to": return_to}) if return_to else ""
    return {
        "wait_url": f"{CODE_PATH}/wait" + (f"?{query}" if query else ""),
        "wait_seconds": min(max(wait, _MIN_WAIT), _MAX_WAIT),
        **more,
    }


@router.post(CODE_PATH, response_class=HTMLResponse)
async def start_code_sign_in(
    request: Request, runtime: RuntimeDep, origin: OriginDep
) -> HTMLResponse:
    """Start a sign-in by code: show the code and how to approve it."""
    form = await request.form()
    return_to = safe_return(str(form.get("return_to") or ""))
    ways = ways_of(runtime.settings.auth)
    context: dict[str, Any] = {"title": "Sign in with a code", "ways": ways}
    try:
        if not (ways.github or ways.approval):
            raise NotFound("this server signs nobody in by a code")
        await runtime.limiter.hit("device_code", client_key(origin.client_address))
        async with runtime.sessionmaker() as session, session.begin():
            started = await flows.start_device_flow(
                runtime, session, origin=origin, base_url=str(request.base_url)
            )
    except KavachError as error:
        return _page(
            "dashboard/sign_in.html",
            status_code=http_status_for(error),
            problem=error.message,
            return_to=return_to,
            **context,
        )
    response = _page(
        "dashboard/sign_in.html",
        started=started,
        return_to=return_to,
        **_waiting(return_to, started.interval),
        **context,
    )
    response.set_cookie(
        CODE_COOKIE,
        started.device_code,
        max_age=started.expires_in,
        path=CODE_PATH,
        secure=_secure(runtime, request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get(f"{CODE_PATH}/wait", response_class=HTMLResponse)
async def collect_code_sign_in(
    request: Request, runtime: RuntimeDep, origin: OriginDep, return_to: str = ""
) -> Response:
    """Ask once whether the code was approved: the session if so, else wait or say why not."""
    back = safe_return(return_to)
    device_code = request.cookies.get(CODE_COOKIE)
    try:
        if not device_code:
            raise DeviceFlowError("invalid_grant", "this sign-in has ended; start again")
        await runtime.limiter.hit("device_token", client_key(origin.client_address))
        async with runtime.sessionmaker() as session:
            try:
                opened = await flows.browser_sign_in(
                    runtime, session, device_code=device_code[:256], origin=origin
                )
            except KavachError as failure:
                # A poll's bookkeeping (and a failed login's audit event) is kept.
                await (session.commit() if failure.persist_changes else session.rollback())
                raise
            await session.commit()
    except KavachError as error:
        data = error.data or {}
        if error.error_code in _STILL_WAITING:
            return _page("dashboard/sign_in_wait.html", **_waiting(back, data.get("interval")))
        response: Response = _page(
            "dashboard/sign_in_wait.html", problem=error.message, error_code=error.error_code
        )
        response.delete_cookie(CODE_COOKIE, path=CODE_PATH)
        return response
    response = Response(status_code=204, headers={"HX-Redirect": back or HOME, **HEADERS})
    start_session(
        response,
        key=runtime.keys.jwt_signing_key,
        token=opened.token,
        ttl=opened.ttl,
        secure=_secure(runtime, request),
    )
    response.delete_cookie(CODE_COOKIE, path=CODE_PATH)
    return response
