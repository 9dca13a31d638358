"""The everyday commands, driven through the real CLI against the real app: `secrets`,
`secret set/unset`, version selectors, `diff --exit-code`, and errors under --json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kavach.cli.app import Runtime
from kavach.cli.errors import ExitCode
from tests.conftest import InProcessServer
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.test_resources import Api, user

# The CLI's surface does not depend on the database; one is enough here.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
WHERE = ("--org", "acme", "--group", "web", "--env", "prod")
LONG = "sk_live_0123456789abcdef"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return a runner of `kavach ARGS` as the given user, stdout a pipe unless `terminal`."""

    async def runner(
        api: Api, *args: str, terminal: bool = False, token: str | None = None, server: bool = True
    ) -> Any:
        token = token or api.headers["Authorization"].removeprefix("Bearer ")
        for name, value in {
            "KAVACH_HOME": str(tmp_path / "home"),
            "KAVACH_TOKEN": token,
            "KAVACH_CREDENTIAL_STORE": "file",
        }.items():
            monkeypatch.setenv(name, value)
        if server:
            monkeypatch.setenv("KAVACH_SERVER", "http://127.0.0.1:8080")
        else:
            monkeypatch.delenv("KAVACH_SERVER", raising=False)
        runtime = Runtime(
            transport=LoopBridge(api.server, asyncio.get_running_loop()),
            stdout_is_terminal=lambda: terminal,
            stdin_is_terminal=lambda: False,
        )
        return await run_cli(*args, runtime=runtime)

    return runner


async def _prod(alice: Api) -> str:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return str(env["id"])


async def test_set_and_unset_commit_at_once_and_secrets_shows_them(
    server: InProcessServer, cli: Any
) -> None:
    alice = await user(server, "alice")
    env = await _prod(alice)
    empty = await cli(alice, "secrets", *WHERE)
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "environment acme/web/prod has no versions yet." in empty.stderr

    refused = await cli(alice, "secret", "set", f"API_KEY={LONG}", "-m", "first", *WHERE)
    assert refused.exit_code == ExitCode.LOCAL
    assert "pass --yes" in refused.stderr
    made = await cli(alice, "secret", "set", f"API_KEY={LONG}", "DB=x", "-m", "first", "-y", *WHERE)
    assert made.exit_code == 0, made.output
    assert made.stdout.splitlines()[-1].startswith("Committed v1 (")
    assert LONG not in made.output  # the change shown masks values
    second = await cli(alice, "secret", "set", "DB=y", "-m", "second", "--yes", *WHERE)
    assert second.stdout.splitlines()[-1].startswith("Committed v2 (")

    shown = await cli(alice, "secrets", *WHERE)
    assert shown.stdout == "Name\tValue\nAPI_KEY\tsk••••••\nDB\t••••••\n"
    assert "Secrets of environment acme/web/prod at v2 (" in shown.stderr
    assert (await cli(alice, "secret", "ls", "--plain", *WHERE)).stdout == "API_KEY\nDB\n"
    revealed = await cli(alice, "secrets", "--plain", "--reveal", "-v", "v1", *WHERE)
    assert revealed.stdout == f"API_KEY={LONG}\nDB=x\n"
    data = json.loads((await cli(alice, "secrets", "--json", "-v", "latest~1", *WHERE)).stdout)
    assert data["version"]["seq"] == 1
    assert data["secrets"] == {"API_KEY": None, "DB": None}  # masked: no values without reveal

    gone = await cli(alice, "secret", "unset", "DB", "-m", "third", "--yes", "--json", *WHERE)
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.stdout)["seq"] == 3
    latest = await alice.call("GET", f"/environments/{env}/secrets")
    assert latest["secrets"] == {"API_KEY": LONG}
    missing = await cli(alice, "secret", "unset", "NOPE", "-m", "m", "--yes", *WHERE)
    assert missing.exit_code == ExitCode.SERVER
    assert "NOPE: not set in environment acme/web/prod (v3" in missing.stderr


async def test_versions_are_chosen_by_number_or_from_the_latest_everywhere(
    server: InProcessServer, cli: Any
) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    for n in (1, 2, 3):
        result = await cli(alice, "secret", "set", f"N={n}", "-m", f"m{n}", "--yes", *WHERE)
        assert result.exit_code == 0, result.output
    assert (await cli(alice, "secret", "get", "N", "-v", "v1", *WHERE)).stdout == "1"
    assert (await cli(alice, "secret", "get", "N", "-v", "latest~1", *WHERE)).stdout == "2"
    details = await cli(alice, "secret", "details", "-v", "2", "--json", *WHERE)
    assert json.loads(details.stdout)["message"] == "m2"
    one = json.loads((await cli(alice, "secret", "get", "N", "-v", "1", "--json", *WHERE)).stdout)
    assert (one["name"], one["value"], one["version"]["seq"]) == ("N", "1", 1)
    back = await cli(alice, "secret", "rollback", "-v", "latest~2", "-m", "undo", "-y", *WHERE)
    assert back.exit_code == 0, back.output
    assert (await cli(alice, "secret", "get", "N", *WHERE)).stdout == "1"
    bad = await cli(alice, "secret", "get", "N", "-v", "HEAD^", *WHERE)
    assert bad.exit_code == ExitCode.LOCAL
    assert "is not a version: give its id" in bad.stderr
    absent = await cli(alice, "secret", "get", "N", "-v", "v9", *WHERE)
    assert absent.exit_code == ExitCode.SERVER
    assert "version 'v9' not found" in absent.stderr


async def test_diff_exit_code_says_whether_there_are_differences(
    server: InProcessServer, cli: Any
) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    await cli(alice, "secret", "set", "A=1", "-m", "one", "--yes", *WHERE)
    await cli(alice, "secret", "set", "A=2", "-m", "two", "--yes", *WHERE)
    differs = await cli(alice, "secret", "diff", "--exit-code", *WHERE)
    assert differs.exit_code == 1, differs.output
    same = await cli(alice, "secret", "diff", "--exit-code", "--from", "v2", "--to", "2", *WHERE)
    assert same.exit_code == 0, same.output
    plain = await cli(alice, "secret", "diff", *WHERE)
    assert plain.exit_code == 0


async def test_errors_under_json_are_json_on_stderr(server: InProcessServer, cli: Any) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    missing = await cli(alice, "secret", "get", "NOPE", "--json", *WHERE)
    assert missing.exit_code == ExitCode.SERVER
    assert missing.stdout == ""
    report = json.loads(missing.stderr)
    assert report["error_code"] == "not_found"
    assert "NOPE is not set in environment acme/web/prod" in report["error"]
    local = await cli(alice, "--json", "secret", "get", "bad name", *WHERE)
    report = json.loads(local.stderr)
    assert report["error"].startswith("'bad name' is not a valid secret name: ")
    assert report["error_code"] == "local_error"
    usage = await cli(alice, "secrets", "--bogus", "--json")
    assert usage.exit_code == ExitCode.USAGE
    assert json.loads(usage.stderr)["error_code"] == "usage"


async def test_no_color_and_quiet(
    server: InProcessServer, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    await cli(alice, "secret", "set", "A=1", "-m", "one", "--yes", *WHERE)
    colored = await cli(alice, "secret", "get", "NOPE", *WHERE, terminal=True)
    assert colored.exit_code == ExitCode.SERVER
    for args in (("--no-color",), ()):
        if not args:
            monkeypatch.setenv("NO_COLOR", "1")
        shown = await cli(alice, *args, "secrets", "--reveal", *WHERE, terminal=True)
        assert "\x1b[" not in shown.output, args
        assert "A" in shown.stdout and "1" in shown.stdout
    quiet = await cli(alice, "--quiet", "secrets", *WHERE)
    assert (quiet.stdout, quiet.stderr) == ("Name\tValue\nA\t••••••\n", "")


async def test_a_directory_s_kavach_yaml_chooses_the_context_below_flags_and_variables(
    server: InProcessServer, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    org = (await alice.call("GET", "/organizations/by-name/acme"))["id"]
    groups = await alice.call("GET", f"/organizations/{org}/secret-groups")
    group = groups["items"][0]["id"]
    await alice.call("POST", f"/secret-groups/{group}/environments", {"name": "dev"}, status=201)
    await cli(alice, "secret", "set", "WHERE=prod", "-m", "m", "--yes", *WHERE)
    await cli(alice, "secret", "set", "WHERE=dev", "-m", "m", "--yes", *WHERE[:4], "--env", "dev")
    project = tmp_path / "app"
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project)
    missing = await cli(alice, "setup", "--org", "acme", "--group", "web", "--env", "nope")
    assert missing.exit_code == ExitCode.SERVER
    assert not (project / ".kavach.yaml").exists()
    wrote = await cli(alice, "setup", "--org", "acme", "--group", "web", "--env", "prod")
    assert wrote.exit_code == 0, wrote.output
    written = (project / ".kavach.yaml").read_text()
    assert "org: acme\ngroup: web\nenv: prod\n" in written
    assert (project / ".kavach.yaml").stat().st_mode & 0o777 == 0o644
    assert project.stat().st_mode & 0o777 != 0o700  # the project's directory is left as it was

    monkeypatch.chdir(project / "src" / "deep")
    read = await cli(alice, "secret", "get", "WHERE")
    assert (read.exit_code, read.stdout) == (0, "prod")
    status = json.loads((await cli(alice, "status", "--json")).stdout)
    assert status["context"] == {
        "organization": "acme",
        "secret_group": "web",
        "environment": "prod",
    }
    assert set(status["context_sources"].values()) == {str(project / ".kavach.yaml")}
    shown = await cli(alice, "status")
    assert f"Environment: prod (from {project / '.kavach.yaml'})" in shown.stdout

    monkeypatch.setenv("KAVACH_ENV", "dev")  # a variable beats the file
    assert (await cli(alice, "secret", "get", "WHERE")).stdout == "dev"
    assert (await cli(alice, "secret", "get", "WHERE", "--env", "prod")).stdout == "prod"
    monkeypatch.setenv("KAVACH_ORG", "other")  # another organization: the file's group is not its
    elsewhere = await cli(alice, "secret", "get", "WHERE")
    assert elsewhere.exit_code == ExitCode.LOCAL
    assert "no secret group selected in organization 'other'" in elsewhere.stderr


async def test_a_kavach_yaml_holding_a_token_or_unknown_keys_is_refused(
    server: InProcessServer, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    monkeypatch.chdir(tmp_path)
    for text, says in (
        ("org: acme\ntoken: kvt_secret\n", "holds a token: remove it"),
        ("org: acme\nenvironment: prod\n", "unknown key(s) environment; known: org, group, env"),
        ("- a list\n", "must hold a mapping"),
        ("org: [1]\n", "'org' must be a non-empty string"),
    ):
        (tmp_path / ".kavach.yaml").write_text(text)
        result = await cli(alice, "secrets")
        assert result.exit_code == ExitCode.LOCAL, text
        assert says in result.stderr, result.stderr
        assert "kvt_secret" not in result.output


async def test_a_service_token_needs_only_itself_and_the_server_of_kavach_yaml(
    server: InProcessServer, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    env = await _prod(alice)
    await cli(alice, "secret", "set", "A=1", "-m", "m", "--yes", *WHERE)
    made = await alice.call(
        "POST", f"/environments/{env}/tokens", {"name": "ci", "role": "viewer"}, status=201
    )
    monkeypatch.chdir(tmp_path)
    nowhere = await cli(alice, "secrets", "--plain", "--reveal", token=made["token"], server=False)
    assert nowhere.exit_code == ExitCode.LOCAL
    assert "no server set" in nowhere.stderr
    (tmp_path / ".kavach.yaml").write_text("server: http://127.0.0.1:8080\n")
    found = await cli(alice, "secrets", "--plain", "--reveal", token=made["token"], server=False)
    assert (found.exit_code, found.stdout) == (0, "A=1\n"), found.output


async def test_tab_completes_names_from_the_server_and_then_from_its_cache(
    server: InProcessServer, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    await _prod(alice)
    await cli(alice, "secret", "set", "API_KEY=1", "API_URL=2", "DB=3", "-m", "m", "-y", *WHERE)

    async def tab(*words: str) -> list[str]:
        monkeypatch.setenv("_KAVACH_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", " ".join(("kavach", *words)))
        monkeypatch.setenv("COMP_CWORD", str(len(words)))
        try:
            result = await cli(alice, *words)
        finally:
            monkeypatch.delenv("_KAVACH_COMPLETE")
        return [str(word) for word in result.stdout.split()]

    reads = await _reads(alice)
    assert await tab("secrets", "--org", "") == ["acme"]
    assert await tab("secrets", "--org", "acme", "--group", "") == ["web"]
    assert await tab("secrets", "--org", "acme", "--group", "web", "--env", "p") == ["prod"]
    assert await tab("secret", "get", *WHERE, "API") == ["API_KEY", "API_URL"]
    assert await tab("secret", "export", "--format", "y") == ["yaml"]
    assert await _reads(alice) == reads  # names only: no value was read
    cache = tmp_path / "home" / "cache" / "completion.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    assert "API_KEY" in cache.read_text() and "=1" not in cache.read_text()
    await cli(alice, "secret", "set", "API_NEW=4", "-m", "m", "-y", *WHERE)
    # Within a minute the kept names answer, without asking the server again.
    assert await tab("secret", "get", *WHERE, "API") == ["API_KEY", "API_URL"]
    # Names are kept per server: another one is asked (here the same app answers, anew).
    other = ("--server", "http://127.0.0.2:8080", "secret", "get", *WHERE, "API")
    assert await tab(*other) == ["API_KEY", "API_NEW", "API_URL"]


async def _reads(alice: Api) -> int:
    org = (await alice.call("GET", "/organizations/by-name/acme"))["id"]
    events = await alice.call("GET", f"/audit?organization_id={org}&limit=1000")
    return sum(event["action"] == "secret.read" for event in events["items"])


async def test_references_through_the_cli(server: InProcessServer, cli: Any) -> None:
    alice = await user(server, "alice")
    env = await _prod(alice)
    group = (await alice.call("GET", f"/environments/{env}"))["secret_group_id"]
    await alice.call("POST", f"/secret-groups/{group}/environments", {"name": "shared"}, status=201)
    shared = ("--org", "acme", "--group", "web", "--env", "shared")
    assert (await cli(alice, "secret", "set", "HOST=db", "-m", "m", "-y", *shared)).exit_code == 0
    made = await cli(alice, "secret", "set", "URL=pg://${shared.HOST}/a", "-m", "m", "-y", *WHERE)
    assert made.exit_code == 0, made.output
    assert (await cli(alice, "secret", "get", "URL", *WHERE)).stdout == "pg://db/a"
    raw = await cli(alice, "secret", "get", "URL", "--raw", *WHERE)
    assert raw.stdout == "pg://${shared.HOST}/a"
    exported = await cli(alice, "secret", "export", "--format", "json", *WHERE)
    assert json.loads(exported.stdout) == {"URL": "pg://db/a"}
    # Editing carries the stored text: another change keeps the reference.
    assert (await cli(alice, "secret", "set", "HOST=db2", "-m", "m", "-y", *shared)).exit_code == 0
    assert (await cli(alice, "secret", "set", "X=1", "-m", "m", "-y", *WHERE)).exit_code == 0
    assert (await cli(alice, "secret", "get", "URL", "--raw", *WHERE)).stdout == raw.stdout
    listed = (await cli(alice, "secret", "list", *WHERE)).stdout.splitlines()
    assert listed[0].endswith("\tReferences at")
    assert [line.rsplit("\t", 1)[-1] for line in listed[1:]] == ["web/shared@v2", "web/shared@v1"]
    diff = await cli(alice, "secret", "diff", "-f", "1", "-t", "2", *WHERE)
    assert "References moved on: web/shared v1 → v2." in diff.stderr

    refused = await cli(alice, "secret", "unset", "HOST", "-m", "m", "-y", *shared)
    assert refused.exit_code == ExitCode.SERVER
    assert "web/prod.URL -> HOST" in refused.stderr and "force" in refused.stderr
    forced = await cli(alice, "secret", "unset", "HOST", "-m", "m", "-y", "--force", *shared)
    assert forced.exit_code == 0, forced.output
    assert "now failing to resolve (removed by --force): web/prod.URL -> HOST" in forced.stderr
    broken = await cli(alice, "secret", "get", "URL", *WHERE)
    assert broken.exit_code == ExitCode.SERVER and "web/shared.HOST" in broken.stderr

    assert (await cli(alice, "secret", "set", "HOST=db", "-m", "m", "-y", *shared)).exit_code == 0
    delete = ("env", "delete", "shared", "--org", "acme", "--group", "web", "--cascade", "-y")
    kept = await cli(alice, *delete)
    assert kept.exit_code == ExitCode.SERVER
    assert "web/prod.URL -> web/shared.HOST" in kept.stderr and "pass --force" in kept.stderr
    assert (await cli(alice, *delete, "--force")).exit_code == 0

    status = await cli(alice, "secret", "sync", "--status", *WHERE)
    assert (status.exit_code, status.stdout) == (0, "")
    assert "No provider is set up in environment acme/web/prod." in status.stderr
