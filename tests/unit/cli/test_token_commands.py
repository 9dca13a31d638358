"""`kavach token …`: the token is printed once, on stdout alone, and stored nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from kavach.cli.credentials import CredentialStore
from kavach.cli.durations import parse_duration

from .conftest import Invoke, make_credentials, table_header, table_rows, use_context
from .fake_api import FakeApi, FakeServer
from .fake_iam import Node

pytestmark = pytest.mark.usefixtures("logged_in")


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, owned by alice and active."""
    use_context(home, "acme", "web", "prod")
    web = api.iam.group(api.iam.org("acme"), "web")
    return api.iam.env(web, "prod")


def _files(home: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in home.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("45m", 2700), ("12h", 43200), ("30d", 2592000), ("2W", 1209600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0d", "-5", "1.5h", "3x", "h", "1d2h", "d30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration"):
        parse_duration(text)


def test_create_prints_the_token_once_on_stdout_alone(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    before = _files(home)
    result = invoke(["--verbose", "token", "create", "ci", "-r", "viewer"])

    assert result.exit_code == 0, result.output
    (minted,) = api.iam.tokens.values()
    assert minted.value.startswith("kvt_")
    assert result.stdout == minted.value + "\n"
    assert result.stdout.count(minted.value) == 1
    assert minted.value not in result.stderr  # --verbose logs requests, never the answer
    assert "Created viewer token 'ci' for environment acme/web/prod, expiring" in result.stderr
    assert "Warning: copy the token now: it will not be shown again." in result.stderr
    assert api.requests()[-1] == (
        "POST",
        f"/environments/{prod.id}/tokens",
        {},
        {"name": "ci", "role": "viewer"},  # no expires_in: the server's default applies
    )
    # Nothing was written under KAVACH_HOME, and nothing there holds the token.
    after = _files(home)
    assert after == before
    assert not any(minted.value.encode() in content for content in after.values())


def test_create_with_expiry_and_flags_as_json(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    use_context(home)
    flags = ["--org", "acme", "--group", "web", "--env", "prod", "--json"]
    result = invoke(
        ["token", "create", "deploy", "--role", "editor", "--expires-in", "30d", *flags]
    )
    assert result.exit_code == 0, result.output
    (minted,) = api.iam.tokens.values()
    assert api.requests()[-1][3] == {"name": "deploy", "role": "editor", "expires_in": 2592000}
    data = json.loads(result.stdout)
    assert data["token"] == minted.value
    assert (data["name"], data["role"], data["environment_id"]) == ("deploy", "editor", prod.id)
    assert minted.value not in result.stderr
    assert not any(minted.value.encode() in content for content in _files(home).values())


@pytest.mark.parametrize(
    "args",
    [
        ["-r", "admin"],  # tokens are viewer or editor only
        ["-r", "viewer", "--expires-in", "soon"],
        [],  # no role
    ],
)
def test_create_usage_errors(api: FakeApi, invoke: Invoke, prod: Node, args: list[str]) -> None:
    result = invoke(["token", "create", "ci", *args])
    assert result.exit_code == 2
    assert "Usage: kavach token create" in result.stderr
    assert api.calls == []


def test_create_beyond_the_servers_limit(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["token", "create", "ci", "-r", "viewer", "--expires-in", "400d"])
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == "Error: expires_in must be 1 s to 1 year (validation_failed)\n"


def test_create_needs_an_environment(api: FakeApi, invoke: Invoke, home: Path) -> None:
    use_context(home, "acme", "web")
    result = invoke(["token", "create", "ci", "-r", "viewer"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no environment selected in secret group acme/web: "
        "pass --env NAME or run `kavach env activate NAME`\n"
    )
    assert api.calls == []


def test_token_create_captured_by_a_shell(
    api: FakeApi, home: Path, prod: Node, store: CredentialStore
) -> None:
    """In a real process, stdout carries exactly the token (what `$(...)` captures)."""
    with FakeServer(api) as server:
        access, refresh = api.issue()
        store.save(server.url, make_credentials(access, refresh))
        env = {**os.environ, "KAVACH_HOME": str(home), "KAVACH_SERVER": server.url}
        command = [sys.executable, "-m", "kavach.cli", "token", "create", "ci", "-r", "viewer"]
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    (minted,) = api.iam.tokens.values()
    assert done.stdout == minted.value + "\n"
    assert minted.value not in done.stderr
    assert "it will not be shown again" in done.stderr


def test_list_shows_status_but_never_a_value(
    api: FakeApi, invoke: Invoke, prod: Node, home: Path
) -> None:
    ci = api.iam.token(prod, "ci")
    old = api.iam.token(prod, "old", "editor", revoked=True)
    result = invoke(["token", "list"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == ("GET", f"/environments/{prod.id}/tokens", {"limit": "1000"}, None)
    header = ["Name", "ID", "Role", "Status", "Expires", "Last used", "Workload"]
    assert table_header(result.stdout) == header
    rows = table_rows(result.stdout)
    assert [row[:4] for row in rows] == [
        ["ci", ci.id, "viewer", "active"],
        ["old", old.id, "editor", "revoked"],
    ]
    data = json.loads(invoke(["token", "list", "--json"]).stdout)
    assert data["next"] is None
    rows = data["items"]
    assert [(row["name"], row["status"]) for row in rows] == [("ci", "active"), ("old", "revoked")]
    assert "token" not in rows[0]
    assert ci.value not in result.stdout


def test_list_marks_expired_tokens(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.iam.token(prod, "stale").expires_at = datetime.now(UTC) - timedelta(days=1)
    data = json.loads(invoke(["token", "list", "--json"]).stdout)
    assert data["items"][0]["status"] == "expired"


def test_list_empty(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["token", "list"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "No service tokens for environment acme/web/prod.\n"


def test_revoke_by_name_needs_yes(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    ci = api.iam.token(prod, "ci")
    refused = invoke(["token", "revoke", "ci"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: not confirmed: pass --yes to revoke token 'ci' ({ci.id}) "
        "for environment acme/web/prod (stdin is not a terminal)\n"
    )
    assert ci.revoked_at is None

    result = invoke(["token", "revoke", "ci", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Revoked token 'ci' ({ci.id}) for environment acme/web/prod.\n"
    assert api.requests()[-2:] == [
        ("GET", f"/environments/{prod.id}/tokens", {"limit": "1000", "name": "ci"}, None),
        ("DELETE", f"/environments/{prod.id}/tokens/{ci.id}", {}, None),
    ]
    assert ci.revoked_at is not None


def test_revoke_by_id_as_json(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.iam.token(prod, "ci", revoked=True)
    ci = api.iam.token(prod, "ci")
    result = invoke(["token", "revoke", ci.id, "-y", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["id"], data["name"]) == (ci.id, "ci")
    assert data["revoked_at"] is not None
    assert "token" not in data


def test_revoke_by_name_skips_revoked_tokens(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.iam.token(prod, "ci", revoked=True)
    ci = api.iam.token(prod, "ci")
    result = invoke(["token", "revoke", "ci", "-y"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1][1] == f"/environments/{prod.id}/tokens/{ci.id}"


def test_revoke_unknown_revoked_or_ambiguous(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.iam.token(prod, "old", revoked=True)
    first, second = api.iam.token(prod, "twin"), api.iam.token(prod, "twin")
    cases = [
        (["nope"], 4, "Error: no token named 'nope' or with that id in environment acme/web/prod"),
        (["old"], 1, "Error: token 'old' in environment acme/web/prod is already revoked"),
        (
            ["twin"],
            1,
            "Error: several tokens are named 'twin' in environment acme/web/prod; "
            f"pass one id: {first.id}, {second.id}",
        ),
    ]
    for args, code, line in cases:
        result = invoke(["token", "revoke", *args, "--yes"])
        assert result.exit_code == code, result.output
        assert result.stderr.splitlines() == [line + (" (not_found)" if code == 4 else "")]
    assert "DELETE" not in [call.method for call in api.calls]


def test_revoke_prompts_on_a_terminal(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    ci = api.iam.token(prod, "ci")
    result = invoke(["token", "revoke", "ci"], terminal=True, input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Revoke token 'ci' ({ci.id}) for environment acme/web/prod? [y/N]: "
    assert ci.revoked_at is not None


def test_a_viewer_cannot_manage_tokens(api: FakeApi, invoke: Invoke, home: Path) -> None:
    shared = api.iam.org("shared", role="viewer")
    api.iam.env(api.iam.group(shared, "web"), "prod")
    result = invoke(["token", "list", "--org", "shared", "--group", "web", "--env", "prod"])
    assert result.exit_code == 3
    assert result.stderr == "Error: you may not token.read on this environment (forbidden)\n"
