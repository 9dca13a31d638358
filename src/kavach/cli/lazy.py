"""The root's commands, each built on first use from the module `commands.registry` names."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping

import typer
from typer._click import Command
from typer.main import get_group

from kavach.cli.commands.registry import COMMANDS, COMMANDS_PANEL, Entry


def load(name: str, entry: Entry) -> Command:
    """Import `name`'s module and build its Click command as the root Typer app would."""
    module = importlib.import_module(entry.module)
    app: typer.Typer = getattr(module, entry.attribute)
    if entry.group:
        holder = typer.Typer(rich_markup_mode=None)  # plain help, as the root's
        panel = None if entry.panel == COMMANDS_PANEL else entry.panel
        holder.add_typer(app, name=name, rich_help_panel=panel)
        app = holder
    return get_group(app).commands[name]


class LazyCommands(MutableMapping[str, Command]):
    """A group's commands by name: every name known up front, each command built when asked."""

    def __init__(
        self, loaded: Mapping[str, Command], entries: Mapping[str, Entry] = COMMANDS
    ) -> None:
        self._entries = dict(entries)
        self._loaded = dict(loaded)  # commands registered the usual way stay as they are

    def __getitem__(self, name: str) -> Command:
        command = self._loaded.get(name)
        if command is None:
            command = self._loaded[name] = load(name, self._entries[name])
        return command

    def __setitem__(self, name: str, command: Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        found = self._entries.pop(name, None) is not None
        if self._loaded.pop(name, None) is None and not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        yield from self._entries
        yield from (name for name in self._loaded if name not in self._entries)

    def __len__(self) -> int:
        return len(self._entries.keys() | self._loaded.keys())

    def describe(self, name: str, width: int) -> tuple[str, str]:
        """Return `name`'s summary and help panel, without loading it if the registry has it."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.summary, entry.panel
        command = self._loaded[name]
        panel = getattr(command, "rich_help_panel", None) or COMMANDS_PANEL
        return command.get_short_help_str(width), panel
