"""`kavach --help` stays fast: no heavy library is imported to print it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = {"httpx", "fastapi", "sqlalchemy", "keyring", "yaml", "pydantic", "filelock"}

PROBE = """
import json, sys
import kavach.cli.main as main
try:
    main.app(["--help"], prog_name="kavach")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(json.dumps(sorted(sys.modules)))
"""


def test_help_runs_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kavach.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    commands = ("login", "logout", "status", "version", "info", "server")
    for command in (*commands, "org", "group", "env", "user-group", "token", "secret", "run"):
        assert command in result.stdout


def test_help_imports_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.splitlines()[-1])
    assert "kavach.cli.main" in modules
    loaded = sorted({name.split(".")[0] for name in modules} & HEAVY)
    assert loaded == []
    assert not any(name.startswith("kavach.server.") for name in modules)
