"""`kavach run --watch`: keep a command running on the environment's current values.

A thread follows the server's change feed (a long poll). When the environment's revision
moves, it reads the secrets again as `kavach run` does and builds the command's
environment with the same options; if that differs from what the command got, it hands
the new environment to the main thread. The main thread supervises the command as
`cli.process` does (forwarded signals, its exit status) and restarts it: SIGTERM, then
SIGKILL after the grace period, then the same command with the new environment. With a
watch signal it sends that signal instead, and the command re-reads its secrets itself.

Losing the server never ends the command: the thread retries with a growing delay (at
most MAX_DELAY), saying once that it lost the server and once that it is back.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavach.cli.errors import ApiError, CliError, NetworkError
from kavach.cli.process import CHILD_POLL_SECONDS, FORWARDED, exit_status, from_terminal, spawn
from kavach.cli.safe_text import neutralize

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.target import Target

# How long the server may hold one poll (its default), and how much longer the answer may
# take to arrive before the client gives up on it.
FEED_WAIT = 25.0
FEED_SLACK = 10.0
FIRST_DELAY = 0.25
MAX_DELAY = 5.0
# Signals after which kavach restarts nothing: the command is being stopped.
STOPPING = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGQUIT})
# Answers that mean the server (or the proxy in front of it) is not there right now.
UNAVAILABLE = frozenset({502, 503, 504})

# Builds the command's environment from the environment's secrets, as `kavach run` does.
Rebuild = Callable[[dict[str, str]], dict[str, str]]


@dataclass(frozen=True)
class WatchOptions:
    """How `kavach run --watch` reacts to changed values."""

    signal: signal.Signals | None  # None: restart the command
    grace: float  # seconds between SIGTERM and SIGKILL on a restart


def signal_named(name: str) -> signal.Signals:
    """Return the signal `HUP`, `SIGHUP`, `hup` or `1` names; fail with the choices otherwise."""
    text = name.strip().upper()
    try:
        return (
            signal.Signals(int(text))
            if text.isdigit()
            else signal.Signals["SIG" + text.removeprefix("SIG")]
        )
    except (KeyError, ValueError):
        raise CliError(
            f"--watch-signal {name!r} is not a signal: give a name such as HUP or USR1"
        ) from None


def watch_options(
    watch: bool, signal_name: str | None, grace: float | None, version: str | None
) -> WatchOptions | None:
    """Return the options of --watch (None without it), refusing those that cannot apply."""
    if not watch:
        if signal_name is not None or grace is not None:
            raise CliError("--watch-signal and --watch-grace apply only with --watch")
        return None
    if version is not None:
        raise CliError("--watch follows the latest version; drop --version")
    if not hasattr(os, "posix_spawn"):
        raise CliError("--watch needs a POSIX system (Linux or macOS)")
    chosen = signal_named(signal_name) if signal_name is not None else None
    return WatchOptions(signal=chosen, grace=10.0 if grace is None else grace)


def say(line: str) -> None:
    """Write one line on stderr (shared with the command: one write per line)."""
    sys.stderr.write(neutralize(line) + "\n")
    sys.stderr.flush()


class Watcher:
    """Follows the change feed in a thread; hands over each new environment for the command."""

    def __init__(
        self,
        cli: App,
        target: Target,
        env: dict[str, str],
        rebuild: Rebuild,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cli = cli
        self._target = target
        self._given = env  # what the command was last given (or signalled about)
        self._rebuild = rebuild
        self._sleep = sleep
        self._updates: queue.Queue[dict[str, str]] = queue.Queue()

    def start(self) -> None:
        """Start following the feed (a daemon thread: it ends with the process)."""
        threading.Thread(target=self._follow, name="kavach-watch", daemon=True).start()

    def take(self) -> dict[str, str] | None:
        """Return the newest environment handed over since the last call, if any."""
        newest = None
        with contextlib.suppress(queue.Empty):
            while True:
                newest = self._updates.get_nowait()
        return newest

    def _poll(self, after: str | None, wait: float) -> str:
        """Wait for the feed to answer (`wait` seconds at most); return its revision."""
        from kavach.cli.resources import expect_object, segment

        params: dict[str, Any] = {"timeout": wait}
        if after is not None:
            params["after"] = after
        path = f"/environments/{segment(self._target.id)}/changes"
        data = expect_object(self._cli.client.get(path, params=params, wait=wait + FEED_SLACK))
        revision = data.get("revision")
        if not isinstance(revision, str) or not revision:
            raise CliError("unexpected answer from the server: the change feed gave no revision")
        return revision

    def _catch_up(self) -> None:
        """Read the secrets again; hand the environment over if the command's would differ."""
        from kavach.cli import secrets_api

        _, values = secrets_api.read(self._cli.client, self._target, resolve=True)
        env = self._rebuild(values)
        if env != self._given:
            self._given = env
            self._updates.put(env)

    def _follow(self) -> None:
        after: str | None = None  # the first answer comes at once: values are then checked
        delay = FIRST_DELAY
        trouble: str | None = None  # what was said when the server was lost, if anything
        while True:
            try:
                # Back from trouble, ask without waiting: the way back is said at once.
                revision = self._poll(after, 0 if trouble else FEED_WAIT)
                if revision != after:
                    self._catch_up()
                    after = revision
            except Exception as error:  # nothing may end the watch
                problem = _problem(error)
                if trouble is None:
                    say(f"Warning: {problem}; retrying…")
                    trouble = problem
                wait = delay
                if isinstance(error, ApiError) and error.retry_after is not None:
                    wait = max(wait, min(error.retry_after, MAX_DELAY))
                self._sleep(wait)
                delay = min(delay * 2, MAX_DELAY)
                continue
            if trouble is not None:
                say("Note: reconnected to the server; watching again")
                trouble = None
            delay = FIRST_DELAY


def _problem(error: Exception) -> str:
    """Describe why the feed could not be followed, in a few words."""
    if isinstance(error, NetworkError) or (
        isinstance(error, ApiError) and error.status in UNAVAILABLE
    ):
        return f"lost the server ({error.message})"
    if isinstance(error, CliError):
        return f"cannot watch the environment: {error}"
    # Not one of ours: its text could quote anything, a value included.
    return f"cannot watch the environment ({type(error).__name__})"


class _Signals:
    """The signals kavach forwards, waited for as `cli.process` does: blocked, then taken."""

    def __init__(self) -> None:
        self._watched = {*FORWARDED, signal.SIGCHLD}
        self.mask: set[int] = set()  # the command starts with the mask kavach had
        self._caught: list[int] = []
        self._handlers: dict[signal.Signals, Any] = {}

    @contextlib.contextmanager
    def taken(self) -> Iterator[_Signals]:
        """Block the signals (Linux) or catch them (elsewhere) for the block's duration."""
        if hasattr(signal, "sigtimedwait"):
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, self._watched)
            self.mask = {int(sig) for sig in previous}
            try:
                yield self
            finally:
                while signal.sigtimedwait(self._watched, 0) is not None:
                    pass  # meant for a command that is gone
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            return
        for sig in FORWARDED:
            self._handlers[sig] = signal.signal(sig, lambda signum, _: self._caught.append(signum))
        try:
            yield self
        finally:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)

    def next(self) -> tuple[int, bool] | None:
        """Wait a moment for a signal to forward; return it and whether the terminal sent it."""
        if not hasattr(signal, "sigtimedwait"):
            if not self._caught:
                time.sleep(CHILD_POLL_SECONDS)
            return (self._caught.pop(0), False) if self._caught else None
        info = signal.sigtimedwait(self._watched, CHILD_POLL_SECONDS)
        if info is None or info.si_signo == signal.SIGCHLD:
            return None
        return info.si_signo, from_terminal(info)


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def supervise(
    argv: Sequence[str], env: dict[str, str], watcher: Watcher, options: WatchOptions
) -> int:
    """Run the command, restarting (or signalling) it on each new environment; its status."""
    with _Signals().taken() as signals:
        pid = spawn(argv, env, signals.mask)
        # Started now, so the thread inherits the blocked mask: signals reach this loop.
        watcher.start()
        stopping = False  # kavach was told to stop: restart nothing more
        pending: dict[str, str] | None = None  # the environment to restart with
        kill_at: float | None = None
        while True:
            received = signals.next()
            if received is not None:
                signum, by_terminal = received
                stopping = stopping or signum in STOPPING
                if not by_terminal:
                    _send(pid, signum)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                if pending is None or stopping:
                    return exit_status(status)
                pid, pending, kill_at = spawn(argv, pending, signals.mask), None, None
                continue
            if kill_at is not None and time.monotonic() >= kill_at:
                say("Note: the command outlived --watch-grace; killing it")
                _send(pid, signal.SIGKILL)
                kill_at = None
            fresh = None if stopping else watcher.take()
            if fresh is None:
                continue
            if options.signal is not None:
                say(f"Note: the secrets changed; sending {options.signal.name} to the command")
                _send(pid, options.signal)
            elif pending is None:
                say("Note: the secrets changed; restarting the command")
                pending, kill_at = fresh, time.monotonic() + options.grace
                _send(pid, signal.SIGTERM)
            else:
                pending = fresh  # changed again while stopping: start with the newest


def run_watching(
    cli: App,
    target: Target,
    argv: Sequence[str],
    env: dict[str, str],
    rebuild: Rebuild,
    options: WatchOptions,
) -> int:
    """Run the command under --watch; return its exit status once it exits by itself."""
    # A watch runs for days: the collector the console script turned off comes back.
    gc.enable()
    return supervise(argv, env, Watcher(cli, target, env, rebuild), options)
