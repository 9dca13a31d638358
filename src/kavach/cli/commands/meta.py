"""`kavach version` and `kavach info`: about this CLI and the server it talks to."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from kavach import __version__
from kavach.cli import render
from kavach.cli.app import get_app
from kavach.cli.errors import ExitCode
from kavach.cli.options import JsonFlag, command_group

app = command_group()
PANEL = "About"

ShortFlag = Annotated[bool, typer.Option("--short", help="Print only the version number.")]


@app.command(rich_help_panel=PANEL)
def version(ctx: typer.Context, short: ShortFlag = False, json: JsonFlag = False) -> None:
    """Show the version of this command-line tool."""
    cli = get_app(ctx, json=json)
    if short and not cli.json:
        typer.echo(__version__)
        return
    python = ".".join(str(part) for part in sys.version_info[:3])
    render.output(
        cli,
        {"version": __version__, "python": python},
        lambda: typer.echo(f"kavach {__version__} (Python {python})"),
    )


@app.command(rich_help_panel=PANEL)
def info(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Show the server's version, identity provider, mode and health."""
    cli = get_app(ctx, json=json)
    url = cli.server_url()
    client = cli.client
    answer = client.get("/info", auth=False)
    about: dict[str, Any] = answer if isinstance(answer, dict) else {}
    code, body = client.health()
    reported = body.get("status") if isinstance(body, dict) else None
    healthy = code == 200 and reported == "ok"
    data = {
        "server": url,
        "version": about.get("version"),
        "identity_provider": about.get("identity_provider"),
        "mode": about.get("mode"),
        "health": {"ok": healthy, "status": reported, "http_status": code},
    }
    health = "ok" if healthy else f"unhealthy ({reported or 'no status'}, HTTP {code})"
    render.output(
        cli,
        data,
        lambda: render.fields(
            cli,
            [
                ("Server", url),
                ("Server version", data["version"]),
                ("Identity provider", data["identity_provider"]),
                ("Mode", data["mode"]),
                ("Health", health),
            ],
        ),
    )
    if not healthy:
        # Scripts can gate on `kavach info`: an unhealthy server is a server error.
        raise typer.Exit(ExitCode.SERVER)
