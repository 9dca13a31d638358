"""`kavach user-group …` and `kavach user-group members …`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Invoke, table_header, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import USERS, Node

pytestmark = pytest.mark.usefixtures("logged_in")


@pytest.fixture
def acme(api: FakeApi, home: Path) -> Node:
    """The organization acme, owned by alice and active."""
    use_context(home, "acme")
    return api.iam.org("acme")


def test_create_posts_the_organization_id(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    result = invoke(["user-group", "create", "devs", "--description", "Developers"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created user group devs in organization acme.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme", {}, None),
        (
            "POST",
            "/user-groups/",
            {},
            {"organization_id": acme.id, "name": "devs", "description": "Developers"},
        ),
    ]


def test_create_in_another_org_as_json(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    other = api.iam.org("other")
    result = invoke(["user-group", "create", "ops", "--org", "other", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["name"], data["organization_id"]) == ("ops", other.id)
    assert api.requests()[-1][3] == {"organization_id": other.id, "name": "ops"}


def test_create_duplicate(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    api.iam.user_group(acme, "devs")
    result = invoke(["user-group", "create", "devs"])
    assert result.exit_code == 4
    assert result.stderr == "Error: user group 'devs' already exists (already_exists)\n"


def test_list(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    api.iam.user_group(acme, "devs")
    api.iam.user_group(api.iam.org("other"), "elsewhere")
    result = invoke(["user-group", "list"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        "/user-groups/",
        {"limit": "1000", "organization_id": acme.id},
        None,
    )
    assert table_header(result.stdout) == ["Name", "Description", "Created"]
    assert table_rows(result.stdout) == [["devs", "-", "2025-01-01T00:00:00+00:00"]]
    data = json.loads(invoke(["user-group", "list", "--json"]).stdout)
    assert data["next"] is None
    assert [(row["name"], row["organization_id"]) for row in data["items"]] == [("devs", acme.id)]


def test_list_empty_and_missing_org(api: FakeApi, invoke: Invoke, home: Path) -> None:
    result = invoke(["user-group", "list"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no organization selected: pass --org NAME or run `kavach org activate NAME`\n"
    )
    api.iam.org("acme")
    result = invoke(["user-group", "list", "--org", "acme"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "No user groups in organization acme.\n"


def test_delete_needs_yes_then_deletes_by_id(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    devs = api.iam.user_group(acme, "devs")
    refused = invoke(["user-group", "delete", "devs"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: not confirmed: pass --yes to delete user group devs in organization acme "
        "(stdin is not a terminal)\n"
    )
    assert devs.id in api.iam.user_groups

    result = invoke(["user-group", "delete", "devs", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted user group devs in organization acme.\n"
    assert api.requests()[-2:] == [
        (
            "GET",
            "/user-groups/",
            {"limit": "1000", "organization_id": acme.id, "name": "devs"},
            None,
        ),
        ("DELETE", f"/user-groups/{devs.id}", {}, None),
    ]
    assert devs.id not in api.iam.user_groups


def test_unknown_user_group(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    for args in (
        ["user-group", "delete", "nope", "--yes"],
        ["user-group", "members", "list", "nope"],
        ["user-group", "members", "add", "nope", "bob"],
    ):
        result = invoke(args)
        assert result.exit_code == 4
        assert result.stderr == (
            "Error: user group 'nope' not found in organization acme, "
            "or you have no access to it (not_found)\n"
        )
    assert {call.method for call in api.calls} == {"GET"}


def test_members_add_list_remove(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    devs = api.iam.user_group(acme, "devs")
    members = f"/user-groups/{devs.id}/members"

    added = invoke(["user-group", "members", "add", "devs", "bob"])
    assert added.exit_code == 0, added.output
    assert added.stdout == "Added bob to user group devs.\n"
    assert api.requests()[-1] == ("POST", members, {}, {"user": "bob"})
    assert USERS["bob"]["id"] in devs.members

    listed = invoke(["user-group", "members", "list", "devs"])
    assert listed.exit_code == 0, listed.output
    assert api.requests()[-1] == ("GET", members, {"limit": "1000"}, None)
    assert "Members of user group devs" in listed.stderr.splitlines()
    assert table_rows(listed.stdout) == [["bob", "Bob Example", "2025-02-03T04:05:06+00:00"]]
    data = json.loads(invoke(["user-group", "members", "list", "devs", "--json"]).stdout)
    assert data == {
        "items": [
            {
                "user_id": USERS["bob"]["id"],
                "login": "bob",
                "name": "Bob Example",
                "added_at": "2025-02-03T04:05:06Z",
            }
        ],
        "next": None,
    }

    refused = invoke(["user-group", "members", "remove", "devs", "bob"])
    assert refused.exit_code == 1
    assert "pass --yes to remove bob from user group devs" in refused.stderr
    assert USERS["bob"]["id"] in devs.members

    removed = invoke(["user-group", "members", "remove", "devs", "bob", "--yes", "--json"])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout) == {"removed": True}
    assert api.requests()[-1] == ("DELETE", members, {}, {"user": "bob"})
    assert devs.members == {}


def test_members_in_another_org(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    other = api.iam.org("other")
    ops = api.iam.user_group(other, "ops", "carol")
    result = invoke(["user-group", "members", "list", "ops", "--org", "other"])
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout) == [["carol", "-", "2025-01-01T00:00:00+00:00"]]
    assert api.requests()[-2:] == [
        (
            "GET",
            "/user-groups/",
            {"limit": "1000", "organization_id": other.id, "name": "ops"},
            None,
        ),
        ("GET", f"/user-groups/{ops.id}/members", {"limit": "1000"}, None),
    ]


def test_adding_an_unknown_user(api: FakeApi, invoke: Invoke, acme: Node) -> None:
    api.iam.user_group(acme, "devs")
    result = invoke(["user-group", "members", "add", "devs", "mallory", "--json"])
    assert result.exit_code == 4
    assert result.stdout == ""
    assert json.loads(result.stderr) == {"error": "no user 'mallory'", "error_code": "not_found"}


def test_a_viewer_cannot_change_members(api: FakeApi, invoke: Invoke, home: Path) -> None:
    shared = api.iam.org("shared", role="viewer")
    api.iam.user_group(shared, "devs")
    result = invoke(["user-group", "members", "add", "devs", "bob", "--org", "shared"])
    assert result.exit_code == 3
    assert result.stderr.endswith("(forbidden)\n")
