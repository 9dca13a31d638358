"""KAVACH_TOKEN: a service token's environment comes from whoami, with no login or config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import SERVER, Invoke
from .fake_api import FakeApi
from .fake_iam import Node, Token


@pytest.fixture
def prod(api: FakeApi) -> Node:
    return api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")


@pytest.fixture
def token(api: FakeApi, prod: Node, monkeypatch: pytest.MonkeyPatch) -> Token:
    """A viewer token for acme/web/prod in KAVACH_TOKEN; no config.yaml, no credentials."""
    minted = api.iam.token(prod, "ci")
    monkeypatch.setenv("KAVACH_TOKEN", minted.value)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    return minted


def test_get_makes_two_requests_with_the_token(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node, token: Token
) -> None:
    api.secrets.commit(prod, {"A": "value"})

    result = invoke(["secret", "get", "A"])

    assert result.exit_code == 0, result.output
    assert result.stdout == "value"
    assert api.requests() == [
        ("GET", "/auth/whoami", {}, None),
        ("GET", f"/environments/{prod.id}/secrets", {}, None),
    ]
    assert {call.authorization for call in api.calls} == {f"Bearer {token.value}"}
    assert not (home / "config.yaml").exists()


def test_export_with_the_token(api: FakeApi, invoke: Invoke, prod: Node, token: Token) -> None:
    api.secrets.commit(prod, {"A": "1", "B": "2"})
    result = invoke(["secret", "export", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"A": "1", "B": "2"}
    assert len(api.calls) == 2


def test_env_flag_is_checked_against_the_tokens_environment(
    api: FakeApi, invoke: Invoke, prod: Node, token: Token
) -> None:
    api.secrets.commit(prod, {"A": "1"})

    same = invoke(["secret", "get", "A", "--env", "prod"])
    assert (same.exit_code, same.stdout) == (0, "1")
    assert api.requests()[1] == ("GET", f"/environments/{prod.id}", {}, None)

    other = invoke(["secret", "get", "A", "--env", "staging"])
    assert other.exit_code == 1
    assert other.stderr == (
        "Error: --env staging disagrees with KAVACH_TOKEN: the service token is for "
        f"environment 'prod' ({prod.id})\n"
    )
    assert other.stdout == ""


def test_org_and_group_flags_are_refused_with_a_service_token(
    api: FakeApi, invoke: Invoke, prod: Node, token: Token
) -> None:
    result = invoke(["secret", "get", "A", "--org", "acme", "--env", "prod"])
    assert result.exit_code == 1
    assert "cannot check --org or --group" in result.stderr
    assert api.requests() == [("GET", "/auth/whoami", {}, None)]


def test_the_active_context_is_ignored_with_a_service_token(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node, token: Token
) -> None:
    from kavach.cli.config import ActiveContext, Config, save_config

    save_config(home, Config(server=SERVER, context=ActiveContext("other", "x", "y")))
    api.secrets.commit(prod, {"A": "1"})
    result = invoke(["secret", "get", "A"])
    assert (result.exit_code, result.stdout) == (0, "1")


def test_a_viewer_token_cannot_commit_an_editor_token_can(
    api: FakeApi,
    invoke: Invoke,
    home: Path,
    prod: Node,
    token: Token,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.secrets.commit(prod, {"A": "1"})
    assert invoke(["secret", "add", "A=2"]).exit_code == 0
    assert (home / "staging" / "kavach.test" / f"{prod.id}.json").exists()

    denied = invoke(["secret", "commit", "-m", "x", "--yes"])
    assert denied.exit_code == 3
    assert "(forbidden)" in denied.stderr

    editor = api.iam.token(prod, "deploy", "editor")
    monkeypatch.setenv("KAVACH_TOKEN", editor.value)
    done = invoke(["secret", "commit", "-m", "from ci", "--yes"])
    assert done.exit_code == 0, done.output
    latest = api.secrets.latest(prod)
    assert latest is not None
    assert latest.values == {"A": "2"}
    assert latest.author == {"type": "service_token", "id": editor.id, "label": "deploy"}


def test_a_user_token_in_kavach_token_resolves_names(
    api: FakeApi, invoke: Invoke, prod: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, _ = api.issue()
    monkeypatch.setenv("KAVACH_TOKEN", access)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    api.secrets.commit(prod, {"A": "1"})

    result = invoke(["secret", "get", "A", "--org", "acme", "--group", "web", "--env", "prod"])

    assert (result.exit_code, result.stdout) == (0, "1")
    assert [path for _, path, _, _ in api.requests()][:2] == [
        "/auth/whoami",
        "/organizations/by-name/acme/secret-groups/web/environments/prod",
    ]


def test_diff_with_another_environment_needs_a_login(
    api: FakeApi, invoke: Invoke, prod: Node, token: Token
) -> None:
    result = invoke(["secret", "diff", "--env-to", "staging"])
    assert result.exit_code == 1
    assert "--env-to needs a login" in result.stderr
