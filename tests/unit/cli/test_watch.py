"""`kavach run --watch`'s supervisor with real child processes: restarts, the grace period, exit."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from kavach.cli.errors import CliError
from kavach.cli.watch import Watcher, WatchOptions, signal_named, supervise, watch_options

# Records each start with its VALUE; ignores SIGTERM when told to, else exits 0 on it; with
# VALUE "last" it exits 5 by itself.
CHILD = """
import os, signal, sys, time
with open(sys.argv[1], "a") as out:
    out.write(os.environ["VALUE"] + "\\n")
if os.environ.get("STUBBORN"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ["VALUE"] == "last":
    sys.exit(5)
while True:
    time.sleep(0.05)
"""


class Handed(Watcher):
    """A watcher that hands over prepared environments, one per take() after a start seen."""

    def __init__(self, out: Path, envs: list[dict[str, str]]) -> None:
        self._out = out
        self._envs = envs

    def start(self) -> None:
        """Follow nothing: the environments are prepared."""

    def take(self) -> dict[str, str] | None:
        """Hand the next environment over once the running command has recorded its start."""
        starts = self._out.read_text().count("\n") if self._out.exists() else 0
        if self._envs and starts == 3 - len(self._envs):
            return self._envs.pop(0)
        return None


def test_a_stubborn_command_is_killed_after_the_grace_and_restarted(tmp_path: Path) -> None:
    out = tmp_path / "starts"
    base = {"PATH": os.environ["PATH"]}
    envs = [base | {"VALUE": "second", "STUBBORN": "1"}, base | {"VALUE": "last"}]
    started = time.monotonic()
    code = supervise(
        [sys.executable, "-c", CHILD, str(out)],
        base | {"VALUE": "first"},
        Handed(out, envs),
        WatchOptions(signal=None, grace=0.3),
    )
    # first: stopped by SIGTERM; second ignores it, killed after the grace; last exits 5.
    assert out.read_text().splitlines() == ["first", "second", "last"]
    assert code == 5
    assert time.monotonic() - started >= 0.3


def test_signal_names_and_options() -> None:
    assert signal_named("HUP") is signal.SIGHUP
    assert signal_named("sigusr1") is signal.SIGUSR1
    assert signal_named("15") is signal.SIGTERM
    with pytest.raises(CliError, match="not a signal"):
        signal_named("NOPE")
    assert watch_options(True, None, None, None) == WatchOptions(signal=None, grace=10.0)
    assert watch_options(True, "HUP", 2.5, None) == WatchOptions(signal=signal.SIGHUP, grace=2.5)
    assert watch_options(False, None, None, None) is None
    with pytest.raises(CliError, match="only with --watch"):
        watch_options(False, "HUP", None, None)
    with pytest.raises(CliError, match="drop --version"):
        watch_options(True, None, None, "3")
