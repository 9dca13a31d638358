"""Commands that run the server here say how to install it when it is missing."""

from __future__ import annotations

from importlib import metadata

import pytest

from kavach.cli import server_extra
from kavach.cli.errors import ExitCode

from .conftest import Invoke

HINT = "needs the Kavach server, not installed here: pip install 'kavach[server]'\n"


@pytest.fixture
def without_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make FastAPI look uninstalled, as after `pip install kavach`."""
    real = metadata.distribution

    def distribution(name: str) -> metadata.Distribution:
        if name.lower() == "fastapi":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", distribution)


def test_the_server_extra_is_installed_here() -> None:
    assert server_extra.missing_server_distributions() == []


@pytest.mark.usefixtures("without_fastapi")
def test_a_missing_distribution_of_the_server_extra_is_found() -> None:
    assert server_extra.missing_server_distributions() == ["fastapi"]


@pytest.mark.usefixtures("without_fastapi")
@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["server", "start"], "kavach server start"),
        (["server", "migrate"], "kavach server migrate"),
        (["server", "backup", "--to", "x.tgz"], "kavach server backup"),
        (["audit", "verify", "--local"], "kavach audit verify --local"),
    ],
    ids=["start", "migrate", "backup", "audit-verify-local"],
)
def test_commands_that_run_the_server_stop_with_the_install_hint(
    invoke: Invoke, args: list[str], shown: str
) -> None:
    result = invoke(args)

    assert result.exit_code == ExitCode.LOCAL
    assert result.stderr == f"Error: `{shown}` {HINT}"
    assert result.stdout == ""
