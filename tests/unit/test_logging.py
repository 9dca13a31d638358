"""Server logs: JSON for machines, text on a terminal, and never a traceback's locals."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from kavach.server.logging import configure_logging, get_logger, renders_json
from kavach.server.settings import LogFormat, get_settings


class Stream(io.StringIO):
    """A stderr that is, or is not, a terminal."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        super().isatty()  # raises once closed, as a real stream does
        return self.terminal


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    """Return a stderr for configure_logging; put the logging set-up back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield Stream(terminal=False)
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def _configure(monkeypatch: pytest.MonkeyPatch, stderr: Stream, *, json: bool) -> None:
    # Set in the test itself: pytest puts its own stderr back before each test's body.
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("INFO", json=json)


@pytest.mark.parametrize(
    ("variables", "terminal", "json_lines"),
    [
        ({}, False, True),
        ({}, True, False),
        ({"KAVACH_LOG_FORMAT": "json"}, True, True),
        ({"KAVACH_LOG_FORMAT": "console"}, False, False),
        ({"KAVACH_LOG_FORMAT": "CONSOLE"}, False, False),
        ({"KAVACH_LOG_JSON": "false"}, False, False),
        ({"KAVACH_LOG_JSON": "true"}, True, True),
        ({"KAVACH_LOG_JSON": "true", "KAVACH_LOG_FORMAT": "console"}, False, False),
    ],
    ids=[
        "auto-file",
        "auto-terminal",
        "json-terminal",
        "console-file",
        "console-any-case",
        "older-switch-off",
        "older-switch-on",
        "format-wins",
    ],
)
def test_the_format_follows_stderr_unless_chosen(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], terminal: bool, json_lines: bool
) -> None:
    for name in ("KAVACH_LOG_FORMAT", "KAVACH_LOG_JSON", "KAVACH_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    chosen = get_settings().chosen_log_format
    assert renders_json(chosen, Stream(terminal)) is json_lines


def test_auto_writes_json_when_stderr_is_closed() -> None:
    closed = Stream(terminal=True)
    closed.close()
    assert renders_json(LogFormat.AUTO, closed)


def _fail_with_a_secret_in_scope(log: structlog.stdlib.BoundLogger) -> None:
    secret = "s3cr3t-value-in-a-local-variable"  # noqa: F841 - what must not be logged
    try:
        raise ValueError("the request failed")
    except ValueError:
        log.exception("handler failed")


def test_console_lines_are_readable_and_show_no_locals(
    monkeypatch: pytest.MonkeyPatch, stderr: Stream
) -> None:
    _configure(monkeypatch, stderr, json=False)
    log = get_logger("kavach.test")
    log.info("request", method="GET", status=200)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    _fail_with_a_secret_in_scope(log)

    text = stderr.getvalue()
    assert "\x1b[" not in text  # not a terminal: no colours
    first = text.splitlines()[0]
    assert "[info" in first and "request" in first and "status=200" in first
    assert "method=GET" in first and not first.startswith("{")
    assert "Application startup complete." in text
    assert "Traceback (most recent call last)" in text and "ValueError: the request failed" in text
    assert "s3cr3t" not in text


def test_json_lines_carry_the_traceback_without_locals(
    monkeypatch: pytest.MonkeyPatch, stderr: Stream
) -> None:
    _configure(monkeypatch, stderr, json=True)
    log = get_logger("kavach.test")
    log.info("request", method="GET", status=200)
    _fail_with_a_secret_in_scope(log)

    records = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert records[0]["event"] == "request" and records[0]["status"] == 200
    assert "ValueError: the request failed" in records[1]["exception"]
    assert "s3cr3t" not in stderr.getvalue()
