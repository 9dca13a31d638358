"""The real CLI against the real app: the server's limits are checked before a change is shown
or sent, and refused input is explained in words."""

# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from kavach.cli.app import Runtime
from kavach.cli.errors import ExitCode
from tests.conftest import InProcessServer
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.test_resources import Api, user

WHERE = ("--org", "acme", "--group", "web", "--env", "prod")
LIMITS = {"max_secrets_per_version": 3, "max_secret_value_bytes": 16}


class RecordingBridge(LoopBridge):
    """A LoopBridge that remembers the method and path of every request."""

    def __init__(self, server: InProcessServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(server, loop)
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return super().handle_request(request)


class Cli:
    """Run `kavach ARGS` in process as one signed-in user, recording what it sends."""

    def __init__(self, alice: Api, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.alice = alice
        token = alice.headers["Authorization"].removeprefix("Bearer ")
        for name, value in {
            "KAVACH_HOME": str(home),
            "KAVACH_SERVER": "http://127.0.0.1:8080",
            "KAVACH_TOKEN": token,
            "KAVACH_CREDENTIAL_STORE": "file",
            "COLUMNS": "400",
        }.items():
            monkeypatch.setenv(name, value)
        self.bridge: RecordingBridge | None = None

    async def __call__(self, *args: str) -> Result:
        self.bridge = RecordingBridge(self.alice.server, asyncio.get_running_loop())
        return await run_cli(*args, runtime=Runtime(transport=self.bridge))

    @property
    def writes(self) -> list[tuple[str, str]]:
        """Return the requests of the last run that could change something."""
        assert self.bridge is not None
        return [(method, path) for method, path in self.bridge.sent if method != "GET"]


async def _environment(alice: Api, values: dict[str, str]) -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    path = f"/environments/{env['id']}/secrets/versions"
    version = await alice.call("POST", path, {"message": "first", "set": values}, status=201)
    return {"env": env, "version": version, "versions": path}


@pytest.fixture
async def alice(server: InProcessServer) -> Api:
    return await user(server, "alice")


@pytest.fixture
def cli(alice: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(alice, tmp_path / "home", monkeypatch)


@pytest.mark.parametrize("settings_overrides", [LIMITS])
async def test_limits_are_checked_before_a_change_is_shown_or_sent(
    alice: Api, cli: Cli, tmp_path: Path
) -> None:
    tree = await _environment(alice, {"A": "1"})
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"B": "hunter2-" + "x" * 9, "C": "small"}))
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"B": "1", "C": "2", "D": "3"}))
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({"B": "1"}))
    long_message = "m" * 501
    refusals = [
        (
            ("secret", "push", "-f", str(big), "-m", "m", "--yes"),
            "the value of B (17 bytes) is over the server's limit of 16 bytes a value",
        ),
        (
            ("secret", "push", "-f", str(many), "-m", "m", "--yes"),
            "the version would hold 4 secrets, over the server's limit of 3",
        ),
        (
            ("secret", "push", "-f", str(fine), "-m", long_message, "--yes"),
            "the message is 501 characters, over the limit of 500",
        ),
        (
            ("secret", "add", "BIG=" + "y" * 17),
            "the value of BIG (17 bytes) is over the server's limit of 16 bytes a value",
        ),
        (
            ("secret", "rollback", "-v", tree["version"]["id"], "-m", long_message, "--yes"),
            "the message is 501 characters, over the limit of 500",
        ),
    ]
    for args, message in refusals:
        result = await cli(*args, *WHERE)
        assert (result.exit_code, result.stderr) == (ExitCode.LOCAL, f"Error: {message}\n"), args
        assert result.stdout == "", args  # no change shown, nothing asked
        assert cli.writes == [], args

    # Staged one by one, each value fits; the commit would make a version of four.
    for pair in ("B=1", "C=2", "D=3"):
        assert (await cli("secret", "add", pair, *WHERE)).exit_code == 0
    commit = await cli("secret", "commit", "-m", "three more", "--yes", *WHERE)
    assert (commit.exit_code, commit.stderr) == (
        ExitCode.LOCAL,
        "Error: the version would hold 4 secrets, over the server's limit of 3\n",
    )
    assert commit.stdout == "" and cli.writes == []
    versions = await alice.call("GET", tree["versions"], status=200)
    assert [v["seq"] for v in versions["items"]] == [1]

    # Within the limits, the same commands go through.
    pushed = await cli("secret", "push", "-f", str(fine), "-m", "m" * 500, "--yes", *WHERE)
    assert pushed.exit_code == 0, pushed.output
    assert cli.writes == [("POST", f"/api/v1{tree['versions']}")]


async def test_refused_names_are_explained_in_words(alice: Api, cli: Cli) -> None:
    await _environment(alice, {"A": "1"})
    names = "names are 1–63 characters: a–z, 0–9, '.', '_' or '-', starting with a letter or digit"
    secret_names = (
        "secret names are 1–256 characters: letters, digits, '_', '.' or '-', "
        "starting with a letter or '_'"
    )
    # The server's refusal, as the CLI shows it.
    created = await cli("org", "create", "Acme!")
    assert (created.exit_code, created.stderr) == (
        ExitCode.SERVER,
        f"Error: invalid request: name: {names} (validation_failed)\n",
    )
    env = await cli("env", "create", "Prod", "--org", "acme", "--group", "web")
    assert env.stderr == f"Error: invalid request: name: {names} (validation_failed)\n"
    # The CLI's own checks, before anything is sent, say the same rule.
    added = await cli("secret", "add", "1X=hunter2", *WHERE)
    assert (added.exit_code, added.stderr) == (
        ExitCode.LOCAL,
        f"Error: argument 1: not a valid secret name ({secret_names})\n",
    )
    got = await cli("secret", "get", "1X", *WHERE)
    assert got.stderr == f"Error: '1X' is not a valid secret name: {secret_names}\n"
    assert cli.bridge is not None and cli.bridge.sent == []
