"""`kavach secret add/remove/status/reset/rebase`: per-environment staging files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from .conftest import SERVER, Invoke, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import Node

pytestmark = pytest.mark.usefixtures("logged_in")

SECRET = "sk_live_0123456789abcdef"  # long enough to show its first two characters masked


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, owned by alice and active."""
    use_context(home, "acme", "web", "prod")
    web = api.iam.group(api.iam.org("acme"), "web")
    api.iam.env(web, "staging")
    return api.iam.env(web, "prod")


def staging_file(home: Path, env: Node) -> Path:
    return home / "staging" / "kavach.test" / f"{env.id}.json"


def staged(home: Path, env: Node) -> dict[str, object]:
    data: dict[str, object] = json.loads(staging_file(home, env).read_text())
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_pairs_writes_a_private_staging_file(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"OLD": "1"})
    os.umask(0)  # even so, nothing is group- or world-readable
    try:
        result = invoke(["secret", "add", f"API_KEY={SECRET}", "EMPTY=", "EQ=a=b"])
    finally:
        os.umask(0o022)

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Staged 3 secret(s) for environment acme/web/prod: API_KEY, EMPTY, EQ. Review with "
        "`kavach secret status`, commit with `kavach secret commit -m MESSAGE`.\n"
    )
    assert SECRET not in result.output
    assert api.requests() == [
        ("GET", "/info", {}, None),  # the server's limits on a value
        ("GET", "/organizations/by-name/acme/secret-groups/web/environments/prod", {}, None),
        ("GET", f"/environments/{prod.id}/secrets/versions", {"limit": "1"}, None),
    ]
    path = staging_file(home, prod)
    assert staged(home, prod) == {
        "format": 1,
        "server": SERVER,
        "environment_id": prod.id,
        "environment": "acme/web/prod",
        "base_version": base.id,
        "set": {"API_KEY": SECRET, "EMPTY": "", "EQ": "a=b"},
        "unset": [],
    }
    assert mode(path) == 0o600
    for directory in (path.parent, path.parent.parent, home):
        assert mode(directory) == 0o700
    # Written atomically: no temporary file is left next to it.
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{prod.id}.json", f"{prod.id}.lock"]


def test_more_adds_keep_the_base_version_and_update_values(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    first = api.secrets.commit(prod, {"A": "1"})
    assert invoke(["secret", "add", "A=2"]).exit_code == 0
    api.secrets.commit(prod, {"A": "1", "B": "someone else"})
    calls = len(api.calls)

    assert invoke(["secret", "add", "A=3", "C=4"]).exit_code == 0

    assert staged(home, prod)["base_version"] == first.id  # the staging's base, not the latest
    assert staged(home, prod)["set"] == {"A": "3", "C": "4"}
    assert not any("versions" in call.path for call in api.calls[calls:])


def test_staging_is_per_environment(api: FakeApi, invoke: Invoke, home: Path, prod: Node) -> None:
    assert invoke(["secret", "add", "A=prod"]).exit_code == 0
    assert invoke(["secret", "add", "A=staging", "--env", "staging"]).exit_code == 0
    staging = next(n for n in api.iam.nodes.values() if n.name == "staging")

    assert staged(home, prod)["set"] == {"A": "prod"}
    assert staged(home, staging)["set"] == {"A": "staging"}
    assert staged(home, staging)["environment"] == "acme/web/staging"


@pytest.mark.parametrize(
    ("name", "content", "extra"),
    [
        (".env", "# c\nexport A='x y'\nB=\"multi\\nline\"\nC=plain # note\n", []),
        ("s.json", '{"A": "x y", "B": "multi\\nline", "C": "plain"}', []),
        ("s.yaml", "A: x y\nB: |-\n  multi\n  line\nC: plain\n", []),
        ("s.txt", '{"A": "x y", "B": "multi\\nline", "C": "plain"}', ["--format", "json"]),
    ],
)
def test_add_from_file(
    invoke: Invoke,
    home: Path,
    prod: Node,
    tmp_path: Path,
    name: str,
    content: str,
    extra: list[str],
) -> None:
    path = tmp_path / name
    path.write_text(content)

    result = invoke(["secret", "add", "--from-file", str(path), *extra])

    assert result.exit_code == 0, result.output
    assert staged(home, prod)["set"] == {"A": "x y", "B": "multi\nline", "C": "plain"}


def test_add_from_stdin_file(invoke: Invoke, home: Path, prod: Node) -> None:
    result = invoke(["secret", "add", "-f", "-", "--format", "yaml"], input="A: '1'\n")
    assert result.exit_code == 0, result.output
    assert staged(home, prod)["set"] == {"A": "1"}


def test_add_from_a_bad_file_names_the_line_not_the_value(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    path = tmp_path / "bad.env"
    path.write_text("A=1\nhunter2 is my password\n")

    result = invoke(["secret", "add", "--from-file", str(path)])

    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: line 2: expected NAME=VALUE\n"
    assert api.calls == []


def test_add_from_stdin_keeps_the_exact_bytes(invoke: Invoke, home: Path, prod: Node) -> None:
    value = "line 1\r\nline 2\n\n"
    result = invoke(["secret", "add", "CERT", "--stdin"], input=value)

    assert result.exit_code == 0, result.output
    assert staged(home, prod)["set"] == {"CERT": value}
    assert "Note: CERT's value ends with a newline; --strip-newline drops it." in result.stderr
    assert "line 1" not in result.output


def test_strip_newline_drops_exactly_one(invoke: Invoke, home: Path, prod: Node) -> None:
    args = ["secret", "add", "TOKEN", "--stdin", "--strip-newline"]
    assert invoke(args, input="abc\n\n").exit_code == 0
    assert staged(home, prod)["set"] == {"TOKEN": "abc\n"}
    assert invoke(args, input="no newline").exit_code == 0
    assert staged(home, prod)["set"] == {"TOKEN": "no newline"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give NAME=VALUE pairs, --from-file FILE, or NAME --stdin (one of them)"),
        (["hunter2"], "argument 1 is not NAME=VALUE (or use NAME --stdin)"),
        (["A=1", "hun ter2=x"], "argument 2: not a valid secret name"),
        (["A", "B", "--stdin"], "--stdin takes exactly one NAME (without =VALUE)"),
        (["A=hunter2", "--stdin"], "--stdin takes exactly one NAME (without =VALUE)"),
        (["A=1", "--strip-newline"], "--strip-newline goes with --stdin"),
        (["A=1", "--format", "json"], "--format goes with --from-file"),
        (["A=1", "--from-file", "x.env"], "give NAME=VALUE pairs, --from-file FILE, or NAME"),
    ],
)
def test_add_usage_errors_never_echo_values(
    api: FakeApi, invoke: Invoke, prod: Node, args: list[str], message: str
) -> None:
    result = invoke(["secret", "add", *args], input="")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert "hunter2" not in result.output
    assert api.calls == []


def test_remove_stages_unsets_and_drops_staged_additions(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"OLD": "1", "KEEP": "2"})
    assert invoke(["secret", "add", "NEW=x", "KEEP=3"]).exit_code == 0

    result = invoke(["secret", "remove", "OLD", "NEW", "KEEP"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        f"/environments/{prod.id}/secrets",
        {"resolve": "false"},
        None,
    )
    data = staged(home, prod)
    assert (data["set"], data["unset"], data["base_version"]) == ({}, ["KEEP", "OLD"], base.id)

    assert invoke(["secret", "add", "OLD=back"]).exit_code == 0
    data = staged(home, prod)
    assert (data["set"], data["unset"]) == ({"OLD": "back"}, ["KEEP"])


def test_remove_an_unknown_name(api: FakeApi, invoke: Invoke, home: Path, prod: Node) -> None:
    version = api.secrets.commit(prod, {"A": "1"})
    result = invoke(["secret", "remove", "A", "NOPE"])
    assert result.exit_code == 4
    assert result.stderr == (
        f"Error: NOPE: not set in environment acme/web/prod (v1 ({version.id})) "
        "and not staged (not_found)\n"
    )
    assert not staging_file(home, prod).exists()


def test_status_masks_values_unless_reveal(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"SAME": "s", "CHANGED": "old-value", "GONE": SECRET})
    args = ["secret", "add", f"NEW={SECRET}", "CHANGED=new-value", "SAME=s"]
    assert invoke(args).exit_code == 0
    assert invoke(["secret", "remove", "GONE"]).exit_code == 0

    result = invoke(["secret", "status"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"Staged for environment acme/web/prod (on top of {base.id}):\n"
    )
    assert table_rows(result.stdout) == [
        ["added", "NEW", "sk••••••"],
        ["modified", "CHANGED", "•••••• → ••••••"],
        ["removed", "GONE", "sk••••••"],
        ["unchanged", "SAME", "••••••"],
    ]
    assert result.stderr == "1 added, 1 modified, 1 removed, 1 unchanged.\n"
    for value in (SECRET, "old-value", "new-value"):
        assert value not in result.output

    revealed = invoke(["secret", "status", "--reveal"])
    assert ["modified", "CHANGED", "old-value → new-value"] in table_rows(revealed.stdout)
    assert ["added", "NEW", SECRET] in table_rows(revealed.stdout)


def test_status_as_json(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    base = api.secrets.commit(prod, {"A": "old"})
    assert invoke(["secret", "add", "A=new"]).exit_code == 0

    data = json.loads(invoke(["secret", "status", "--json"]).stdout)
    assert data["base_version"] == base.id
    assert data["moved_on"] is False
    assert data["changes"] == [{"name": "A", "change": "modified", "old": None, "new": None}]
    revealed = json.loads(invoke(["secret", "status", "--json", "--reveal"]).stdout)
    assert revealed["changes"][0] == {"name": "A", "change": "modified", "old": "old", "new": "new"}


def test_status_warns_when_the_environment_moved_on(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    base = api.secrets.commit(prod, {"A": "1"})
    assert invoke(["secret", "add", "A=2"]).exit_code == 0
    latest = api.secrets.commit(prod, {"A": "1", "B": "2"})

    result = invoke(["secret", "status"])

    assert result.exit_code == 0
    assert (
        f"Warning: environment acme/web/prod moved on to v2 ({latest.id}) since this staging "
        f"was based on {base.id}; commit will be refused"
    ) in " ".join(result.stderr.split())


def test_status_with_nothing_staged(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "status"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "Nothing staged for environment acme/web/prod.\n"
    assert not any("/secrets" in call.path for call in api.calls)


def test_reset_discards_the_staging(invoke: Invoke, home: Path, prod: Node) -> None:
    assert invoke(["secret", "add", "A=1", "B=2"]).exit_code == 0

    refused = invoke(["secret", "reset"])
    assert refused.exit_code == 1
    assert "not confirmed: pass --yes to discard 2 staged change(s)" in refused.stderr
    assert staging_file(home, prod).exists()
    kept = invoke(["secret", "reset"], input="n\n", terminal=True)
    assert kept.exit_code == 1 and staging_file(home, prod).exists()

    result = invoke(["secret", "reset"], input="y\n", terminal=True)

    assert result.exit_code == 0
    assert result.stdout == "Discarded 2 staged change(s) for environment acme/web/prod.\n"
    assert not staging_file(home, prod).exists()
    again = invoke(["secret", "reset"])  # nothing to discard: nothing to ask
    assert again.stdout == "Nothing staged for environment acme/web/prod.\n"


def test_an_unreadable_staging_file_is_reported_without_its_content(
    invoke: Invoke, home: Path, prod: Node
) -> None:
    assert invoke(["secret", "add", "A=1"]).exit_code == 0
    path = staging_file(home, prod)
    path.write_text('{"format": 1, "set": {"A": "hunter2"}')

    result = invoke(["secret", "status"])

    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is unreadable; `kavach secret reset` discards it\n"
    assert invoke(["secret", "reset", "--yes"]).exit_code == 0
    assert not path.exists()


def test_rebase_moves_the_staging_onto_the_latest(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    api.secrets.commit(prod, {"A": "1", "GONE": "x", "B": "1"})
    assert invoke(["secret", "add", "A=mine"]).exit_code == 0
    assert invoke(["secret", "remove", "GONE"]).exit_code == 0
    latest = api.secrets.commit(prod, {"A": "theirs", "B": "1", "C": "new"})

    result = invoke(["secret", "rebase"])

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"Now on top of v2 ({latest.id}).\n"
        "Changed meanwhile: A, C, GONE.\n"
        "Warning: your staged changes override those to A.\n"
        "Dropped staged removals of names now gone: GONE.\n"
    )
    data = staged(home, prod)
    assert (data["base_version"], data["set"], data["unset"]) == (latest.id, {"A": "mine"}, [])
    assert "theirs" not in result.output
