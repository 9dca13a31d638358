"""What `secret add` and `secret push` read: NAME=VALUE pairs, stdin, or a secrets file.

Values from stdin are taken byte for byte: a trailing newline stays part of the value unless
--strip-newline, which drops exactly one `\\n`. Arguments that fail are named by position,
never echoed: a mistyped NAME=VALUE may carry the value.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import completion, limits, render
from kavach.cli.app import App
from kavach.cli.errors import CliError
from kavach.formats.common import NAME_RULE, FormatError, is_secret_name

PairsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="NAME=VALUE pairs; with --stdin, the one NAME.",
        metavar="NAME=VALUE...",
        show_default=False,
    ),
]
FromFileOption = Annotated[
    str | None,
    typer.Option(
        "--from-file",
        "-f",
        help="Stage every NAME=value of a dotenv, JSON or YAML file (`-`: stdin).",
        metavar="FILE",
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Format of --from-file: dotenv, json or yaml (default: from the file name).",
        metavar="FORMAT",
        autocompletion=completion.input_formats,
    ),
]
StdinFlag = Annotated[
    bool, typer.Option("--stdin", help="Read NAME's value from stdin, byte for byte.")
]
StripFlag = Annotated[
    bool,
    typer.Option(
        "--strip-newline", help="With --stdin: drop ONE trailing newline (\\n) from the value."
    ),
]


def check_name(name: str, position: int) -> str:
    if not is_secret_name(name):
        # The argument is not echoed: a mistyped NAME=VALUE may have the value in front.
        raise CliError(f"argument {position}: not a valid secret name ({NAME_RULE})")
    return name


def _pairs(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        name, equals, value = pair.partition("=")
        if not equals:
            raise CliError(f"argument {position} is not NAME=VALUE (or use NAME --stdin)")
        found[check_name(name, position)] = value
    return found


def _from_stdin(pairs: list[str], strip_newline: bool, cli: App) -> dict[str, str]:
    from kavach.cli.files import read_stdin_bytes

    if len(pairs) != 1 or "=" in pairs[0]:
        raise CliError("--stdin takes exactly one NAME (without =VALUE)")
    name = check_name(pairs[0], 1)
    try:
        value = read_stdin_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CliError("the value on stdin is not UTF-8 text") from None
    if strip_newline and value.endswith("\n"):
        value = value[:-1]
    elif value.endswith("\n"):
        render.note(cli, f"Note: {name}'s value ends with a newline; --strip-newline drops it.")
    return {name: value}


def read_secrets_file(path: str, fmt: str | None) -> dict[str, str]:
    """Return the secrets in file `path` (`-`: stdin), read as `fmt` or as its name says."""
    from kavach.cli.files import read_text
    from kavach.formats import codec

    chosen = fmt or codec.guess_format(path)
    if chosen not in codec.INPUT_FORMATS:
        raise CliError(f"--format must be one of {', '.join(codec.INPUT_FORMATS)}")
    text = read_text(path)
    try:
        return codec.parse(text, chosen)
    except FormatError as exc:
        raise CliError(f"{path}: {exc}") from None


def values_to_stage(
    cli: App,
    pairs: list[str],
    from_file: str | None,
    fmt: str | None,
    stdin: bool,
    strip_newline: bool,
) -> dict[str, str]:
    """Return the NAME=VALUE pairs `secret add` was given, by whichever means."""
    if sum((bool(pairs) and not stdin, from_file is not None, stdin)) != 1:
        raise CliError("give NAME=VALUE pairs, --from-file FILE, or NAME --stdin (one of them)")
    if fmt is not None and from_file is None:
        raise CliError("--format goes with --from-file")
    if strip_newline and not stdin:
        raise CliError("--strip-newline goes with --stdin")
    if stdin:
        found = _from_stdin(pairs, strip_newline, cli)
    elif from_file is not None:
        found = read_secrets_file(from_file, fmt)
        if not found:
            raise CliError(f"{from_file} holds no secrets")
    else:
        found = _pairs(pairs)
    # A value the server will never take is refused now, not at commit time.
    limits.check(cli.client, found)
    return found
