"""The root page: what this server is, and links to the API docs and the login page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kavach import __version__
from kavach.server.api_docs import DOCS_PATH
from kavach.server.deps import RuntimeDep
from kavach.server.web import page

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Show what this server is and where to go from here."""
    auth = runtime.settings.auth
    root = request.scope.get("root_path", "")
    return page(
        "home.html",
        version=__version__,
        docs_url=root + DOCS_PATH,
        openapi_url=root + (request.app.openapi_url or ""),
        device_url=root + "/device",
        local=auth.server_device_flow,
        signin_url=root + "/login" if auth.oidc_providers else None,
        # The URL logins are told to use (as in verification_uri), not the Host header alone.
        server_url=(auth.public_url or str(request.base_url)).rstrip("/"),
    )
