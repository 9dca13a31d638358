"""The verification page of logins this server runs: the code, and how to approve it.

With OpenID providers, it links to each: signing in there approves the code for whoever
signed in (oidc.flows). The page itself decides nothing: approving a login needs proof of
who it is for (a signed-in user's own token, a provider's sign-in, or the server's
database), which an anonymous page cannot give, and network position is no proof: a proxy
can make any caller look local.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kavach.server.auth.usercodes import format_user_code, normalize_user_code
from kavach.server.deps import RuntimeDep
from kavach.server.web import page

router = APIRouter(include_in_schema=False)


@router.get("/device", response_class=HTMLResponse)
async def device_instructions(runtime: RuntimeDep, user_code: str = "") -> HTMLResponse:
    """Show the login code and the two ways to approve it."""
    auth = runtime.settings.auth
    if not auth.server_device_flow:
        return page("device.html", status_code=404, local=False, user_code="")
    # Only a well-formed code is echoed back; anything else shows the placeholder.
    code = normalize_user_code(user_code[:32])
    shown = format_user_code(code) if code else "CODE"
    return page(
        "device.html",
        local=True,
        user_code=shown,
        has_code=code is not None,
        providers=auth.oidc_providers,
        approvals=auth.local_idp_enabled or not auth.oidc_providers,
    )
