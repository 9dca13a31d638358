"""`kavach setup`: write `.kavach.yaml`, the context of this directory and those below it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kavach.cli import actions, render
from kavach.cli.app import get_app
from kavach.cli.context import resolve_env
from kavach.cli.errors import CliError
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, command_group
from kavach.cli.project import PROJECT_FILE

app = command_group()

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Also name the server for this directory.", metavar="URL"),
]
NoCheckFlag = Annotated[
    bool,
    typer.Option("--no-check", help="Write the names without looking them up on the server."),
]

HEADER = (
    "# Kavach: commands run in this directory or below it use this context, unless\n"
    "# --org/--group/--env or KAVACH_ORG/KAVACH_GROUP/KAVACH_ENV say otherwise.\n"
    "# No token belongs here: use `kavach login` or KAVACH_TOKEN.\n"
)


@app.command(rich_help_panel="Session")
def setup(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    server: ServerOption = None,
    no_check: NoCheckFlag = False,
    json: JsonFlag = False,
) -> None:
    """Write .kavach.yaml here: the org, group and env (and server) used in this directory."""
    import yaml

    from kavach.cli.config import atomic_write, normalize_server
    from kavach.cli.resources import load_env

    cli = get_app(ctx, json=json)
    url = normalize_server(server) if server else None
    ref = resolve_env(cli.context, org, group, env)
    if not no_check:
        load_env(cli.client if url is None else cli.make_client(cli.session(url)), ref)
    values = {"org": ref.organization, "group": ref.secret_group, "env": ref.environment}
    if url is not None:
        values["server"] = url
    path = Path.cwd() / PROJECT_FILE
    if path.is_dir():
        raise CliError(f"{path} is a directory")
    existed = path.exists()
    text = HEADER + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    # A project file is meant to be shared with the code (it holds names, never a secret).
    atomic_write(path, text, mode=0o644, private_dir=False)
    where = f"{ref.organization}/{ref.secret_group}/{ref.environment}"
    verb = "Updated" if existed else "Wrote"
    actions.say(cli, {"path": str(path), **values}, f"{verb} {path}: {where}.")
    if no_check:
        render.note(cli, "The names were not checked on the server (--no-check).")
