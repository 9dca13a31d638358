"""The interactive API docs, whole from this server: Swagger UI's files, no CDN, no inline
script, so the page works with no internet under a policy of `script-src 'self'`."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from kavach.server.web import render

DOCS_PATH = "/api/v1/docs"
STATIC_PATH = "/static/kavach"  # the page's own script
SWAGGER_UI_PATH = "/static/swagger-ui"  # Swagger UI's script and style sheet

router = APIRouter(include_in_schema=False)


def swagger_ui_files() -> Path:
    """Return the directory of Swagger UI's files, as the fastapi-offline package ships them."""
    return Path(str(files("fastapi_offline") / "static"))


@router.get(DOCS_PATH, response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Show Swagger UI on this server's OpenAPI description."""
    root = request.scope.get("root_path", "")
    html = render(
        "docs.html",
        openapi_url=root + (request.app.openapi_url or ""),
        static_url=root + STATIC_PATH,
        swagger_ui_url=root + SWAGGER_UI_PATH,
    )
    return HTMLResponse(html)  # its policy comes from security_headers (DOCS_CSP)


def install_api_docs(app: FastAPI) -> None:
    """Serve the docs page and the files it loads."""
    app.include_router(router)
    app.mount(SWAGGER_UI_PATH, StaticFiles(directory=swagger_ui_files()), name="swagger-ui")
    app.mount(STATIC_PATH, StaticFiles(packages=[("kavach.server", "static")]), name="static")
