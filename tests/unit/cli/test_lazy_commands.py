"""The root loads a command's module only when that command runs or shows its help."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from kavach.cli.commands.registry import COMMANDS, COMMANDS_PANEL
from kavach.cli.errors import ExitCode
from kavach.cli.lazy import LazyCommands, load

from .conftest import Invoke

PROBE = """
import json, sys
import kavach.cli.main as main
try:
    main.app(sys.argv[1:], prog_name="kavach")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(json.dumps(sorted(sys.modules)))
"""


def _modules(*args: str) -> list[str]:
    """Return the modules `kavach ARGS` imported (the command must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def _commands(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith("kavach.cli.commands.") and m != COMMANDS_MODULE]


COMMANDS_MODULE = "kavach.cli.commands.registry"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_registry_says_what_the_command_says(name: str) -> None:
    command = load(name, COMMANDS[name])

    summary = " ".join(inspect.cleandoc(command.help or "").split("\n\n")[0].split())
    assert COMMANDS[name].summary == summary
    assert COMMANDS[name].panel == (getattr(command, "rich_help_panel", None) or COMMANDS_PANEL)


def test_the_root_help_loads_no_command_and_no_rich() -> None:
    modules = _modules("--help")

    assert _commands(modules) == []
    assert not any(m == "rich" or m.startswith("rich.") for m in modules)


def test_a_command_loads_its_own_module_only() -> None:
    assert _commands(_modules("version", "--short")) == ["kavach.cli.commands.meta"]


def test_the_root_help_lists_every_command_under_its_panel(invoke: Invoke) -> None:
    result = invoke(["--help"])

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    panels = [line[:-1] for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert panels == ["Options", "Commands", "Session", "About", "Resources", "Secrets", "Access"]
    for name, entry in COMMANDS.items():
        section = result.stdout.split(f"\n{entry.panel}:\n")[1].split("\n\n")[0]
        assert f"  {name} " in section


def test_a_mistyped_command_is_still_suggested(invoke: Invoke) -> None:
    result = invoke(["secrte", "list"])

    assert result.exit_code == ExitCode.USAGE
    assert "No such command 'secrte'. Did you mean 'secret'" in result.output


def test_commands_registered_the_usual_way_are_kept() -> None:
    sentinel = load("version", COMMANDS["version"])
    commands = LazyCommands({"extra": sentinel}, {"org": COMMANDS["org"]})

    assert list(commands) == ["org", "extra"]
    assert commands["extra"] is sentinel
    assert commands.describe("org", 80) == ("Manage organizations.", "Resources")
    assert commands.describe("extra", 80) == (
        "Show the version of this command-line tool.",
        "About",
    )
    assert "nope" not in commands
    assert commands.get("nope") is None
