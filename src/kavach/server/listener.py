"""The server's listening socket: bound before anything starts, announced once it serves.

`kavach server start` says "listening" only when that is true. With one worker the line is
printed once the application has started and its socket accepts connections, before any
request can be answered. With several, uvicorn's supervisor binds a socket of its own and
each worker listens on it once started, so the line comes once a connection succeeds: when
the first worker serves.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn

from kavach.server.errors import ConfigurationError

_HINTS = {
    errno.EADDRINUSE: "another process listens there; stop it or choose another --port",
    errno.EADDRNOTAVAIL: "--host must be an address of this machine",
    errno.EACCES: "ports below 1024 need privileges; choose another --port",
}
# Where to reach a server bound to every address of the machine.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - not a bind
_PROBE_INTERVAL_SECONDS = 0.05


def listen_url(host: str, port: int) -> str:
    """Return the base URL for host:port (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_listener(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to host:port (not yet listening), or say why it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = listen_url(host, port).removeprefix("http://")
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: connections of a previous run still in TIME_WAIT do not block a restart.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or type(error).__name__
        hint = _HINTS.get(error.errno or 0)
        raise ConfigurationError(
            f"cannot listen on {where}: {reason}" + (f"; {hint}" if hint else "")
        ) from None
    sock.set_inheritable(True)
    return sock


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls `announce` once it serves its sockets."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does (the application first, then the sockets), then announce."""
        await super().startup(sockets)
        # Nothing has been awaited since the sockets started accepting: no request has
        # been answered yet, so the line comes before any answer.
        if self.started and not self.should_exit:
            self._announce()


@contextmanager
def announce_once_connectable(host: str, port: int, announce: Callable[[], None]) -> Iterator[None]:
    """Call `announce` from a thread once host:port accepts a connection, during the block."""
    done = threading.Event()
    target = _WILDCARDS.get(host, host)

    def probe() -> None:
        while not done.is_set():
            try:
                # A connection only, no request: nothing for the server to log or count.
                with socket.create_connection((target, port), timeout=1):
                    pass
            except OSError:
                done.wait(_PROBE_INTERVAL_SECONDS)
                continue
            if not done.is_set():
                announce()
            return

    thread = threading.Thread(target=probe, name="kavach-announce", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2)


def printer(lines: Sequence[str]) -> Callable[[], None]:
    """Return a function printing `lines` on stdout at once."""

    def announce() -> None:
        print("\n".join(lines), flush=True)

    return announce
