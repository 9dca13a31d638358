"""The console script: no collector while a command starts, its output and exit code kept."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from kavach import __version__
from kavach.cli.errors import ExitCode

from .conftest import Invoke

PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("torn down", file=sys.stderr))
sys.argv = ["kavach", *sys.argv[1:]]
from kavach.cli import main
real = main.run
def run():
    print("collector on" if gc.isenabled() else "collector off", file=sys.stderr)
    real()
main.run = run
from kavach.cli.entry import run as entry
entry()
"""


def _kavach(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )


def test_a_command_runs_without_the_collector_and_leaves_at_once() -> None:
    done = _kavach("version", "--short")

    assert done.returncode == 0
    assert done.stdout == f"{__version__}\n"  # flushed before leaving
    assert done.stderr == "collector off\n"  # no teardown: atexit handlers do not run


def test_the_exit_code_and_the_error_line_are_kept() -> None:
    done = _kavach("--server", "nope", "org", "list")

    assert done.returncode == ExitCode.LOCAL
    assert done.stderr.startswith("collector off\nError: invalid server URL 'nope'")


def test_kavach_server_gets_the_collector_back(invoke: Invoke) -> None:
    gc.disable()
    try:
        invoke(["server", "nosuch"])
        assert gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("args", [["--help"], ["version"]], ids=["help", "version"])
def test_other_commands_leave_the_collector_as_it_is(invoke: Invoke, args: list[str]) -> None:
    gc.disable()
    try:
        invoke(args)
        assert not gc.isenabled()
    finally:
        gc.enable()
