"""`kavach secret get/export`: values out, exactly as stored."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kavach.cli import actions, completion, render, secrets_api
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
from kavach.formats.common import (
    NAME_RULE,
    FormatError,
    Unrepresentable,
    is_secret_name,
)

app = command_group()
PANEL = "Reading"

NameArgument = Annotated[
    str,
    typer.Argument(
        help="The secret's name.", show_default=False, autocompletion=completion.secrets
    ),
]
ExportFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="dotenv, json, yaml or shell (`export NAME='…'` lines); default: from the "
        "--output file's extension, else dotenv.",
        metavar="FORMAT",
        show_default=False,
        autocompletion=completion.formats,
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to FILE (mode 0600) instead of stdout; its extension (.env, .json, .yaml, "
        ".yml, .sh) picks the format.",
        metavar="FILE",
    ),
]
ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite the --output file.")]
RawFlag = Annotated[
    bool,
    typer.Option("--raw", help="The stored text: references such as ${shared.NAME} unresolved."),
]
SkipInvalidFlag = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Leave out the secrets the format cannot carry (named on stderr) and export the rest.",
    ),
]


@app.command(rich_help_panel=PANEL)
def get(
    ctx: typer.Context,
    name: NameArgument,
    version: VersionOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
    raw: RawFlag = False,
) -> None:
    """Print one secret's value exactly (on a terminal: escaped control characters, a newline)."""
    cli = get_app(ctx, json=json)
    if not is_secret_name(name):
        raise CliError(f"{name!r} is not a valid secret name: {NAME_RULE}")
    target = resolve_target(cli, org, group, env)
    wanted = secrets_api.optional_version_id(version)
    summary, values = secrets_api.read(cli.client, target, wanted, resolve=not raw)
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
    "With -o FILE the format comes from FILE's extension: .env (also .env.local and the like), "
    ".json, .yaml or .yml, .sh; a --format that disagrees is refused.\n\n"
    "dotenv values are quoted so that python-dotenv and bash (`set -a; . ./FILE`) read every "
    "one back exactly. dotenv cannot carry a name that is not a shell variable name (a . or -), "
    "a carriage return, a NUL, or a $ or ` together with a ', \\\\ or trailing \\; such "
    "secrets are refused by name, with a format that carries them all. --skip-invalid exports "
    "the others instead."
)

# What to suggest when a format cannot carry some secrets, in order of preference: shell
# is sourced like dotenv, JSON carries any text, YAML is the last resort.
ALTERNATIVES = ("shell", "json", "yaml")


def export_format(fmt: str | None, output: Path | None) -> str:
    """Return the format to export in: --format, else the --output file's extension."""
    from kavach.formats import codec

    if fmt is not None and fmt not in codec.FORMATS:
        raise CliError(f"--format must be one of {', '.join(codec.FORMATS)}")
    named = codec.output_format(output.name) if output is not None else None
    if output is None or (fmt is not None and named is None):
        return fmt or "dotenv"
    if named is None:
        raise CliError(
            f"cannot tell the format from the name {output.name}: name the file .env, .json, "
            f".yaml, .yml or .sh, or give --format ({', '.join(codec.FORMATS)})"
        )
    if fmt is not None and fmt != named:
        raise CliError(
            f"--format {fmt} does not match {output.name}, which names a {named} file: "
            "drop --format, or give the file a matching extension"
        )
    return named


def _advice(values: dict[str, str], fmt: str, output: Path | None) -> str:
    """Say which formats carry every secret: as a file extension when -o names one."""
    from kavach.formats import codec

    working = codec.carriers(values, tuple(f for f in ALTERNATIVES if f != fmt))
    skip = "--skip-invalid exports the others"
    if not working:
        return skip
    if output is not None and codec.output_format(output.name) is not None:
        extension = {"shell": ".sh", "json": ".json", "yaml": ".yaml"}
        first, others = f"a {extension[working[0]]} file", [extension[f] for f in working[1:]]
    else:
        first, others = f"--format {working[0]}", working[1:]
    also = f" (so {'do' if len(others) > 1 else 'does'} {' and '.join(others)})" if others else ""
    return f"{first} carries them all{also}; {skip}"


def _render(values: dict[str, str], fmt: str) -> str:
    from kavach.formats import codec

    try:
        return codec.render(values, fmt)
    except FormatError as exc:
        raise CliError(str(exc)) from None


@app.command(help=EXPORT_HELP, rich_help_panel=PANEL)
def export(
    ctx: typer.Context,
    fmt: ExportFormat = None,
    output: OutputOption = None,
    force: ForceFlag = False,
    skip_invalid: SkipInvalidFlag = False,
    version: VersionOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    raw: RawFlag = False,
) -> None:
    """Print the secrets (or write them to a 0600 file) as dotenv, JSON, YAML or shell."""
    from kavach.formats import codec

    cli = get_app(ctx)
    if force and output is None:
        raise CliError("--force goes with --output")
    chosen = export_format(fmt, output)
    target = resolve_target(cli, org, group, env)
    wanted = secrets_api.optional_version_id(version)
    summary, values = secrets_api.read(cli.client, target, wanted, resolve=not raw)
    skipped: list[str] = []
    try:
        text = codec.render(values, chosen)
    except Unrepresentable as exc:
        if not skip_invalid:
            raise CliError(f"{exc}; {_advice(values, chosen, output)}") from None
        skipped = list(exc.refused)
        render.warn(cli, f"left out {len(skipped)} secret(s) (--skip-invalid): {exc.details}")
        values = {name: value for name, value in values.items() if name not in exc.refused}
        text = _render(values, chosen)
    except FormatError as exc:
        raise CliError(str(exc)) from None
    if chosen == "dotenv":
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
    data = {
        "path": str(output),
        "format": chosen,
        "count": len(values),
        "skipped": skipped,
        "version": summary,
    }
    actions.say(cli, data, f"Wrote {len(values)} secret(s) of {where} to {output} (mode 0600).")
