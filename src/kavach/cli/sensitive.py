"""Read provider credentials from an argument, stdin, a hidden prompt or a key file.

A credential is never echoed: messages about it name the flag, never the value, and nothing
read here is logged or written anywhere. Values piped on stdin lose their surrounding
whitespace (a token or client secret never holds any; `echo` adds a newline).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kavach.cli import render
from kavach.cli.errors import CliError

if TYPE_CHECKING:
    from kavach.cli.app import App

STDIN_NAME = "-"


@dataclass(frozen=True)
class Secret:
    """How one credential may be given: `--FLAG VALUE`, `--FLAG-stdin`, or a hidden prompt."""

    flag: str  # e.g. --token
    what: str  # e.g. "GitHub token", for prompts and messages

    @property
    def stdin_flag(self) -> str:
        """Return the flag that reads the value from stdin."""
        return f"{self.flag}-stdin"


def _from_stdin(cli: App, secret: Secret) -> str:
    from kavach.cli.files import read_stdin_bytes

    if cli.interactive():
        # Typed at a terminal, stdin would echo it: ask without echo instead.
        return _prompt(secret)
    try:
        value = read_stdin_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CliError(f"{secret.stdin_flag}: the {secret.what} on stdin is not UTF-8") from None
    if not value:
        raise CliError(f"{secret.stdin_flag}: stdin held no {secret.what}")
    return value


def _prompt(secret: Secret) -> str:
    value = str(typer.prompt(secret.what[0].upper() + secret.what[1:], hide_input=True, err=True))
    if not value.strip():
        raise CliError(f"no {secret.what} given")
    return value.strip()


def read_secret(
    cli: App, secret: Secret, value: str | None, from_stdin: bool, *, required: bool
) -> str | None:
    """Return the credential from `--flag VALUE`, `--flag-stdin` or (if required) a prompt.

    Not given and not required: None (an update leaves the stored one alone). Required but
    not given, without a terminal to ask on: a usage error naming the flags.
    """
    if value is not None and from_stdin:
        raise CliError(f"give {secret.flag} or {secret.stdin_flag}, not both")
    if from_stdin:
        return _from_stdin(cli, secret)
    if value is not None:
        if not value.strip():
            raise CliError(f"{secret.flag} is empty")
        render.warn(
            cli,
            f"a {secret.what} given as an argument can be seen by other local users and stays "
            f"in your shell history; prefer {secret.stdin_flag}",
        )
        return value.strip()
    if not required:
        return None
    if cli.interactive():
        return _prompt(secret)
    raise CliError(
        f"the {secret.what} is needed: pipe it in with {secret.stdin_flag} "
        "(stdin is not a terminal to ask on)"
    )


def read_key_file(cli: App, path: str, flag: str = "--key-file") -> dict[str, Any]:
    """Return a GCP service-account key file's JSON object (`-`: read from stdin)."""
    from kavach.cli.files import read_text

    if path == STDIN_NAME:
        if cli.interactive():
            raise CliError(f"{flag} -: stdin is a terminal; pipe the key file in or give its path")
    else:
        _warn_if_shared(cli, Path(path))
    text = read_text(path)
    where = "the key file on stdin" if path == STDIN_NAME else path
    try:
        data = json.loads(text)
    except ValueError:
        # The parser's message may quote the file around the error: it holds a private key.
        raise CliError(f"{where} is not JSON (a service-account key file)") from None
    if not isinstance(data, dict):
        raise CliError(f"{where} is not a JSON object (a service-account key file)")
    if data.get("type") != "service_account" or not data.get("private_key"):
        raise CliError(
            f'{where} is not a service-account key file (no "type": "service_account" '
            'with a "private_key")'
        )
    return data


def _warn_if_shared(cli: App, path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # read_text reports it
    if stat.S_ISREG(mode) and mode & 0o077:
        render.warn(cli, f"{path} can be read by other users (chmod 600 {path})")
