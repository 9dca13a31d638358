"""Listings follow the server's pages: `limit` and `cursor` until `next` is null."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kavach.cli import resources
from kavach.cli.commands.secret import sync  # noqa: F401 - its RUNS_MAX is read before the patch
from kavach.cli.errors import ApiError

from .conftest import Invoke, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import USERS, Binding, Node

pytestmark = pytest.mark.usefixtures("logged_in")

PAGE = 2


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ask for pages of two, so three of anything takes two requests."""
    monkeypatch.setattr(resources, "PAGE_LIMIT", PAGE)


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, alice owns acme, and prod is active."""
    use_context(home, "acme", "web", "prod")
    return api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")


def pages_of(api: FakeApi, path: str) -> list[dict[str, str]]:
    """Return the query of every GET of `path`."""
    return [params for method, p, params, _ in api.requests() if (method, p) == ("GET", path)]


def listed(invoke: Invoke, *args: str) -> list[Any]:
    """Run a listing with --json, check the one list shape, and return its items."""
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"items", "next"} and data["next"] is None
    items: list[Any] = data["items"]
    return items


def test_org_list_follows_next(api: FakeApi, invoke: Invoke, home: Path) -> None:
    for name in ("acme", "beta", "gamma"):
        api.iam.org(name)
    use_context(home, "acme")

    items = listed(invoke, "org", "list")

    assert [row["name"] for row in items] == ["acme", "beta", "gamma"]
    assert pages_of(api, "/organizations/") == [{"limit": "2"}, {"limit": "2", "cursor": "2"}]


def test_group_and_env_lists_follow_next(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    acme = prod.org
    for name in ("api", "db"):
        api.iam.group(acme, name)
    web = prod.parent
    assert web is not None
    for name in ("staging", "dev"):
        api.iam.env(web, name)

    groups = listed(invoke, "group", "list")
    envs = listed(invoke, "env", "list")

    assert [row["name"] for row in groups] == ["web", "api", "db"]
    assert [row["name"] for row in envs] == ["prod", "staging", "dev"]
    assert pages_of(api, f"/secret-groups/{web.id}/environments")[-2:] == [
        {"limit": "2"},
        {"limit": "2", "cursor": "2"},
    ]


def test_members_follow_next(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    for login in ("bob", "carol"):
        api.iam.bindings.append(Binding(prod.org, "viewer", user_id=USERS[login]["id"]))

    items = listed(invoke, "org", "list-bindings")

    assert [row["user"]["login"] for row in items] == ["alice", "bob", "carol"]
    assert len(pages_of(api, f"/organizations/{prod.org.id}/members")) == 2


def test_user_groups_and_their_members_follow_next(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    for name in ("devs", "ops"):
        api.iam.user_group(prod.org, name)
    big = api.iam.user_group(prod.org, "all", "alice", "bob", "carol")

    groups = listed(invoke, "user-group", "list")
    members = listed(invoke, "user-group", "members", "list", "all")

    assert [row["name"] for row in groups] == ["devs", "ops", "all"]
    assert [row["login"] for row in members] == ["alice", "bob", "carol"]
    assert pages_of(api, "/user-groups/")[-1] == {
        "limit": "2",
        "organization_id": prod.org.id,
        "name": "all",
    }
    assert len(pages_of(api, f"/user-groups/{big.id}/members")) == 2


def test_tokens_follow_next_and_revoke_finds_an_id_on_a_later_page(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    tokens = [api.iam.token(prod, name) for name in ("a", "b", "c")]

    items = listed(invoke, "token", "list")
    revoked = invoke(["token", "revoke", tokens[2].id, "--yes"])

    assert [row["name"] for row in items] == ["a", "b", "c"]
    assert revoked.exit_code == 0, revoked.output
    assert tokens[2].revoked_at is not None
    assert pages_of(api, f"/environments/{prod.id}/tokens")[-3:] == [
        {"limit": "2", "name": tokens[2].id},
        {"limit": "2"},
        {"limit": "2", "cursor": "2"},
    ]


def test_providers_follow_next(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.sync.configure(prod, "github", {"owner": "octo", "repository": "app"}, {"token": "t"})
    api.sync.configure(prod, "gcp", {"project_id": "p"}, {"service_account_json": "{}"})
    api.sync.configure(prod, "azure", {"vault_url": "https://v"}, {"client_secret": "s"})

    items = listed(invoke, "provider", "list")

    assert [row["provider"] for row in items] == ["azure", "gcp", "github"]
    assert len(pages_of(api, f"/environments/{prod.id}/providers/")) == 2


def _run(api: FakeApi, env: Node) -> dict[str, Any]:
    run = {"id": api.sync.new_run_id(), "status": "succeeded", "items": []}
    api.sync.runs.setdefault(env.id, []).append(run)
    return run


def test_sync_run_by_prefix_pages_until_found(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    oldest = _run(api, prod)
    for _ in range(2):
        _run(api, prod)

    result = invoke(["secret", "sync-run", oldest["id"][:8], "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == oldest["id"]
    assert pages_of(api, f"/environments/{prod.id}/sync-runs") == [
        {"limit": "2"},
        {"limit": "2", "cursor": "2"},
    ]


def test_sync_runs_shows_one_page_and_the_next_cursor(
    api: FakeApi, invoke: Invoke, prod: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    runs = [_run(api, prod) for _ in range(3)]

    first = invoke(["secret", "sync-runs", "-n", "2"])
    rest = json.loads(invoke(["secret", "sync-runs", "--cursor", "2", "--json"]).stdout)

    assert first.exit_code == 0, first.output
    assert len([row for row in table_rows(first.stdout) if row[0]]) == 2
    assert first.stderr.splitlines()[-1] == "Older runs: run the same command with --cursor 2."
    assert rest == {"items": [{"id": runs[0]["id"], "status": "succeeded"}], "next": None}


def test_a_bad_cursor_is_refused_by_the_server(invoke: Invoke, prod: Node) -> None:
    result = invoke(["secret", "list", "--cursor", "nope"])

    assert result.exit_code != 0
    assert "invalid cursor 'nope'" in result.stderr


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"items": {}, "next": None},
        {"items": [1], "next": None},
        {"items": [], "next": 3},
        {"next": None},
    ],
)
def test_a_page_of_the_wrong_shape_is_a_server_error(data: Any) -> None:
    with pytest.raises(ApiError, match="unexpected answer from the server"):
        resources.expect_page(data)


def test_a_page_gives_its_items_and_next_cursor() -> None:
    assert resources.expect_page({"items": [{"id": 1}], "next": "x"}) == ([{"id": 1}], "x")


class _Repeating:
    """A server whose every page names the same next cursor."""

    def get(self, path: str, *, params: Any = None) -> Any:
        return {"items": [{"id": 1}], "next": "same"}


def test_a_server_that_repeats_its_cursor_is_not_followed_forever() -> None:
    client: Any = _Repeating()
    with pytest.raises(ApiError, match="unexpected answer from the server"):
        resources.list_all(client, "/organizations/")
