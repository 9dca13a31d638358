"""Conventions every command keeps: --json where data is printed, help without type hints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer._click.core as click_core
from typer.main import get_command

from kavach.cli.main import app

# Commands whose output is not data to print as JSON: a child process's own output, a file
# in the format asked for (`--format json` is its JSON), a server's log, or a server-side
# administration step run on the server's machine.
NOT_DATA = {
    "kavach run",
    "kavach secret export",
    "kavach server start",
    "kavach server migrate",
    "kavach server approve",
    "kavach server deny",
    "kavach server link-identity",
    "kavach server unlink-identity",
    "kavach server rotate-key",
    "kavach server retire-keys",
    "kavach server backup",
    "kavach server restore",
}
TYPE_HINT = re.compile(r"<(str|int|bool|float|path|text|uuid|int range|float range)>")


def _commands() -> Iterator[tuple[str, Any]]:
    """Yield every command below the root, with its full name."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield path, command
            return
        for name, sub in subcommands.items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(get_command(app), "kavach")


def test_every_command_that_prints_data_takes_json() -> None:
    missing = [
        name
        for name, command in _commands()
        if name not in NOT_DATA
        and "--json" not in {opt for param in command.params for opt in getattr(param, "opts", [])}
    ]
    assert missing == []
    assert {name for name, _ in _commands()} >= NOT_DATA  # no stale exception


def test_help_names_values_and_shows_no_type_hints() -> None:
    root = get_command(app)
    pages = [root.get_help(click_core.Context(root, info_name="kavach"))]
    for name, command in _commands():
        pages.append(command.get_help(click_core.Context(command, info_name=name)))
    hints = [line for page in pages for line in page.splitlines() if TYPE_HINT.search(line)]
    assert hints == []
    assert any("--org ORG" in page for page in pages)
    assert not any("--verbose, -v" in page or "-v, --verbose" in page for page in pages)
