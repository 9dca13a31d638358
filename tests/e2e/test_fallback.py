"""`kavach run --fallback` end to end: a real server read once, then stopped."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kavach.cli.fallback_file import seal, write
from tests.e2e.harness import Cli, CliResult, KavachServer, run_kavach

# One server is enough: the fallback lives in the command line, whatever the database.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]

DUMP = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
VALUES = {"API_KEY": "sk_live_0123456789abcdef", "GREETING": "héllo ✓"}
WARNING = re.compile(r"^Warning: server unreachable; using fallback written (\d+)s ago \(.+\)$")


def _ok(result: CliResult) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def _dumped(result: CliResult) -> dict[str, str | None]:
    seen: dict[str, str | None] = json.loads(_ok(result))
    return seen


def _log_in(server: KavachServer, cli: Cli, name: str) -> None:
    login = cli.start_login(server.url)
    server.approve(login.code, name)
    _ok(login.wait())


def test_a_fallback_carries_a_run_through_an_unreachable_server(
    server: KavachServer, cli: Cli, tmp_path: Path
) -> None:
    _log_in(server, cli, "alice")
    alice = {**cli.env(server.url), "KAVACH_ORG": "acme", "KAVACH_GROUP": "web"}
    _ok(run_kavach(["org", "create", "acme"], alice))
    _ok(run_kavach(["group", "create", "web"], alice))
    _ok(run_kavach(["env", "create", "prod"], alice))
    alice["KAVACH_ENV"] = "prod"
    assigned = [f"{name}={value}" for name, value in VALUES.items()]
    _ok(run_kavach(["secret", "set", *assigned, "-m", "first", "--yes"], alice))
    token = _ok(run_kavach(["token", "create", "ci", "-r", "viewer"], alice)).strip()
    dump = ["--", sys.executable, "-c", DUMP, *VALUES]
    kept, by_token = tmp_path / "kept" / "prod.enc", tmp_path / "kept" / "ci.enc"
    as_ci = {**cli.env(server.url), "KAVACH_TOKEN": token}

    # Read once with the server up: the login's and the token's fallbacks are written.
    assert _dumped(run_kavach(["run", "--fallback", str(kept), *dump], alice)) == VALUES
    assert _dumped(run_kavach(["run", "--fallback", str(by_token), *dump], as_ci)) == VALUES
    assert kept.stat().st_mode & 0o777 == 0o600
    assert not any(value in kept.read_text() for value in VALUES.values())

    server.stop()

    # Down: the values come from the fallback, with a warning naming its age.
    result = run_kavach(["run", "--fallback", str(kept), *dump], alice)
    assert _dumped(result) == VALUES
    assert WARNING.match(result.stderr.strip()), result.stderr
    assert not any(value in result.stderr for value in VALUES.values())
    # --fallback-only never tries the server; the token opens only its own file.
    offline = run_kavach(["run", "--fallback", str(by_token), "--fallback-only", *dump], as_ci)
    assert _dumped(offline) == VALUES
    assert offline.stderr == ""
    locked = run_kavach(["run", "--fallback", str(kept), "--fallback-only", *dump], as_ci)
    assert locked.code == 3, locked
    assert locked.stderr.strip().endswith("or it was altered (fallback_locked)"), locked.stderr

    # A fallback written three hours ago: refused by a one-hour bound, used under a day's.
    seed = cli.credentials()[server.url]["fallback_seed"]
    sealed = json.loads(kept.read_text())
    old = tmp_path / "old.enc"
    write(
        old,
        seal(
            f"login\0{seed}".encode(),
            server=server.url,
            environment_id=sealed["environment_id"],
            environment="acme/web/prod",
            version=None,
            secrets={"API_KEY": "from three hours ago"},
            now=datetime.now(UTC) - timedelta(hours=3, minutes=12),
        ),
    )
    too_old = run_kavach(["run", "--fallback", str(old), "--fallback-max-age", "1h", *dump], alice)
    assert too_old.code == 1, too_old
    assert too_old.stderr.strip() == (
        f"Error: the fallback {old} was written 3h12m ago, longer than --fallback-max-age 1h "
        "allows (fallback_too_old)"
    )
    within = run_kavach(["run", "--fallback", str(old), "--fallback-max-age", "1d", *dump], alice)
    assert _dumped(within)["API_KEY"] == "from three hours ago"
    assert "using fallback written 3h12m ago" in within.stderr
