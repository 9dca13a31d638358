"""The local identity provider's verification page: enter a code, approve or deny."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from kavach.server.audit import service as audit
from kavach.server.auth import flows
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.errors import KavachError, NotFound, RateLimited
from kavach.server.runtime import Runtime

router = APIRouter(include_in_schema=False)
CSRF_COOKIE = "kavach_device_csrf"
_templates = Environment(
    loader=PackageLoader("kavach.server", "templates"), autoescape=select_autoescape(["html"])
)
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _sign(runtime: Runtime, nonce: str) -> str:
    mac = hmac.new(runtime.keys.jwt_signing_key, b"device-csrf:" + nonce.encode(), hashlib.sha256)
    return f"{nonce}.{mac.hexdigest()}"


def _csrf_valid(runtime: Runtime, cookie: str | None, submitted: str) -> bool:
    if not cookie or not hmac.compare_digest(cookie, submitted):
        return False
    nonce, _, _mac = submitted.partition(".")
    return hmac.compare_digest(_sign(runtime, nonce), submitted)


def _page(
    runtime: Runtime,
    *,
    status: int = 200,
    message: str | None = None,
    kind: str = "error",
    show_form: bool = True,
    user_code: str = "",
    login: str = "",
) -> HTMLResponse:
    token = _sign(runtime, secrets.token_urlsafe(16))
    html = _templates.get_template("device.html").render(
        message=message,
        message_kind=kind,
        show_form=show_form,
        csrf_token=token,
        user_code=user_code,
        login=login,
    )
    response = HTMLResponse(html, status_code=status, headers=_HEADERS)
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", path="/device", max_age=3600
    )
    return response


def _refusal(runtime: Runtime, origin: OriginDep) -> HTMLResponse | None:
    """Return a refusal page when the local provider is off or the caller is not allowed."""
    auth = runtime.settings.auth
    if not auth.local_idp_enabled:
        return _page(
            runtime, status=404, message="This server does not use local logins.", show_form=False
        )
    if auth.device_page_allow_remote:
        return None
    try:
        loopback = ipaddress.ip_address(origin.client_address or "").is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return _page(
        runtime,
        status=403,
        message="Approvals are accepted only from this machine (KAVACH_DEVICE_PAGE_ALLOW_REMOTE).",
        show_form=False,
    )


@router.get("/device", response_class=HTMLResponse)
async def device_form(runtime: RuntimeDep, origin: OriginDep, user_code: str = "") -> HTMLResponse:
    """Show the approval form."""
    return _refusal(runtime, origin) or _page(runtime, user_code=user_code[:16])


@router.post("/device", response_class=HTMLResponse)
async def device_decide(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
    user_code: Annotated[str, Form(max_length=32)],
    action: Annotated[str, Form(pattern="^(approve|deny)$")],
    csrf_token: Annotated[str, Form(max_length=256)],
    login: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse:
    """Approve or deny the login a user code names."""
    refused = _refusal(runtime, origin)
    if refused is not None:
        return refused
    if not _csrf_valid(runtime, request.cookies.get(CSRF_COOKIE), csrf_token):
        return _page(
            runtime,
            status=403,
            message="The form expired; try again.",
            user_code=user_code,
            login=login,
        )
    try:
        await runtime.limiter.hit("device_approve", origin.client_address or "unknown")
        shown = await flows.decide_device_authorization(
            session,
            user_code=user_code,
            approve=action == "approve",
            login=login,
            actor=audit.Actor(type="device_page", label=login or None),
            origin=origin,
        )
    except RateLimited as error:
        return _page(runtime, status=429, message=f"Too many attempts; wait {error.retry_after} s.")
    except NotFound:
        return _page(
            runtime,
            status=404,
            message="That code is unknown, used or expired.",
            user_code=user_code,
            login=login,
        )
    except KavachError as error:
        return _page(runtime, status=422, message=error.message, user_code=user_code, login=login)
    verb = "approved" if action == "approve" else "denied"
    return _page(
        runtime,
        message=f"Login {shown} {verb}. You can close this page.",
        kind="done",
        show_form=False,
    )
