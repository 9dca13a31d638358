"""`kavach secret commit/push/rollback`: exact requests, confirmation, version conflicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Invoke, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import Node

pytestmark = pytest.mark.usefixtures("logged_in")

SECRET = "sk_live_0123456789abcdef"


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, owned by alice and active."""
    use_context(home, "acme", "web", "prod")
    return api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")


def staging_file(home: Path, env: Node) -> Path:
    return home / "staging" / "kavach.test" / f"{env.id}.json"


def posts(api: FakeApi) -> list[tuple[str, object]]:
    return [(path, body) for method, path, _, body in api.requests() if method == "POST"]


def test_commit_sends_the_staged_change_on_top_of_its_base(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"KEEP": "k", "OLD": "o", "SAME": "s"})
    assert invoke(["secret", "add", f"NEW={SECRET}", "SAME=s"]).exit_code == 0
    assert invoke(["secret", "remove", "OLD"]).exit_code == 0

    result = invoke(["secret", "commit", "-m", "rotate", "--yes"])

    assert result.exit_code == 0, result.output
    assert posts(api) == [
        (
            f"/environments/{prod.id}/secrets/versions",
            # The no-op (SAME) is not sent; parent_version is the staging's base.
            {
                "message": "rotate",
                "set": {"NEW": SECRET},
                "unset": ["OLD"],
                "parent_version": base.id,
            },
        )
    ]
    created = api.secrets.latest(prod)
    assert created is not None
    assert created.values == {"KEEP": "k", "NEW": SECRET, "SAME": "s"}
    assert result.stdout.startswith(
        f"To commit to environment acme/web/prod (on top of v1 ({base.id})):"
    )
    assert table_rows(result.stdout) == [["added", "NEW", "sk••••••"], ["removed", "OLD", "••••••"]]
    assert result.stdout.endswith(
        f"Committed v2 ({created.id}) to environment acme/web/prod: 1 added, 1 removed; "
        "3 secret(s) in all.\n"
    )
    assert SECRET not in result.output
    assert not staging_file(home, prod).exists()


def test_commit_into_an_empty_environment_sends_no_parent(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    result = invoke(["secret", "commit", "-m", "first", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert posts(api)[-1][1] == {"message": "first", "set": {"A": "1"}}
    assert json.loads(result.stdout)["seq"] == 1


def test_commit_without_a_terminal_needs_yes(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    result = invoke(["secret", "commit", "-m", "x"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not confirmed: pass --yes to commit 1 added to environment acme/web/prod "
        "(stdin is not a terminal)\n"
    )
    assert posts(api) == []
    assert staging_file(home, prod).exists()


@pytest.mark.parametrize(("answer", "code", "sent"), [("y\n", 0, 1), ("n\n", 1, 0), ("", 1, 0)])
def test_commit_asks_on_a_terminal(
    api: FakeApi, invoke: Invoke, prod: Node, answer: str, code: int, sent: int
) -> None:
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    result = invoke(["secret", "commit", "-m", "x"], input=answer, terminal=True)
    assert result.exit_code == code
    assert "Commit 1 added to environment acme/web/prod? [y/N]: " in result.stderr
    assert len(posts(api)) == sent


def test_commit_refuses_when_the_environment_moved_on(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"A": "1", "B": "1"})
    assert invoke(["secret", "add", "A=mine"]).exit_code == 0
    latest = api.secrets.commit(prod, {"A": "1", "B": "theirs", "C": "new"})
    before = staging_file(home, prod).read_bytes()

    result = invoke(["secret", "commit", "-m", "x", "--yes"])

    assert result.exit_code == 4
    assert result.stderr == (
        f"Changed in environment acme/web/prod since {base.id}: B, C.\n"
        "Your staged changes are kept: `kavach secret status` shows them against the latest "
        "version, `kavach secret rebase` puts them on top of it; then commit again.\n"
        f"Error: environment acme/web/prod moved on from {base.id} to v2 ({latest.id}) "
        "(version_conflict)\n"
    )
    assert posts(api) == []
    assert staging_file(home, prod).read_bytes() == before
    assert api.requests()[-1] == (
        "GET",
        f"/environments/{prod.id}/secrets/diff",
        {"from": base.id, "to": latest.id},
        None,
    )


def test_commit_reports_the_servers_conflict_and_keeps_the_staging(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    """Someone commits between our check and our request: the server's 409 says what."""
    base = api.secrets.commit(prod, {"A": "1", "B": "1"})
    assert invoke(["secret", "add", "A=mine"]).exit_code == 0
    before = staging_file(home, prod).read_bytes()
    racer: list[str] = []

    def someone_else_commits() -> None:
        racer.append(api.secrets.commit(prod, {"A": "1", "B": "theirs"}).id)

    api.secrets.before_commit = someone_else_commits

    result = invoke(["secret", "commit", "-m", "x", "--yes"])

    assert result.exit_code == 4
    assert posts(api)[-1][1] == {"message": "x", "set": {"A": "mine"}, "parent_version": base.id}
    assert f"Changed in environment acme/web/prod since {base.id}: B.\n" in result.stderr
    assert result.stderr.endswith(
        f"Error: environment acme/web/prod moved on from {base.id} to v2 ({racer[0]}) "
        "(version_conflict)\n"
    )
    assert staging_file(home, prod).read_bytes() == before

    # The way out: rebase, then commit on top of the racer's version.
    assert invoke(["secret", "rebase"]).exit_code == 0
    assert invoke(["secret", "commit", "-m", "x", "--yes"]).exit_code == 0
    latest = api.secrets.latest(prod)
    assert latest is not None
    assert latest.values == {"A": "mine", "B": "theirs"}
    assert posts(api)[-1][1] == {"message": "x", "set": {"A": "mine"}, "parent_version": racer[0]}


def test_commit_with_only_no_op_changes(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    version = api.secrets.commit(prod, {"A": "1"})
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    result = invoke(["secret", "commit", "-m", "x", "--yes"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: nothing to commit: the staged changes leave v1 ({version.id}) as it is "
        "(`kavach secret reset` discards them)\n"
    )


def test_commit_with_nothing_staged(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "commit", "-m", "x", "--yes"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nothing staged for environment acme/web/prod; stage with `kavach secret add`\n"
    )


def test_a_permission_error_keeps_the_staging(
    api: FakeApi, invoke: Invoke, home: Path, home_viewer: None, prod: Node
) -> None:
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    result = invoke(["secret", "commit", "-m", "x", "--yes"])
    assert result.exit_code == 3
    assert "(forbidden)" in result.stderr
    assert staging_file(home, prod).exists()


@pytest.fixture
def home_viewer(api: FakeApi, prod: Node) -> None:
    """Make alice a viewer of prod (and nothing more)."""
    for binding in api.iam.bindings:
        binding.role = "viewer"


def test_push_sets_a_files_keys_on_top_of_the_latest(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    latest = api.secrets.commit(prod, {"A": "1", "B": "2"})
    path = tmp_path / "prod.env"
    path.write_text(f"A=1\nB=changed\nC='{SECRET}'\n")

    result = invoke(["secret", "push", "-f", str(path), "-m", "from file", "--yes"])

    assert result.exit_code == 0, result.output
    assert posts(api) == [
        (
            f"/environments/{prod.id}/secrets/versions",
            {
                "message": "from file",
                "set": {"A": "1", "B": "changed", "C": SECRET},
                "parent_version": latest.id,
            },
        )
    ]
    assert table_rows(result.stdout) == [
        ["added", "C", "sk••••••"],
        ["modified", "B", "•••••• → ••••••"],
    ]
    assert SECRET not in result.output


def test_push_replace_sends_a_snapshot(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    latest = api.secrets.commit(prod, {"A": "1", "B": "2"})
    path = tmp_path / "prod.json"
    path.write_text('{"A": "1", "C": "3"}')

    result = invoke(["secret", "push", "-f", str(path), "-m", "all", "--replace", "--yes"])

    assert result.exit_code == 0, result.output
    assert posts(api)[-1][1] == {
        "message": "all",
        "secrets": {"A": "1", "C": "3"},
        "replace": True,
        "parent_version": latest.id,
    }
    assert table_rows(result.stdout) == [["added", "C", "••••••"], ["removed", "B", "••••••"]]
    created = api.secrets.latest(prod)
    assert created is not None
    assert created.values == {"A": "1", "C": "3"}


def test_push_with_nothing_new_sends_nothing(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    version = api.secrets.commit(prod, {"A": "1", "B": "2"})
    path = tmp_path / "prod.yaml"
    path.write_text("A: '1'\n")

    result = invoke(["secret", "push", "-f", str(path), "-m", "x"])

    assert result.exit_code == 0
    assert result.stdout == (
        f"Nothing to push: environment acme/web/prod (v1 ({version.id})) holds these already.\n"
    )
    assert posts(api) == []


def test_push_conflict(api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path) -> None:
    base = api.secrets.commit(prod, {"A": "1"})
    path = tmp_path / "prod.env"
    path.write_text("A=2\n")
    api.secrets.before_commit = lambda: api.secrets.commit(prod, {"A": "1", "Z": "z"})

    result = invoke(["secret", "push", "-f", str(path), "-m", "x", "--yes"])

    assert result.exit_code == 4
    assert f"Changed in environment acme/web/prod since {base.id}: Z.\n" in result.stderr
    assert "Nothing was pushed; run the push again" in result.stderr
    assert "(version_conflict)" in result.stderr


def test_push_without_a_terminal_needs_yes(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    path = tmp_path / "prod.env"
    path.write_text("A=2\n")
    result = invoke(["secret", "push", "-f", str(path), "-m", "x"])
    assert result.exit_code == 1
    assert "pass --yes to push 1 added to environment acme/web/prod" in result.stderr
    assert posts(api) == []


def test_rollback_shows_what_changes_and_makes_a_new_version(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    first = api.secrets.commit(prod, {"A": "1", "B": "old"})
    second = api.secrets.commit(prod, {"B": "new", "C": "3"})

    result = invoke(["secret", "rollback", "-v", first.id, "-m", "undo", "--yes"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-3:] == [
        ("GET", f"/environments/{prod.id}/secrets/versions", {"limit": "1"}, None),
        (
            "GET",
            f"/environments/{prod.id}/secrets/diff",
            {"from": second.id, "to": first.id},
            None,
        ),
        (
            "POST",
            f"/environments/{prod.id}/secrets/rollback",
            {},
            {"version_id": first.id, "commit_message": "undo"},
        ),
    ]
    assert table_rows(result.stdout) == [
        ["added", "A", "••••••"],
        ["modified", "B", "•••••• → ••••••"],
        ["removed", "C", "••••••"],
    ]
    created = api.secrets.latest(prod)
    assert created is not None
    assert (created.values, created.rollback_of) == ({"A": "1", "B": "old"}, first.id)
    assert result.stdout.endswith(
        f"Rolled back: v3 ({created.id}) of environment acme/web/prod holds the secrets of "
        f"v1 ({first.id}).\n"
    )


def test_rollback_needs_yes_and_a_valid_id(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    first = api.secrets.commit(prod, {"A": "1"})
    api.secrets.commit(prod, {"A": "2"})
    refused = invoke(["secret", "rollback", "-v", first.id, "-m", "undo"])
    assert refused.exit_code == 1
    assert posts(api) == []
    bad = invoke(["secret", "rollback", "-v", "NOT-AN-ID", "-m", "undo", "--yes"])
    assert bad.exit_code == 1
    assert bad.stderr == (
        "Error: --version 'NOT-AN-ID' is not a version: give its id (8 characters, a-z and "
        "0-9), its number (3 or v3), latest or latest~N\n"
    )


def test_rollback_to_what_is_already_there(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    first = api.secrets.commit(prod, {"A": "1"})
    api.secrets.commit(prod, {"A": "2"})
    api.secrets.commit(prod, {"A": "1"})
    result = invoke(["secret", "rollback", "-v", first.id, "-m", "undo", "--yes"])
    assert result.exit_code == 1
    assert "nothing to roll back" in result.stderr
    assert posts(api) == []
