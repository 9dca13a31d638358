"""Rendering the dashboard: its layout's context, its security headers, its fragments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from kavach.server.access import Access
from kavach.server.auth.browser import SESSION_COOKIE, csrf_token
from kavach.server.deps import runtime_of
from kavach.server.web import render

STATIC = "/static/kavach"
# Scripts and styles from this server only (htmx, the style sheet), nothing inline, no
# other host; forms and requests go back to this server only.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": DASHBOARD_CSP,
    "Cache-Control": "no-store",  # pages may show values; never keep them
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Crumb:
    """A step of the breadcrumb: a name and where it leads."""

    name: str
    url: str


@dataclass(frozen=True)
class Row:
    """A resource in a listing: its name, the caller's role on it and its page."""

    name: str
    role: str | None
    url: str
    description: str | None


def row_of(resource: Any, role: str | None, url: str) -> Row:
    """Describe a listed organization, secret group or environment."""
    return Row(name=resource.name, role=role, url=url, description=resource.description)


def page(
    request: Request, access: Access, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a whole page in the layout, for the signed-in user of `access`."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    key = runtime_of(request).keys.jwt_signing_key
    context.setdefault("crumbs", [])
    html = render(
        template,
        user=access.user.user,
        csrf=csrf_token(key, cookie) if cookie else "",
        static=STATIC,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def fragment(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a part of a page, for htmx to swap in."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=HEADERS)
