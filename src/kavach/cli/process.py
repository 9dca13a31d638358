"""Run a command as a child process: inherited stdio, forwarded signals, its exit status.

On Linux the parent blocks the signals it forwards and waits for them with sigtimedwait, so
it can tell who sent one: a signal sent by a process (kill, timeout, a supervisor) is
passed on to the child, while one the terminal sent (Ctrl-C, Ctrl-\\, a hang-up) is not,
because the terminal already sent it to the child, which is in the same process group.
Elsewhere, handlers pass every such signal on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Signals Python ignores for itself and a child must get back with their default action.
RESTORED = tuple(
    sig for sig in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if sig
)
SI_KERNEL = 0x80  # Linux: a signal the kernel sent, e.g. the terminal's Ctrl-C
NOT_FOUND = 127  # what shells answer for a command they cannot find…
NOT_EXECUTABLE = 126  # …or cannot run
# Another thread of this process that does not block SIGCHLD may take it instead of the
# waiting one (the kernel gives a process's signal to any thread that accepts it), so the
# child is also polled this often.
CHILD_POLL_SECONDS = 0.1


class SpawnError(Exception):
    """The command could not be started; `code` is the exit status a shell would give."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def exit_status(wait_status: int) -> int:
    """Return a shell's exit status for a wait status: the code, or 128+N if killed by N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def find_program(name: str, env: dict[str, str]) -> str:
    """Return the path of `name`, looked up in the child's PATH unless it holds a slash."""
    if "/" in name:
        if not os.path.exists(name):
            raise SpawnError(f"{name}: no such file", NOT_FOUND)
        return name
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise SpawnError(f"{name}: command not found", NOT_FOUND)
    return found


def spawn(argv: Sequence[str], env: dict[str, str], mask: set[int]) -> int:
    """Start `argv` with `env` and the signal mask `mask`; return its pid."""
    program = find_program(argv[0], env)
    try:
        return os.posix_spawn(program, list(argv), env, setsigmask=mask, setsigdef=RESTORED)
    except PermissionError:
        raise SpawnError(f"{argv[0]}: permission denied", NOT_EXECUTABLE) from None
    except OSError as exc:
        raise SpawnError(f"{argv[0]}: {exc.strerror}", NOT_EXECUTABLE) from None


def from_terminal(info: signal.struct_siginfo) -> bool:
    """Say whether the kernel sent a signal for the terminal (which reached the child too)."""
    return sys.platform.startswith("linux") and info.si_code == SI_KERNEL


def _run_waiting(argv: Sequence[str], env: dict[str, str]) -> int:
    watched = {*FORWARDED, signal.SIGCHLD}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        pid = spawn(argv, env, {int(sig) for sig in previous})
        while True:
            info = signal.sigtimedwait(watched, CHILD_POLL_SECONDS)
            if info is None or info.si_signo == signal.SIGCHLD:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return exit_status(status)
            elif not from_terminal(info):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, info.si_signo)
    finally:
        # Signals still pending were meant for the child, which is gone: drop them.
        while signal.sigtimedwait(watched, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _run_forwarding(argv: Sequence[str], env: dict[str, str]) -> int:
    import subprocess

    program = find_program(argv[0], env)
    try:
        child = subprocess.Popen([program, *argv[1:]], env=env, close_fds=False)  # noqa: S603
    except PermissionError:
        raise SpawnError(f"{argv[0]}: permission denied", NOT_EXECUTABLE) from None

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    saved: dict[signal.Signals, Callable[..., object] | int | None] = {}
    for sig in FORWARDED:
        saved[sig] = signal.signal(sig, forward)
    try:
        returncode = child.wait()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode


def run_child(argv: Sequence[str], env: dict[str, str], *, wait_for_signals: bool = True) -> int:
    """Run `argv` with `env` and stdio inherited; return its exit status (128+N if killed)."""
    if not argv:
        raise SpawnError("no command given", NOT_FOUND)
    if wait_for_signals and hasattr(signal, "sigwaitinfo") and hasattr(os, "posix_spawn"):
        return _run_waiting(argv, env)
    return _run_forwarding(argv, env)
