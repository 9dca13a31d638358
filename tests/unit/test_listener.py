"""`kavach server start` binds its address first and says "listening" only once it is."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from kavach.cli.errors import ExitCode
from kavach.cli.main import app
from kavach.server.errors import ConfigurationError
from kavach.server.listener import announce_once_connectable, bind_listener, listen_url


@pytest.fixture
def taken() -> Iterator[int]:
    """Return a port another socket listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """Put the logging set-up back as it was (starting a server configures it)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_a_port_in_use_is_refused_with_the_reason_and_the_way_out(taken: int) -> None:
    with pytest.raises(ConfigurationError) as refused:
        bind_listener("127.0.0.1", taken)
    assert refused.value.message == (
        f"cannot listen on 127.0.0.1:{taken}: Address already in use; "
        "another process listens there; stop it or choose another --port"
    )


def test_an_address_of_another_machine_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="--host must be an address of this machine"):
        bind_listener("192.0.2.1", 8080)  # TEST-NET-1: never this machine's


def test_urls_put_ipv6_addresses_in_brackets() -> None:
    assert listen_url("::1", 8080) == "http://[::1]:8080"
    assert listen_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"


def test_start_on_a_port_in_use_stops_at_once_and_says_nothing_of_listening(
    taken: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logging_kept: None
) -> None:
    for name in ("KAVACH_DATABASE_URL", "KAVACH_ENV_FILE", "KAVACH_MODE", "KAVACH_METRICS_ADDR"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KAVACH_DATA_DIR", str(data_dir))

    result = CliRunner().invoke(app, ["server", "start", "--port", str(taken)])

    assert result.exit_code == ExitCode.LOCAL, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: cannot listen on 127.0.0.1:{taken}: Address already in use; "
        "another process listens there; stop it or choose another --port\n"
    )
    assert not data_dir.exists(), "keys or a database were made for a server that cannot run"


def test_the_line_comes_once_the_address_accepts_connections() -> None:
    announced = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        with announce_once_connectable("127.0.0.1", port, announced.set):
            # Bound but not listening: connections are refused, nothing is said.
            assert not announced.wait(0.3)
            server.listen()
            assert announced.wait(5)
