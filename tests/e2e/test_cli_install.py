"""`pip install kavach` installs the command line alone, and it works without the server."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from kavach.cli.errors import ExitCode
from scripts import cli_venv
from tests.e2e.harness import clean_environ

pytestmark = pytest.mark.e2e

# Distributions the command line needs too, though the server extra names them.
SHARED = {"cryptography"}  # kavach run --fallback and keyring's SecretStorage (Linux) need it
# Brought in by the server's own dependencies, not named in its extra.
SERVER_TRANSITIVE = {
    "starlette",
    "greenlet",
    "mako",
    "grpcio",
    "grpcio-status",
    "protobuf",
    "proto-plus",
    "msal",
    "msal-extensions",
    "httptools",
    "uvloop",
    "watchfiles",
    "websockets",
    "pydantic-core",
}
SERVER_FAMILIES = re.compile(r"(google|googleapis|azure|opentelemetry)-")
# Every module of the command line, imported in the new environment.
IMPORT_ALL = """
import importlib, pkgutil, kavach.cli, kavach.formats
for package in (kavach.cli, kavach.formats):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith(".__main__"):  # that one runs the command line
            importlib.import_module(module.name)
print("imported")
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _server_distributions() -> set[str]:
    """Return the names of the server extra's distributions (pyproject.toml)."""
    project = tomllib.loads((cli_venv.ROOT / "pyproject.toml").read_text())["project"]
    named = {re.match(r"[A-Za-z0-9._-]+", r)[0] for r in project["optional-dependencies"]["server"]}  # type: ignore[index]
    return {_canonical(name) for name in named} - SHARED | SERVER_TRANSITIVE


def test_the_command_line_installs_and_runs_without_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "cli"
    kavach = cli_venv.build(venv, bytecode=False)
    environ = clean_environ(HOME=str(tmp_path), KAVACH_HOME=str(tmp_path / "kavach"))

    installed = {_canonical(name) for name in cli_venv.installed(venv)}
    assert "kavach" in installed
    assert "typer" in installed
    assert "httpx" in installed
    server = sorted(installed & _server_distributions())
    server += sorted(name for name in installed if SERVER_FAMILIES.match(name))
    assert server == []

    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", IMPORT_ALL],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    helped = subprocess.run(
        [str(kavach), "--help"], capture_output=True, text=True, env=environ, check=False
    )
    assert helped.returncode == 0, helped.stderr
    assert "Usage: kavach [OPTIONS] COMMAND [ARGS]..." in helped.stdout
    started = subprocess.run(
        [str(kavach), "server", "start"], capture_output=True, text=True, env=environ, check=False
    )
    assert started.returncode == ExitCode.LOCAL
    assert started.stderr == (
        "Error: `kavach server start` needs the Kavach server, not installed here: "
        "pip install 'kavach[server]'\n"
    )
    assert started.stdout == ""
