"""Fixtures for CLI tests: a private KAVACH_HOME, a fake API, a fake clock, a runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kavach.cli.app import Runtime
from kavach.cli.credentials import Credentials, CredentialStore
from kavach.cli.main import app

from .fake_api import USER, FakeApi

SERVER = "http://kavach.test"


@dataclass
class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point KAVACH_HOME at a fresh directory and keep the developer's environment out."""
    kavach_home = tmp_path / "kavach-home"
    monkeypatch.setenv("KAVACH_HOME", str(kavach_home))
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "file")
    for name in ("KAVACH_TOKEN", "KAVACH_SERVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    return kavach_home


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(home: Path) -> CredentialStore:
    return CredentialStore(home)


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(api: FakeApi, clock: FakeClock) -> Invoke:
    """Run `kavach ARGS` in-process against the fake API."""
    runner = CliRunner()

    def run(
        args: Sequence[str],
        *,
        runtime: Runtime | None = None,
        input: str | None = None,
        terminal: bool = False,
    ) -> Result:
        """Run with `input` on stdin; `terminal` makes stdin count as a terminal for prompts."""
        runtime = runtime or Runtime(
            transport=api.transport,
            sleep=clock.sleep,
            clock=clock.monotonic,
            stdin_is_terminal=lambda: terminal,
        )
        return runner.invoke(app, list(args), obj=runtime, input=input)

    return run


def make_credentials(access: str, refresh: str, *, expires_in: float = 900) -> Credentials:
    """Return credentials for the fake's user."""
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in)
    return Credentials(access, refresh, expires_at, dict(USER))


@pytest.fixture
def logged_in(api: FakeApi, store: CredentialStore, home: Path) -> Credentials:
    """Save valid credentials for SERVER and make it the configured server."""
    from kavach.cli.config import Config, save_config

    access, refresh = api.issue()
    credentials = make_credentials(access, refresh)
    store.save(SERVER, credentials)
    save_config(home, Config(server=SERVER))
    return credentials


def use_context(
    home: Path, org: str | None = None, group: str | None = None, env: str | None = None
) -> None:
    """Save SERVER and an active context to config.yaml."""
    from kavach.cli.config import ActiveContext, Config, save_config

    save_config(home, Config(server=SERVER, context=ActiveContext(org, group, env)))


def active(home: Path) -> tuple[str | None, str | None, str | None]:
    """Return the active organization, secret group and environment in config.yaml."""
    from kavach.cli.config import load_config

    context = load_config(home).context
    return context.organization, context.secret_group, context.environment


def _table(text: str) -> list[list[str]]:
    """Return the first table printed to a pipe: its run of tab-separated lines, split."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "\t" in line)
    end = next((i for i in range(start, len(lines)) if "\t" not in lines[i]), len(lines))
    return [line.split("\t") for line in lines[start:end]]


def table_rows(text: str) -> list[list[str]]:
    """Return the cells of each body row of a table printed to a pipe (tab-separated)."""
    return _table(text)[1:]


def table_header(text: str) -> list[str]:
    """Return the column headers of a table printed to a pipe (its first line)."""
    return _table(text)[0]
