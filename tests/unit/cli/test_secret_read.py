"""`kavach secret list/details/get/diff/history/export`: masking, raw values, files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from kavach.cli import secrets_api
from kavach.cli.app import Runtime

from .conftest import FakeClock, Invoke, table_header, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import Node

pytestmark = pytest.mark.usefixtures("logged_in")

SECRET = "sk_live_0123456789abcdef"


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod (with a sibling, staging), owned by alice and active."""
    use_context(home, "acme", "web", "prod")
    web = api.iam.group(api.iam.org("acme"), "web")
    api.iam.env(web, "staging")
    return api.iam.env(web, "prod")


def env_named(api: FakeApi, name: str) -> Node:
    return next(node for node in api.iam.nodes.values() if node.name == name)


def test_list_versions_with_paging(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    versions = [api.secrets.commit(prod, {"N": str(i)}, f"change {i}") for i in range(1, 6)]

    result = invoke(["secret", "list", "--limit", "2"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        f"/environments/{prod.id}/secrets/versions",
        {"limit": "2"},
        None,
    )
    assert table_header(result.stdout) == [
        "ID",
        "Seq",
        "Message",
        "Author",
        "Secrets",
        "Date (UTC)",
    ]
    assert [row[:5] for row in table_rows(result.stdout)] == [
        [versions[4].id, "5", "change 5", "alice", "1"],
        [versions[3].id, "4", "change 4", "alice", "1"],
    ]
    hint = "Showing 2; older ones: `kavach secret list --cursor 2`."
    assert result.stderr.splitlines()[-1] == hint

    older = json.loads(invoke(["secret", "list", "--cursor", "2", "--json"]).stdout)
    assert [v["seq"] for v in older["items"]] == [3, 2, 1]
    assert older["next"] is None


def test_list_pages_through_more_than_the_server_gives_at_once(
    api: FakeApi, invoke: Invoke, prod: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets_api, "PAGE_MAX", 20)
    for i in range(25):
        api.secrets.commit(prod, {"N": str(i)})

    data = json.loads(invoke(["secret", "list", "--limit", "23", "--json"]).stdout)

    assert [v["seq"] for v in data["items"]] == list(range(25, 2, -1))
    assert data["next"] == "23"
    pages = [call.params for call in api.calls if call.path.endswith("/versions")]
    assert pages == [{"limit": "20"}, {"limit": "3", "cursor": "20"}]


def test_list_empty(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "list"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "No versions in environment acme/web/prod yet.\n"


def test_details_masks_unless_reveal(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    version = api.secrets.commit(prod, {"API_KEY": SECRET, "SHORT": "abc", "EMPTY": ""}, "init")

    result = invoke(["secret", "details", "-v", version.id])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1][1] == f"/environments/{prod.id}/secrets/versions/{version.id}"
    assert "Message: init" in result.stdout
    assert table_rows(result.stdout) == [
        ["API_KEY", "sk••••••"],
        ["EMPTY", "••••••"],
        ["SHORT", "••••••"],
    ]
    assert SECRET not in result.output and "abc" not in result.output
    revealed = invoke(["secret", "details", "-v", version.id, "--reveal"])
    assert table_rows(revealed.stdout) == [["API_KEY", SECRET], ["EMPTY", '""'], ["SHORT", "abc"]]
    data = json.loads(invoke(["secret", "details", "-v", version.id, "--json"]).stdout)
    assert data["secrets"] == {"API_KEY": None, "EMPTY": None, "SHORT": None}
    assert data["message"] == "init"


@pytest.mark.parametrize(
    ("terminal", "shown"),
    [
        (False, "multi\nline\r\n value "),  # exactly, into a pipe or file
        (True, "multi\nline\\x0d\n value \n"),  # on a terminal: escaped, and a newline
    ],
)
def test_get_prints_the_raw_value(
    api: FakeApi, invoke: Invoke, clock: FakeClock, prod: Node, terminal: bool, shown: str
) -> None:
    value = "multi\nline\r\n value "
    api.secrets.commit(prod, {"CERT": value, "OTHER": "x"})
    runtime = Runtime(
        transport=api.transport,
        sleep=clock.sleep,
        clock=clock.monotonic,
        stdout_is_terminal=lambda: terminal,
    )

    result = invoke(["--verbose", "secret", "get", "CERT"], runtime=runtime)

    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == shown.encode()
    assert value not in result.stderr  # --verbose logs requests, never values
    assert f"GET http://kavach.test/api/v1/environments/{prod.id}/secrets" in result.stderr


def test_get_an_older_version_and_a_missing_name(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    old = api.secrets.commit(prod, {"A": "old"})
    api.secrets.commit(prod, {"A": "new"})

    result = invoke(["secret", "get", "A", "-v", old.id])
    assert (result.exit_code, result.stdout) == (0, "old")
    assert api.requests()[-1][2] == {"version": old.id}

    missing = invoke(["secret", "get", "B"])
    assert missing.exit_code == 4
    assert missing.stdout == ""
    assert missing.stderr.startswith("Error: B is not set in environment acme/web/prod (v2 (")


def test_diff_defaults_to_latest_against_its_parent(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    first = api.secrets.commit(prod, {"A": "1", "B": SECRET, "C": "same"})
    second = api.secrets.commit(prod, {"B": "changed", "C": "same", "D": "4"})

    result = invoke(["secret", "diff"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == ("GET", f"/environments/{prod.id}/secrets/diff", {}, None)
    assert result.stdout.startswith(
        f"environment acme/web/prod: v1 ({first.id}) → v2 ({second.id}):\n"
    )
    assert table_rows(result.stdout) == [
        ["added", "D", "••••••"],
        ["modified", "B", "•••••• → ••••••"],
        ["removed", "A", "••••••"],
    ]
    assert result.stderr == "1 added, 1 modified, 1 removed; 1 unchanged.\n"

    revealed = invoke(["secret", "diff", "-f", first.id, "-t", second.id, "--reveal"])
    assert api.requests()[-1][2] == {"from": first.id, "to": second.id, "reveal": "true"}
    assert ["modified", "B", f"{SECRET} → changed"] in table_rows(revealed.stdout)
    data = json.loads(invoke(["secret", "diff", "--json"]).stdout)
    assert data["changes"][1] == {"name": "B", "change": "modified", "old": None, "new": None}


def test_diff_between_environments_compares_latest_secrets(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    staging = env_named(api, "staging")
    api.secrets.commit(prod, {"A": "1", "B": "prod", "SAME": "s"})
    api.secrets.commit(staging, {"B": "staging", "C": "3", "SAME": "s"})

    result = invoke(["secret", "diff", "--env-to", "staging"])

    assert result.exit_code == 0, result.output
    reads = [(p, q) for m, p, q, _ in api.requests() if p.endswith("/secrets")]
    assert reads == [
        (f"/environments/{prod.id}/secrets", {"resolve": "false"}),
        (f"/environments/{staging.id}/secrets", {"resolve": "false"}),
    ]
    assert table_rows(result.stdout) == [
        ["added", "C", "••••••"],
        ["modified", "B", "•••••• → ••••••"],
        ["removed", "A", "••••••"],
    ]
    assert result.stderr == "1 added, 1 modified, 1 removed; 1 unchanged.\n"
    revealed = invoke(["secret", "diff", "--env-to", "staging", "--group-to", "web", "--reveal"])
    assert ["modified", "B", "prod → staging"] in table_rows(revealed.stdout)


def test_diff_flags_that_go_together(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "diff", "--group-to", "web"])
    assert result.exit_code == 1
    assert result.stderr == "Error: --group-to and --org-to go with --env-to\n"


def test_history_masks_unless_reveal(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    v1 = api.secrets.commit(prod, {"A": "first"}, "add")
    api.secrets.commit(prod, {"A": "first", "B": "x"}, "unrelated")
    v3 = api.secrets.commit(prod, {"A": "second"}, "rotate")
    v4 = api.secrets.commit(prod, {}, "drop")

    result = invoke(["secret", "history", "A"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == ("GET", f"/environments/{prod.id}/secrets/A/history", {}, None)
    rows = table_rows(result.stdout)
    assert [(row[0], row[1], row[2], row[5]) for row in rows] == [
        (f"v4 ({v4.id})", "removed", "-", "drop"),
        (f"v3 ({v3.id})", "modified", "••••••", "rotate"),
        (f"v1 ({v1.id})", "added", "••••••", "add"),
    ]
    revealed = invoke(["secret", "history", "A", "--reveal"])
    assert api.requests()[-1][2] == {"reveal": "true"}
    assert [row[2] for row in table_rows(revealed.stdout)] == ["-", "second", "first"]
    never = invoke(["secret", "history", "NOPE"])
    assert never.exit_code == 4


def test_export_dotenv_to_stdout(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.secrets.commit(prod, {"A": "it's", "B": "$HOME", "C": ""})
    result = invoke(["secret", "export"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "A=\"it's\"\nB='$HOME'\nC=''\n"


@pytest.mark.parametrize(
    ("fmt", "filename"),
    [("dotenv", ".env"), ("json", "out.json"), ("yaml", "out.yml"), ("shell", "out.sh")],
)
def test_export_to_a_private_file_in_the_format_its_extension_names(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, fmt: str, filename: str
) -> None:
    values = {"A": "x y", "B": "multi\nline", "C": SECRET}
    version = api.secrets.commit(prod, values)
    out = tmp_path / filename

    result = invoke(["secret", "export", "-o", str(out)])

    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == (
        f"Wrote 3 secret(s) of environment acme/web/prod (v1 ({version.id})) to {out} "
        "(mode 0600).\n",
        "",
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    if fmt == "dotenv":
        assert dotenv_values(out) == values
    elif fmt == "json":
        assert json.loads(text) == values
    elif fmt == "yaml":
        assert yaml.safe_load(text) == values
    else:
        assert text.startswith("export A='x y'\n")
    out.write_text("keep me")
    out.chmod(0o644)

    refused = invoke(["secret", "export", "-o", str(out)])
    assert refused.exit_code == 1
    assert refused.stderr == f"Error: {out} exists; pass --force to overwrite it\n"
    assert out.read_text() == "keep me"

    forced = invoke(["secret", "export", "--format", fmt, "-o", str(out), "--force"])
    assert forced.exit_code == 0
    assert out.read_text() == text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_refuses_a_format_its_file_name_contradicts_or_cannot_tell(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    api.secrets.commit(prod, {"A": "1"})
    mismatch = invoke(["secret", "export", "--format", "json", "-o", str(tmp_path / "x.yaml")])
    assert (mismatch.exit_code, mismatch.stderr) == (
        1,
        "Error: --format json does not match x.yaml, which names a yaml file: drop --format, "
        "or give the file a matching extension\n",
    )
    unknown = invoke(["secret", "export", "-o", str(tmp_path / "secrets.txt")])
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "Error: cannot tell the format from the name secrets.txt: name the file .env, .json, "
        ".yaml, .yml or .sh, or give --format (dotenv, json, yaml, shell)\n",
    )
    assert api.calls == []
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "secrets.txt").exists()

    # A name that says nothing takes whatever --format says.
    named = invoke(["secret", "export", "--format", "json", "-o", str(tmp_path / "secrets.txt")])
    assert named.exit_code == 0, named.output
    assert json.loads((tmp_path / "secrets.txt").read_text()) == {"A": "1"}


def test_export_refuses_what_dotenv_cannot_carry_and_names_a_format_that_can(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    api.secrets.commit(prod, {"OK": "1", "PRICE": "it's $5", "WIN": "a\r\nb"})
    out = tmp_path / "x.env"
    to_stdout = invoke(["secret", "export"])
    assert to_stdout.exit_code == 1
    assert to_stdout.stderr == (
        "Error: these secrets cannot be written as dotenv that python-dotenv and bash read "
        "alike: PRICE ($ or ` together with ', \\\\ or a trailing \\); WIN (a carriage "
        "return); --format shell carries them all (so do json and yaml); --skip-invalid "
        "exports the others\n"
    )
    to_file = invoke(["secret", "export", "-o", str(out)])
    assert to_file.stderr.endswith(
        "return); a .sh file carries them all (so do .json and .yaml); --skip-invalid "
        "exports the others\n"
    )
    assert not out.exists()
    shell = invoke(["secret", "export", "--format", "shell"])
    assert shell.exit_code == 0, shell.output


def test_export_suggests_only_formats_that_carry_every_name(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    # A shell cannot hold a name with a dot: shell is not suggested.
    api.secrets.commit(prod, {"a.b": "x", "CR": "\r", "N": "a\0b"})
    result = invoke(["secret", "export"])
    assert result.stderr == (
        "Error: these secrets cannot be written as dotenv that python-dotenv and bash read "
        "alike: CR (a carriage return); N (a NUL character); a.b (not a shell variable name); "
        "--format json carries them all (so does yaml); --skip-invalid exports the others\n"
    )
    shell = invoke(["secret", "export", "--format", "shell"])
    assert shell.stderr == (
        "Error: these secrets cannot be written as shell variables: N (a NUL character); "
        "a.b (not a shell variable name); --format json carries them all (so does yaml); "
        "--skip-invalid exports the others\n"
    )


def test_export_skip_invalid_writes_the_rest_and_names_what_it_left_out(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    api.secrets.commit(prod, {"OK": SECRET, "PRICE": "it's $5", "a.b": "hunter2"})
    out = tmp_path / ".env"

    result = invoke(["secret", "export", "-o", str(out), "--skip-invalid"])

    assert result.exit_code == 0, result.output
    assert dotenv_values(out) == {"OK": SECRET}
    assert result.stdout.startswith("Wrote 1 secret(s) of environment acme/web/prod")
    assert result.stderr == (
        "Warning: left out 2 secret(s) (--skip-invalid): PRICE ($ or ` together with ', "
        "\\\\ or a trailing \\); a.b (not a shell variable name)\n"
    )
    assert "hunter2" not in result.stderr and "$5" not in result.stderr


def test_export_warns_about_python_dotenv_expansion(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    api.secrets.commit(prod, {"T": "${HOME}/x", "U": "$HOME"})
    result = invoke(["secret", "export"])
    assert result.exit_code == 0
    assert result.stdout == "T='${HOME}/x'\nU='$HOME'\n"
    assert "Warning: the values of T contain ${…}, which python-dotenv" in result.stderr
    assert "$HOME" not in result.stderr


def test_export_an_older_version(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    old = api.secrets.commit(prod, {"A": "old"})
    api.secrets.commit(prod, {"A": "new"})
    result = invoke(["secret", "export", "--format", "json", "-v", old.id])
    assert json.loads(result.stdout) == {"A": "old"}


def test_export_usage_errors(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    bad = invoke(["secret", "export", "--format", "xml"])
    assert (bad.exit_code, bad.stderr) == (
        1,
        "Error: --format must be one of dotenv, json, yaml, shell\n",
    )
    force = invoke(["secret", "export", "--force"])
    assert force.stderr == "Error: --force goes with --output\n"
    assert api.calls == []
