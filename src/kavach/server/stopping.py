"""Whether this server process has been asked to stop, for requests that wait long.

Uvicorn, asked to stop, lets the requests under way finish before the application's
shutdown runs, and tells them nothing. A change feed waiting up to a minute would hold
the stop up that long, so the app notes SIGTERM and SIGINT itself (before passing each
on to the handler it found, uvicorn's) and a waiting feed answers at its next poll.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

NOTED = (signal.SIGTERM, signal.SIGINT)
_asked = threading.Event()


def asked() -> bool:
    """Say whether the process has been asked to stop."""
    return _asked.is_set()


@contextmanager
def noticing_stop() -> Iterator[None]:
    """Note a stop signal while the block runs; each is still handled as it was before."""
    _asked.clear()
    # Handlers can be set from the main thread only (a server run from a test's thread
    # has nobody to signal it anyway).
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # None: a handler not set from Python, which could not be put back; left alone.
    previous: dict[int, Any] = {
        sig: handler for sig in NOTED if (handler := signal.getsignal(sig)) is not None
    }

    def note(signum: int, frame: FrameType | None) -> None:
        _asked.set()
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in previous:
        signal.signal(sig, note)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
