"""`kavach secret get/export`: values out, exactly as stored."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kavach.cli import actions, render, secrets_api
from kavach.cli.app import get_app
from kavach.cli.errors import CliError, NotFound
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    VersionOption,
    command_group,
)
from kavach.cli.safe_text import neutralize
from kavach.cli.target import resolve_target
from kavach.formats.common import FormatError, is_secret_name

app = command_group()
PANEL = "Reading"

NameArgument = Annotated[str, typer.Argument(help="The secret's name.", show_default=False)]
ExportFormat = Annotated[
    str,
    typer.Option("--format", help="dotenv, json, yaml or shell (`export NAME='…'` lines)."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Write to FILE (mode 0600) instead of stdout.", metavar="FILE"
    ),
]
ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite the --output file.")]


@app.command(rich_help_panel=PANEL)
def get(
    ctx: typer.Context,
    name: NameArgument,
    version: VersionOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Print one secret's value exactly (on a terminal: escaped control characters, a newline)."""
    cli = get_app(ctx, json=json)
    if not is_secret_name(name):
        raise CliError(f"{name!r} is not a valid secret name")
    target = resolve_target(cli, org, group, env)
    summary, values = secrets_api.read(cli.client, target, secrets_api.optional_version_id(version))
    if name not in values:
        raise NotFound(f"{name} is not set in {target.label} ({secrets_api.label(summary)})")
    if cli.json:
        render.print_json({"name": name, "value": values[name], "version": summary})
        return
    terminal = cli.stdout_is_terminal()
    write_stdout(values[name] + ("\n" if terminal else ""), terminal=terminal)


def write_stdout(text: str, *, terminal: bool) -> None:
    """Write `text` to stdout as UTF-8, byte for byte (no newline translation).

    On a terminal, characters it would act on are shown escaped instead (safe_text): a
    person reads it there, and a value must not be able to rewrite their screen.
    """
    if terminal:
        text = neutralize(text)
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        sys.stdout.flush()
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


EXPORT_HELP = (
    "Print the secrets (or write them to a 0600 file) as dotenv, JSON, YAML or shell.\n\n"
    "dotenv values are quoted so that python-dotenv and bash (`set -a; . ./FILE`) read every "
    "one back exactly; values no quoting carries for both (a carriage return, or a $ or ` "
    "together with a ', \\\\ or trailing \\) are refused by name: use json, yaml or shell "
    "(`export NAME='…'` lines, safe to eval) for those."
)


@app.command(help=EXPORT_HELP, rich_help_panel=PANEL)
def export(
    ctx: typer.Context,
    fmt: ExportFormat = "dotenv",
    output: OutputOption = None,
    force: ForceFlag = False,
    version: VersionOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
) -> None:
    """Print the secrets (or write them to a 0600 file) as dotenv, JSON, YAML or shell."""
    from kavach.formats import codec

    cli = get_app(ctx)
    if fmt not in codec.FORMATS:
        raise CliError(f"--format must be one of {', '.join(codec.FORMATS)}")
    if force and output is None:
        raise CliError("--force goes with --output")
    target = resolve_target(cli, org, group, env)
    summary, values = secrets_api.read(cli.client, target, secrets_api.optional_version_id(version))
    try:
        text = codec.render(values, fmt)
    except FormatError as exc:
        raise CliError(str(exc)) from None
    if fmt == "dotenv":
        from kavach.formats.dotenv import expanding_names

        expanding = expanding_names(values)
        if expanding:
            render.warn(
                cli,
                f"the values of {', '.join(expanding)} contain ${{…}}, which python-dotenv "
                "expands unless read with interpolate=False (bash does not expand them).",
            )
    if output is None:
        write_stdout(text, terminal=cli.stdout_is_terminal())
        return
    from kavach.cli.files import write_private

    write_private(output, text, force=force)
    where = f"{target.label} ({secrets_api.label(summary)})"
    actions.say(
        cli,
        {"path": str(output), "format": fmt, "count": len(values), "version": summary},
        f"Wrote {len(values)} secret(s) of {where} to {output} (mode 0600).",
    )
