"""`kavach secret sync/sync-runs/sync-run`: plan, confirm, run, report, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Invoke, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import Node
from .fake_sync import ADOPT_HINT, FakeTarget

pytestmark = pytest.mark.usefixtures("logged_in")

VALUES = {"API_KEY": "k1", "db.url": "postgres://db", "EMPTY": ""}


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, active, with github configured and one version."""
    use_context(home, "acme", "web", "prod")
    env = api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")
    api.sync.configure(env, "github", {"owner": "octo", "repository": "app"}, {"token": "t"})
    api.secrets.commit(env, VALUES)
    return env


@pytest.fixture
def target(api: FakeApi, prod: Node) -> FakeTarget:
    return api.sync.target(prod, "github")


def sync_posts(api: FakeApi) -> list[Any]:
    return [body for method, path, _, body in api.requests() if path.endswith("/secrets/sync")]


def plan_body(**extra: Any) -> dict[str, Any]:
    return {"provider": "github", "dry_run": True, "prune": False, "adopt": False, **extra}


def test_sync_plans_then_runs_the_planned_version(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    version = api.secrets.latest(prod)
    assert version is not None

    result = invoke(["secret", "sync", "-p", "github", "--yes"])

    assert result.exit_code == 0, result.output
    assert [(m, p) for m, p, _, _ in api.requests()][-2:] == [
        ("POST", f"/environments/{prod.id}/secrets/sync"),
        ("POST", f"/environments/{prod.id}/secrets/sync"),
    ]
    assert sync_posts(api) == [
        plan_body(),
        # The run is pinned to the version the plan showed.
        {**plan_body(), "dry_run": False, "version_id": version.id},
    ]
    assert target.remote == {"API_KEY": "k1", "DB_URL": "postgres://db", "EMPTY": ""}
    plan, results = result.stdout.split("Plan: ")
    assert plan.startswith(
        f"Sync plan for environment acme/web/prod: version {version.id} -> github:octo/app\n"
    )
    assert table_rows(plan) == [
        ["create", "API_KEY", "API_KEY", "-"],
        ["create", "EMPTY", "EMPTY", "-"],
        ["create", "db.url", "DB_URL", "-"],
    ]
    assert results.startswith("3 to create.\n")
    assert table_rows(results) == [
        ["API_KEY", "API_KEY", "create", "succeeded", "1", "-"],
        ["EMPTY", "EMPTY", "create", "succeeded", "1", "-"],
        ["db.url", "DB_URL", "create", "succeeded", "1", "-"],
    ]
    run_id = api.sync.runs[prod.id][-1]["id"]
    assert results.endswith(f"Sync {run_id[:8]} succeeded: 3 written.\n")
    assert result.stderr == "Syncing 3 secret(s) to github:octo/app…\n"
    for value in ("k1", "postgres://db"):
        assert value not in result.output


def test_flags_and_version_go_to_both_requests(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    first = api.secrets.latest(prod)
    assert first is not None
    api.secrets.commit(prod, {"API_KEY": "k2"})

    result = invoke(["secret", "sync", "-p", "github", "-v", first.id, "--prune", "--adopt", "-y"])

    assert result.exit_code == 0, result.output
    flags = {"prune": True, "adopt": True, "version_id": first.id}
    assert sync_posts(api) == [plan_body(**flags), {**plan_body(**flags), "dry_run": False}]
    assert target.remote["API_KEY"] == "k1"


def test_a_bad_version_id_is_refused_before_any_request(api: FakeApi, invoke: Invoke) -> None:
    result = invoke(["secret", "sync", "-p", "github", "-v", "NOPE", "--yes"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --version 'NOPE' is not a version: give its id")
    assert api.requests() == []


def test_dry_run_shows_the_plan_and_writes_nothing(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    target.remote["API_KEY"] = "theirs"
    target.remote["OLD"] = "x"
    target.ledger["OLD"] = ("OLD", "x")
    target.ledger["EMPTY"] = ("EMPTY", "")
    target.remote["EMPTY"] = ""

    result = invoke(["secret", "sync", "-p", "github", "--dry-run", "--prune"])

    assert result.exit_code == 0, result.output
    assert sync_posts(api) == [plan_body(prune=True)]
    assert target.writes == []
    assert target.remote == {"API_KEY": "theirs", "OLD": "x", "EMPTY": ""}
    rows = table_rows(result.stdout)
    assert [row[:3] for row in rows if row[0]] == [
        ["unmanaged", "API_KEY", "API_KEY"],
        ["unchanged", "EMPTY", "EMPTY"],
        ["delete", "OLD", "OLD"],
        ["create", "db.url", "DB_URL"],
    ]
    note = " ".join(" ".join(row[3] for row in rows[:-3]).split())
    assert note == ADOPT_HINT
    assert result.stdout.endswith("Plan: 1 to create, 1 to delete, 1 unchanged, 1 unmanaged.\n")
    assert result.stderr == ""


def test_dry_run_as_json_prints_the_plan(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "sync", "-p", "github", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["status"] == "planned"
    assert {item["status"] for item in plan["items"]} == {"planned"}


def test_without_a_terminal_sync_needs_yes(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    result = invoke(["secret", "sync", "-p", "github"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not confirmed: pass --yes to sync environment acme/web/prod to github:octo/app: "
        "3 to create (stdin is not a terminal)\n"
    )
    assert "Plan: 3 to create." in result.stdout
    assert sync_posts(api) == [plan_body()]
    assert target.writes == []


@pytest.mark.parametrize(("answer", "code", "runs"), [("y\n", 0, 2), ("n\n", 1, 1), ("", 1, 1)])
def test_sync_asks_on_a_terminal(
    api: FakeApi, invoke: Invoke, prod: Node, answer: str, code: int, runs: int
) -> None:
    result = invoke(["secret", "sync", "-p", "github"], input=answer, terminal=True)
    assert result.exit_code == code, result.output
    assert (
        "Sync environment acme/web/prod to github:octo/app: 3 to create? [y/N]: " in result.stderr
    )
    assert len(sync_posts(api)) == runs


def test_nothing_to_write_asks_nothing_and_runs_nothing(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    assert invoke(["secret", "sync", "-p", "github", "--yes"]).exit_code == 0
    target.writes.clear()
    before = len(sync_posts(api))

    result = invoke(["secret", "sync", "-p", "github"])

    assert result.exit_code == 0, result.output
    assert len(sync_posts(api)) == before + 1  # the plan only
    assert target.writes == []
    assert result.stdout.endswith(
        "Plan: 3 unchanged.\nNothing to sync: github:octo/app is up to date.\n"
    )


def test_refused_secrets_alone_exit_2_and_name_adopt(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    target.remote.update({"API_KEY": "theirs", "DB_URL": "theirs", "EMPTY": "theirs"})

    result = invoke(["secret", "sync", "-p", "github", "--yes"])

    assert result.exit_code == 4
    assert len(sync_posts(api)) == 1
    assert result.stderr == (
        "Error: nothing synced: 3 refused (API_KEY, EMPTY, db.url): they exist on the target "
        "but Kavach did not write them; --adopt takes them over\n"
    )

    adopted = invoke(["secret", "sync", "-p", "github", "--yes", "--adopt"])
    assert adopted.exit_code == 0, adopted.output
    assert target.remote == {"API_KEY": "k1", "DB_URL": "postgres://db", "EMPTY": ""}


def test_a_failed_secret_makes_the_run_partial_and_exit_2(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    target.failures["DB_URL"] = "GitHub answered 403: Resource not accessible by token"
    target.attempts["DB_URL"] = 1
    target.attempts["API_KEY"] = 3

    result = invoke(["secret", "sync", "-p", "github", "--yes"])

    assert result.exit_code == 4
    rows = table_rows(result.stdout.split("Plan: ")[1])
    assert [row[:5] for row in rows if row[0]] == [
        ["API_KEY", "API_KEY", "create", "succeeded", "3"],
        ["EMPTY", "EMPTY", "create", "succeeded", "1"],
        ["db.url", "DB_URL", "create", "failed", "1"],
    ]
    error = " ".join(" ".join(row[5] for row in rows[2:]).split())
    assert error == "GitHub answered 403: Resource not accessible by token"
    assert "partial: 2 written, 1 failed." in result.stdout
    assert result.stderr.endswith(
        "Error: sync to github:octo/app only partly succeeded: 1 failed (db.url): run the sync "
        "again to retry\n"
    )

    del target.failures["DB_URL"]
    again = invoke(["secret", "sync", "-p", "github", "--yes"])
    assert again.exit_code == 0, again.output
    assert target.remote["DB_URL"] == "postgres://db"
    assert "succeeded: 1 written, 2 unchanged." in again.stdout


def test_json_prints_the_run_and_keeps_the_exit_code(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    target.failures["EMPTY"] = "boom"
    result = invoke(["secret", "sync", "-p", "github", "--yes", "--json"])
    assert result.exit_code == 4
    run = json.loads(result.stdout)
    assert (run["status"], run["dry_run"]) == ("partial", False)
    assert [i["status"] for i in run["items"]] == ["succeeded", "failed", "succeeded"]
    report = json.loads(result.stderr.splitlines()[-1])  # under --json, the error too
    assert report["error"].startswith("sync to github:octo/app only partly succeeded")


def test_another_sync_running_is_a_clear_409(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget
) -> None:
    api.sync.busy.add("github")
    result = invoke(["secret", "sync", "-p", "github", "--yes"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: another sync to the same github target is running, so this one did not start "
        "and wrote nothing; try again when it has ended (sync_in_progress)\n"
    )
    assert target.writes == []


def test_syncing_to_a_provider_not_configured(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "sync", "-p", "azure", "--yes"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: provider 'azure' is not configured for this environment; configure it with "
        "`kavach provider configure azure` (not_found)\n"
    )


def test_a_viewer_service_token_may_not_sync(
    api: FakeApi, invoke: Invoke, prod: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", api.iam.token(prod, "ci", "viewer").value)
    assert invoke(["secret", "sync", "-p", "github", "--yes"]).exit_code == 3
    monkeypatch.setenv("KAVACH_TOKEN", api.iam.token(prod, "deploy", "editor").value)
    assert invoke(["secret", "sync", "-p", "github", "--yes"]).exit_code == 0


# ---- runs ----------------------------------------------------------------------------------


def test_sync_runs_lists_newest_first(
    api: FakeApi, invoke: Invoke, prod: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert invoke(["secret", "sync", "-p", "github", "--yes"]).exit_code == 0

    result = invoke(["secret", "sync-runs", "--limit", "5"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == ("GET", f"/environments/{prod.id}/sync-runs", {"limit": "5"}, None)
    assert "Older runs" not in result.stderr
    runs = api.sync.runs[prod.id]
    rows = [row for row in table_rows(result.stdout) if row[0]]
    assert [row[0] for row in rows] == [runs[1]["id"][:8], runs[0]["id"][:8]]
    listed = json.loads(invoke(["secret", "sync-runs", "--json"]).stdout)
    assert listed["next"] is None
    assert [run["status"] for run in listed["items"]] == ["succeeded", "planned"]
    assert "items" not in listed["items"][0]


@pytest.mark.parametrize("how", ["full", "prefix"])
def test_sync_run_shows_one_run_by_id_or_prefix(
    api: FakeApi, invoke: Invoke, prod: Node, target: FakeTarget, how: str
) -> None:
    target.failures["API_KEY"] = "GitHub answered 403"
    assert invoke(["secret", "sync", "-p", "github", "--yes"]).exit_code == 4
    run = api.sync.runs[prod.id][-1]
    wanted = run["id"] if how == "full" else run["id"][:6]

    result = invoke(["secret", "sync-run", wanted])

    assert result.exit_code == 0, result.output  # reading a partial run succeeds
    assert api.requests()[-1][:2] == ("GET", f"/environments/{prod.id}/sync-runs/{run['id']}")
    assert "Status: partial" in result.stdout
    assert "GitHub answered 403" in result.stdout
    shown = json.loads(invoke(["secret", "sync-run", wanted, "--json"]).stdout)
    assert shown == run


@pytest.mark.parametrize(
    ("wanted", "code", "message"),
    [
        ("zz", 1, "'zz' is not a sync run id (or the first 4+ characters of one)"),
        ("ffff", 4, "no sync run of environment acme/web/prod starts with ffff (not_found)"),
    ],
)
def test_sync_run_refuses_what_is_not_a_run(
    api: FakeApi, invoke: Invoke, prod: Node, wanted: str, code: int, message: str
) -> None:
    result = invoke(["secret", "sync-run", wanted])
    assert result.exit_code == code
    assert result.stderr == f"Error: {message}\n"


def test_sync_run_prefix_matching_several_runs(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    for _ in range(2):
        api.sync.runs.setdefault(prod.id, []).append({"id": f"abcd{len(api.sync.runs[prod.id])}"})
    result = invoke(["secret", "sync-run", "abcd"])
    assert result.exit_code == 1
    assert result.stderr == "Error: abcd matches several runs; give more of it: abcd0, abcd1\n"


# ---- start-up --------------------------------------------------------------------------------

# (pydantic is left out: typer imports it to print any subcommand's help.)
HEAVY = {"httpx", "yaml", "keyring", "filelock", "sqlalchemy", "rich.status", "rich.live"}
PROBE = """
import json, sys
import kavach.cli.main as main
try:
    main.app({args!r}, prog_name="kavach")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["provider", "--help"],
        ["provider", "configure", "gcp", "--help"],
        ["secret", "sync", "--help"],
    ],
)
def test_help_of_the_new_commands_imports_nothing_heavy(args: list[str]) -> None:
    probe = PROBE.format(args=args)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    assert not {name for name in modules if name in HEAVY or name.split(".")[0] in HEAVY}
    assert not any(name.startswith("kavach.server") for name in modules)
