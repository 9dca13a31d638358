"""What the server's HTML pages share: their templates and their security headers."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

_templates = Environment(
    loader=PackageLoader("kavach.server", "templates"), autoescape=select_autoescape(["html"])
)
PAGE_HEADERS = {
    # No scripts, no forms, no outside resources: these pages only show text.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def render(template: str, **context: Any) -> str:
    """Return a template rendered with `context` (values are HTML-escaped)."""
    return _templates.get_template(template).render(**context)


def page(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Return a text-only page with the pages' security headers."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=PAGE_HEADERS)
