"""The real CLI against the real app: what an editor stores cannot act on a reader's terminal
or make `kavach run` start code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kavach.cli.app import Runtime
from tests.conftest import InProcessServer
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.test_resources import Api, user

# Retitle the window, clear the screen, turn text around, hide it, overwrite the line.
HOSTILE = "ok\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\u2066\u200b\x7f\x08\r!"
SHOWN = "ok\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eevil\\u2066\\u200b\\x7f\\x08\\x0d!"
UNSAFE = set("\x1b\x07\x9b\u202e\u2066\u200b\x7f\x08\r")
WHERE = ("--org", "acme", "--group", "web", "--env", "prod")
DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


async def _environment(alice: Api, values: dict[str, str], message: str = "m") -> str:
    org = await alice.call(
        "POST", "/organizations/", {"name": "acme", "description": HOSTILE}, status=201
    )
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    version = await alice.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        {"message": message, "set": values},
        status=201,
    )
    return str(version["id"])


@pytest.fixture
def as_alice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return a runner of `kavach ARGS` signed in with alice's token."""

    async def runner(alice: Api, *args: str, terminal: bool = False) -> Any:
        token = alice.headers["Authorization"].removeprefix("Bearer ")
        for name, value in {
            "KAVACH_HOME": str(tmp_path / "home"),
            "KAVACH_SERVER": "http://127.0.0.1:8080",
            "KAVACH_TOKEN": token,
            "KAVACH_CREDENTIAL_STORE": "file",
            "COLUMNS": "400",
        }.items():
            monkeypatch.setenv(name, value)
        runtime = Runtime(
            transport=LoopBridge(alice.server, asyncio.get_running_loop()),
            stdout_is_terminal=lambda: terminal,
        )
        return await run_cli(*args, runtime=runtime)

    return runner


def _safe(text: str) -> bool:
    return not UNSAFE & set(text)


async def test_server_text_is_shown_escaped_and_json_keeps_it_exactly(
    server: InProcessServer, as_alice: Any
) -> None:
    alice = await user(server, "alice")
    version = await _environment(alice, {"API_KEY": HOSTILE}, message=HOSTILE)

    commands: list[tuple[str, ...]] = [
        ("secret", "list", *WHERE),
        ("secret", "details", "-v", version, "--reveal", *WHERE),
        ("secret", "history", "API_KEY", "--reveal", *WHERE),
        ("audit", "list", *WHERE),
    ]
    for args in commands:
        result = await as_alice(alice, *args)
        assert result.exit_code == 0, result.output
        assert _safe(result.stdout) and _safe(result.stderr), args
        if args[0] != "audit":
            assert SHOWN in result.stdout, args
    listed = await as_alice(alice, "org", "list")
    assert listed.exit_code == 0, listed.output
    assert _safe(listed.stdout) and SHOWN in listed.stdout

    # Machine output keeps the data exactly, spelled so that a terminal shows it as it is.
    as_json = await as_alice(
        alice, "secret", "details", "-v", version, "--reveal", "--json", *WHERE
    )
    assert as_json.exit_code == 0, as_json.output
    assert _safe(as_json.stdout)
    data = json.loads(as_json.stdout)
    assert (data["message"], data["secrets"]["API_KEY"]) == (HOSTILE, HOSTILE)

    # `secret get` is exact into a pipe or file, escaped on a terminal.
    piped = await as_alice(alice, "secret", "get", "API_KEY", *WHERE)
    assert piped.stdout_bytes == HOSTILE.encode()
    shown = await as_alice(alice, "secret", "get", "API_KEY", *WHERE, terminal=True)
    assert shown.stdout == SHOWN + "\n"


HAZARDS = {
    # `git status` runs core.fsmonitor as a command.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "core.fsmonitor",
    "GIT_CONFIG_VALUE_0": "touch pwned; false",
    "GIT_SSH_COMMAND": "touch pwned",
    "GIT_EXTERNAL_DIFF": "touch pwned",
    "JDK_JAVA_OPTIONS": "-javaagent:/attacker/agent.jar",
    "_JAVA_OPTIONS": "-javaagent:/attacker/agent.jar",
    "PROMPT_COMMAND": "touch pwned",
    "PAGER": "touch pwned",
    "EDITOR": "touch pwned",
    "VISUAL": "touch pwned",
    "LUA_INIT": "os.execute('touch pwned')",
    "PERL5OPT": "-Mpwned",
    "RUBYOPT": "-rpwned",
    "SSLKEYLOGFILE": "/attacker/keys",
    "HTTPS_PROXY": "http://attacker.example",
    "https_proxy": "http://attacker.example",
    "SSL_CERT_FILE": "/attacker/ca.pem",
    "REQUESTS_CA_BUNDLE": "/attacker/ca.pem",
    "NODE_OPTIONS": "--require /attacker/pwned.js",
    "BASH_ENV": "$(touch pwned)",
}


async def test_run_keeps_code_running_names_from_the_child_unless_allowed(
    server: InProcessServer, as_alice: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    await _environment(alice, {**HAZARDS, "API_KEY": "sk_live_0123456789abcdef"})
    repo = tmp_path / "repo"
    git_init = ["git", "init", "-q", str(repo)]
    await asyncio.to_thread(subprocess.run, git_init, check=True)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in HAZARDS:
        monkeypatch.delenv(name, raising=False)

    git = await as_alice(alice, "run", *WHERE, "--", "git", "status", "--short")
    assert git.exit_code == 0, git.output
    assert not (repo / "pwned").exists()
    assert git.stderr.splitlines() == [
        f"Warning: {name} not set: reserved ({family}); --allow-env {name} sets it"
        for name, family in sorted((name, _family(name)) for name in HAZARDS)
    ]
    assert "touch" not in git.stderr and "attacker" not in git.stderr

    out = tmp_path / "env.json"
    dump = ("--", sys.executable, "-c", DUMP, str(out))
    allowed = await as_alice(alice, "run", *WHERE, "--allow-env", "HTTPS_PROXY", *dump)
    assert allowed.exit_code == 0, allowed.output
    env = json.loads(out.read_text())
    assert env["API_KEY"] == "sk_live_0123456789abcdef"
    assert env["HTTPS_PROXY"] == "http://attacker.example"
    assert not (set(HAZARDS) - {"HTTPS_PROXY"}) & set(env)
    # The caller's token signed kavach in; the command does not get it.
    assert "KAVACH_TOKEN" not in env
    assert "Note: reserved HTTPS_PROXY set from a secret" in allowed.stderr.splitlines()
    assert "Warning: HTTPS_PROXY" not in allowed.stderr

    pattern = await as_alice(alice, "run", *WHERE, "--allow-env", "GIT_*", *dump)
    assert pattern.exit_code == 1
    assert "--allow-env takes variable names, one per option, not patterns: GIT_*" in (
        pattern.stderr
    )


def _family(name: str) -> str:
    from kavach.cli.child_env import reserved_family

    family = reserved_family(name)
    assert family is not None, name
    return family.name
