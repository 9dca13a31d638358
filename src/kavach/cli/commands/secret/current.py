"""`kavach secrets` (and `kavach secret ls`): the environment's secrets as they are now."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import render, secrets_api
from kavach.cli.app import get_app
from kavach.cli.commands.secret.values import write_stdout
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    RevealFlag,
    VersionOption,
    command_group,
)
from kavach.cli.target import resolve_target

app = command_group()
PANEL = "Reading"
COLUMNS = [("name", "Name"), ("value", "Value")]

PlainFlag = Annotated[
    bool,
    typer.Option(
        "--plain", help="Names only, one a line (with --reveal: NAME=value lines), no table."
    ),
]


def show_secrets(
    ctx: typer.Context,
    version: str | None,
    reveal: bool,
    plain: bool,
    where: tuple[str | None, str | None, str | None],
    json: bool,
) -> None:
    """Print the secrets of the latest version (or `version`): names, values masked."""
    cli = get_app(ctx, json=json)
    checked = secrets_api.optional_version_id(version)
    target = resolve_target(cli, *where)
    summary, values = secrets_api.read(cli.client, target, checked, resolve=True)
    if cli.json:
        shown = {name: (value if reveal else None) for name, value in values.items()}
        render.print_json({"version": summary, "secrets": shown})
        return
    if summary is None:
        render.note(cli, f"{target.label} has no versions yet.")
        return
    if plain:
        lines = (f"{name}={value}" if reveal else name for name, value in values.items())
        write_stdout("".join(f"{line}\n" for line in lines), terminal=cli.stdout_is_terminal())
        return
    rows = [{"name": n, "value": render.mask(v, reveal=reveal)} for n, v in values.items()]
    title = f"Secrets of {target.label} at {secrets_api.label(summary)}"
    render.table(cli, rows, COLUMNS, title=title, empty=f"No secrets in {title[11:]}.")


@app.command("ls", rich_help_panel=PANEL)
def ls(
    ctx: typer.Context,
    version: VersionOption = None,
    reveal: RevealFlag = False,
    plain: PlainFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show the secrets now (or of --version): names, values masked unless --reveal."""
    show_secrets(ctx, version, reveal, plain, (org, group, env), json)


root = command_group()


@root.command("secrets", rich_help_panel="Secrets")
def secrets(
    ctx: typer.Context,
    version: VersionOption = None,
    reveal: RevealFlag = False,
    plain: PlainFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show the environment's secrets now (or of --version), values masked unless --reveal."""
    show_secrets(ctx, version, reveal, plain, (org, group, env), json)
