"""`kavach run` with a fallback: written after each read, used only when the server is down."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import Result

from kavach.cli.app import Runtime
from kavach.cli.credentials import Credentials
from kavach.cli.errors import ExitCode

from .conftest import FakeClock, Invoke
from .fake_api import FakeApi
from .fake_iam import Node

DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
VALUES = {"API_KEY": "sk_live_0123456789abcdef", "MULTI": "a\nb"}
UNREACHABLE = re.compile(
    r"^Warning: server unreachable; using fallback written \d+s ago \((?P<path>.+)\)$"
)


@pytest.fixture
def prod(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Node:
    # The project names its environment and asks for fallbacks in the default place.
    project = tmp_path / "project"
    project.mkdir()
    (project / ".kavach.yaml").write_text("org: acme\ngroup: web\nenv: prod\nfallback: true\n")
    monkeypatch.chdir(project)
    node = api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")
    api.secrets.commit(node, VALUES)
    return node


def _down(clock: FakeClock) -> Runtime:
    """Return a runtime whose server refuses every connection."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    return Runtime(transport=httpx.MockTransport(refuse), sleep=clock.sleep, clock=clock.monotonic)


def _run(invoke: Invoke, out: Path, *args: str, runtime: Runtime | None = None) -> Result:
    return invoke(["run", *args, "--", sys.executable, "-c", DUMP, str(out)], runtime=runtime)


def test_the_default_fallback_is_written_and_used_only_when_unreachable(
    api: FakeApi,
    invoke: Invoke,
    clock: FakeClock,
    prod: Node,
    home: Path,
    tmp_path: Path,
    logged_in: Credentials,
) -> None:
    out = tmp_path / "env.json"
    written = home / "fallback" / f"{prod.id}.enc"

    result = invoke(["run", "--", sys.executable, "-c", DUMP, str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert written.stat().st_mode & 0o777 == 0o600
    assert written.parent.stat().st_mode & 0o777 == 0o700

    out.unlink()
    result = invoke(["run", "--", sys.executable, "-c", DUMP, str(out)], runtime=_down(clock))
    assert result.exit_code == 0, result.output
    found = UNREACHABLE.match(result.stderr.strip())
    assert found is not None, result.stderr
    assert found["path"] == str(written)
    env = json.loads(out.read_text())
    assert {name: env[name] for name in VALUES} == VALUES
    assert "sk_live" not in result.output

    # A server that answers, even to refuse, is obeyed: no fallback for a 401.
    api.valid_access.clear()
    out.unlink()
    result = invoke(["run", "--", sys.executable, "-c", DUMP, str(out)])
    assert result.exit_code == ExitCode.AUTH, result.output
    assert not out.exists()
    assert "fallback" not in result.stderr


def test_fallback_only_never_calls_the_server_and_names_another_environment(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, logged_in: Credentials
) -> None:
    out, kept = tmp_path / "env.json", tmp_path / "kept" / "prod.enc"  # a new directory
    assert invoke(["run", "--fallback", str(kept), "--", "true"]).exit_code == 0
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    calls = len(api.calls)

    result = _run(invoke, out, "--fallback", str(kept), "--fallback-only")
    assert result.exit_code == 0, result.output
    assert len(api.calls) == calls  # not one request
    assert {name: json.loads(out.read_text())[name] for name in VALUES} == VALUES
    out.unlink()

    wrong = _run(invoke, out, "--fallback", str(kept), "--fallback-only", "--env", "dev")
    assert wrong.exit_code == ExitCode.LOCAL
    assert wrong.stderr.strip() == (
        f"Error: the fallback {kept} holds environment acme/web/prod on http://kavach.test, "
        "not environment acme/web/dev on http://kavach.test (fallback_wrong_environment)"
    )
    assert not out.exists()


def test_missing_corrupt_and_bad_options_are_refused_before_the_command_runs(
    invoke: Invoke, clock: FakeClock, prod: Node, tmp_path: Path, logged_in: Credentials
) -> None:
    out = tmp_path / "env.json"
    missing = tmp_path / "none.enc"

    result = invoke(["run", "--fallback", str(missing), "--", "true"], runtime=_down(clock))
    assert result.exit_code == ExitCode.SERVER  # nothing wrong with a fallback never written
    assert f"no fallback file at {missing}" in result.stderr

    result = invoke(["run", "--fallback", str(missing), "--fallback-only", "--", "true"])
    assert result.exit_code == ExitCode.LOCAL
    assert "(fallback_missing)" in result.stderr

    corrupt = tmp_path / "corrupt.enc"
    corrupt.write_text("{not json")
    result = _run(invoke, out, "--fallback", str(corrupt), "--fallback-only")
    assert result.exit_code == ExitCode.LOCAL
    assert "(fallback_corrupt)" in result.stderr
    # Nor is a file that is not a fallback overwritten by one.
    result = _run(invoke, out, "--fallback", str(corrupt))
    assert result.exit_code == 0
    assert f"Warning: the fallback {corrupt} was not written" in result.stderr
    assert corrupt.read_text() == "{not json"

    result = invoke(["run", "--fallback", str(corrupt), "--version", "v1", "--", "true"])
    assert result.exit_code == ExitCode.LOCAL
    assert "a fallback keeps the latest version: drop --version" in result.stderr
