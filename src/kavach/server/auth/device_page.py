"""The local identity provider's verification page: shows the code and how to approve it.

The page decides nothing. Approving a login needs proof of who it is for (a signed-in
user's own token, or the server's database), which an anonymous page cannot give, and
network position is no proof: a proxy can make any caller look local.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from kavach.server.auth.usercodes import format_user_code, normalize_user_code
from kavach.server.deps import RuntimeDep

router = APIRouter(include_in_schema=False)
_templates = Environment(
    loader=PackageLoader("kavach.server", "templates"), autoescape=select_autoescape(["html"])
)
_HEADERS = {
    # No scripts, no forms: the page only shows text.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


@router.get("/device", response_class=HTMLResponse)
async def device_instructions(runtime: RuntimeDep, user_code: str = "") -> HTMLResponse:
    """Show the login code and the two ways to approve it."""
    auth = runtime.settings.auth
    if auth.identity_provider != "local" or not auth.local_idp_enabled:
        html = _templates.get_template("device.html").render(local=False, user_code="")
        return HTMLResponse(html, status_code=404, headers=_HEADERS)
    # Only a well-formed code is echoed back; anything else shows the placeholder.
    code = normalize_user_code(user_code[:32])
    shown = format_user_code(code) if code else "CODE"
    html = _templates.get_template("device.html").render(local=True, user_code=shown)
    return HTMLResponse(html, headers=_HEADERS)
