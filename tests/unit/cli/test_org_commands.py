"""`kavach org …`: requests sent, output, context in config.yaml, confirmation, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from kavach.cli.app import Runtime
from kavach.cli.credentials import Credentials

from .conftest import Invoke, active, table_header, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import USERS, Binding

pytestmark = pytest.mark.usefixtures("logged_in")


def test_create_posts_the_name_and_prints_the_organization(api: FakeApi, invoke: Invoke) -> None:
    result = invoke(["org", "create", "acme"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created organization acme.\n"
    assert api.requests() == [("POST", "/organizations/", {}, {"name": "acme"})]
    assert api.calls[-1].authorization is not None


def test_create_with_description_and_json(api: FakeApi, invoke: Invoke) -> None:
    result = invoke(["org", "create", "acme", "--description", "Acme Inc.", "--json"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1][3] == {"name": "acme", "description": "Acme Inc."}
    data = json.loads(result.stdout)
    assert data["name"] == "acme"
    assert data["description"] == "Acme Inc."
    assert data["role"] == "owner"
    assert data["id"] in api.iam.nodes


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("acme", "Error: organization 'acme' already exists (already_exists)"),
        ("Bad Name", "Error: invalid name 'Bad Name' (validation_failed)"),
    ],
)
def test_create_failures_are_server_errors(
    api: FakeApi, invoke: Invoke, name: str, line: str
) -> None:
    api.iam.org("acme")
    result = invoke(["org", "create", name])
    assert result.exit_code == 4
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_list_shows_role_and_marks_the_active_organization(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    api.iam.org("acme")
    api.iam.org("shared", role="viewer")
    use_context(home, "shared")

    result = invoke(["org", "list"])

    assert result.exit_code == 0, result.output
    assert api.requests() == [("GET", "/organizations/", {"limit": "1000"}, None)]
    assert table_header(result.stdout) == ["", "Name", "Your role", "Description", "Created"]
    assert table_rows(result.stdout) == [
        ["", "acme", "owner", "-", "2025-01-01T00:00:00+00:00"],
        ["*", "shared", "viewer", "-", "2025-01-01T00:00:00+00:00"],
    ]


def test_list_json_carries_the_active_flag(api: FakeApi, invoke: Invoke, home: Path) -> None:
    acme = api.iam.org("acme")
    api.iam.org("shared", role="viewer")
    use_context(home, "acme")
    data = json.loads(invoke(["org", "list", "--json"]).stdout)
    assert set(data) == {"items", "next"} and data["next"] is None
    assert [(row["name"], row["role"], row["active"]) for row in data["items"]] == [
        ("acme", "owner", True),
        ("shared", "viewer", False),
    ]
    assert data["items"][0]["id"] == acme.id


def test_list_without_organizations_says_so(invoke: Invoke) -> None:
    result = invoke(["org", "list"])
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "No organizations.\n")
    assert json.loads(invoke(["org", "list", "--json"]).stdout) == {"items": [], "next": None}


def test_activate_checks_the_name_then_writes_config(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    api.iam.org("acme")
    result = invoke(["org", "activate", "acme"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Switched to organization acme.\n"
    assert api.requests() == [("GET", "/organizations/by-name/acme", {}, None)]
    assert active(home) == ("acme", None, None)


def test_activating_another_org_clears_group_and_env(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    api.iam.org("other")
    use_context(home, "acme", "web", "prod")
    result = invoke(["org", "activate", "other", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "organization": "other",
        "secret_group": None,
        "environment": None,
    }
    assert active(home) == ("other", None, None)


def test_activating_the_active_org_again_keeps_group_and_env(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    api.iam.org("acme")
    use_context(home, "acme", "web", "prod")
    result = invoke(["org", "activate", "acme"])
    assert result.stdout == "Switched to organization acme (active: acme/web/prod).\n"
    assert active(home) == ("acme", "web", "prod")


def test_activating_an_unknown_org_fails_and_keeps_config(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    use_context(home, "acme", "web")
    api.iam.org("hidden", role=None)  # exists, but alice cannot see it
    for name in ("nope", "hidden"):
        result = invoke(["org", "activate", name])
        assert result.exit_code == 4
        assert result.stderr == (
            f"Error: organization {name!r} not found, or you have no access to it (not_found)\n"
        )
    assert active(home) == ("acme", "web", None)


def test_a_name_is_one_path_segment(api: FakeApi, invoke: Invoke) -> None:
    sent: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.raw_path)
        return api.handle(request)

    runtime = Runtime(transport=httpx.MockTransport(record))
    result = invoke(["org", "activate", "a/b?c"], runtime=runtime)
    assert result.exit_code == 4
    assert sent == [b"/api/v1/organizations/by-name/a%2Fb%3Fc"]
    result = invoke(["org", "activate", ".."])
    assert result.exit_code == 1
    assert result.stderr == "Error: invalid name '..'\n"


def test_delete_without_a_terminal_needs_yes(api: FakeApi, invoke: Invoke) -> None:
    acme = api.iam.org("acme")
    result = invoke(["org", "delete", "acme"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not confirmed: pass --yes to delete organization acme (stdin is not a terminal)\n"
    )
    assert [call.method for call in api.calls] == ["GET"]
    assert acme.id in api.iam.nodes


@pytest.mark.parametrize("flag", ["--yes", "-y"])
def test_delete_with_yes(api: FakeApi, invoke: Invoke, home: Path, flag: str) -> None:
    acme = api.iam.org("acme")
    use_context(home, "acme", "web", "prod")
    result = invoke(["org", "delete", "acme", flag])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted organization acme.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme", {}, None),
        ("DELETE", f"/organizations/{acme.id}", {}, None),
    ]
    assert acme.id not in api.iam.nodes
    # The deleted organization was active: nothing is any more.
    assert active(home) == (None, None, None)


def test_deleting_another_org_keeps_the_active_context(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    api.iam.org("old")
    use_context(home, "acme", "web")
    result = invoke(["org", "delete", "old", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["deleted"] is True
    assert active(home) == ("acme", "web", None)


def test_delete_a_non_empty_org_needs_cascade(api: FakeApi, invoke: Invoke) -> None:
    acme = api.iam.org("acme")
    web = api.iam.group(acme, "web")
    result = invoke(["org", "delete", "acme", "--yes"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: organization 'acme' has 1 secret group(s); "
        "pass --cascade to delete it with everything in it (has_children)\n"
    )
    result = invoke(["org", "delete", "acme", "--yes", "--cascade"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == ("DELETE", f"/organizations/{acme.id}", {"cascade": "true"}, None)
    assert web.id not in api.iam.nodes


def test_delete_prompts_on_a_terminal(api: FakeApi, invoke: Invoke) -> None:
    acme = api.iam.org("acme")
    declined = invoke(["org", "delete", "acme", "--cascade"], terminal=True, input="n\n")
    assert declined.exit_code == 1
    assert "Delete organization acme and everything in it? [y/N]" in declined.stderr
    assert "Cancelled; nothing was changed." in declined.stderr
    assert "DELETE" not in [call.method for call in api.calls]
    accepted = invoke(["org", "delete", "acme"], terminal=True, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout == "Deleted organization acme.\n"
    assert acme.id not in api.iam.nodes


def test_delete_by_a_non_owner_is_permission_denied(api: FakeApi, invoke: Invoke) -> None:
    api.iam.org("acme", role="admin")
    result = invoke(["org", "delete", "acme", "--yes"])
    assert result.exit_code == 3
    assert result.stderr.endswith("(forbidden)\n")


def test_grant_to_a_user(api: FakeApi, invoke: Invoke, home: Path) -> None:
    acme = api.iam.org("acme")
    use_context(home, "acme")
    result = invoke(["org", "grant", "-r", "editor", "-u", "bob"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Granted editor on organization acme to user bob.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme", {}, None),
        ("POST", f"/organizations/{acme.id}/members", {}, {"user": "bob", "role": "editor"}),
    ]


def test_grant_to_a_user_group_on_another_org_as_json(api: FakeApi, invoke: Invoke) -> None:
    other = api.iam.org("other")
    devs = api.iam.user_group(other, "devs")
    result = invoke(
        ["org", "grant", "--org", "other", "--role", "admin", "--user-group", "devs", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert api.requests()[-1][3] == {"user_group": "devs", "role": "admin"}
    binding = json.loads(result.stdout)
    assert binding["subject_type"] == "user_group"
    assert binding["user_group"] == {"id": devs.id, "name": "devs"}
    assert binding["role"] == "admin"
    assert binding["resource_id"] == other.id


@pytest.mark.parametrize(
    "args",
    [
        ["-r", "viewer"],  # no subject
        ["-r", "viewer", "-u", "bob", "--user-group", "devs"],  # two subjects
        ["-u", "bob"],  # no role
        ["-r", "superuser", "-u", "bob"],  # unknown role
        ["-g", "web", "-r", "viewer", "-u", "bob"],  # -g means nothing here
    ],
)
def test_grant_usage_errors_exit_2_before_any_request(
    api: FakeApi, invoke: Invoke, home: Path, args: list[str]
) -> None:
    api.iam.org("acme")
    use_context(home, "acme")
    result = invoke(["org", "grant", *args])
    assert result.exit_code == 2
    assert "Usage: kavach org grant" in result.stderr
    assert api.calls == []


def test_subject_error_message(invoke: Invoke, home: Path) -> None:
    use_context(home, "acme")
    result = invoke(["org", "grant", "-r", "viewer"])
    assert "pass exactly one of -u/--user LOGIN, --user-group NAME or --email ADDRESS" in (
        result.stderr
    )


def test_an_admin_may_not_grant_owner(api: FakeApi, invoke: Invoke) -> None:
    api.iam.org("acme", role="admin")
    result = invoke(["org", "grant", "--org", "acme", "-r", "owner", "-u", "bob"])
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: you may not members.grant_owner on this organization (forbidden)\n"
    )


def test_a_grant_to_a_login_nobody_signed_in_with_is_an_invite(
    api: FakeApi, invoke: Invoke
) -> None:
    org = api.iam.org("acme")
    result = invoke(["org", "grant", "--org", "acme", "-r", "viewer", "-u", "mallory"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Invited user mallory as viewer on organization acme: pending until they first sign "
        "in (`list-bindings --pending` shows it, `revoke --pending` withdraws it).\n"
    )
    by_mail = invoke(["org", "grant", "--org", "acme", "-r", "editor", "--email", "m@x.io"])
    assert "Invited m@x.io as editor" in by_mail.stdout

    listed = invoke(["org", "list-bindings", "--org", "acme", "--pending"])
    assert listed.exit_code == 0, listed.output
    assert table_header(listed.stdout) == ["Invitee", "Type", "Role", "Invited by", "Since"]
    assert [row[:4] for row in table_rows(listed.stdout)] == [
        ["mallory", "login", "viewer", "alice"],
        ["m@x.io", "e-mail", "editor", "alice"],
    ]
    as_json = json.loads(
        invoke(["org", "list-bindings", "--org", "acme", "--pending", "--json"]).stdout
    )
    assert as_json == {"items": [i for _, i in api.iam.invites], "next": None}

    withdrawn = invoke(["org", "revoke", "--org", "acme", "--pending", "-u", "mallory", "--yes"])
    assert withdrawn.stdout == "Withdrew the invite of user mallory on organization acme.\n"
    assert api.requests()[-1] == (
        "DELETE",
        f"/organizations/{org.id}/members/pending",
        {},
        {"user": "mallory"},
    )
    by_mail = invoke(["org", "revoke", "--org", "acme", "--email", "m@x.io", "--yes"])
    assert by_mail.exit_code == 0, by_mail.output
    assert api.iam.invites == []
    refused = invoke(["org", "revoke", "--org", "acme", "--pending", "--user-group", "devs"])
    assert refused.exit_code == 2
    assert "user groups are not invited" in refused.stderr


def test_missing_org_says_which_flag_or_command_to_use(api: FakeApi, invoke: Invoke) -> None:
    for args in (
        ["org", "grant", "-r", "viewer", "-u", "bob"],
        ["org", "revoke", "-u", "bob", "--yes"],
        ["org", "list-bindings"],
    ):
        result = invoke(args)
        assert result.exit_code == 1
        assert result.stderr == (
            "Error: no organization selected: pass --org NAME or run `kavach org activate NAME`\n"
        )
    assert api.calls == []


def test_revoke_needs_confirmation_then_deletes_the_binding(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    acme = api.iam.org("acme")
    api.iam.bindings.append(Binding(acme, "editor", user_id=USERS["bob"]["id"]))
    use_context(home, "acme")

    refused = invoke(["org", "revoke", "-u", "bob"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: not confirmed: pass --yes to revoke user bob's role on organization acme "
        "(stdin is not a terminal)\n"
    )
    assert len(api.iam.bindings) == 2

    result = invoke(["org", "revoke", "-u", "bob", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Revoked user bob's role on organization acme.\n"
    assert api.requests()[-1] == (
        "DELETE",
        f"/organizations/{acme.id}/members",
        {},
        {"user": "bob"},
    )
    assert len(api.iam.bindings) == 1

    again = invoke(["org", "revoke", "-u", "bob", "--yes"])
    assert again.exit_code == 4
    assert again.stderr == "Error: no such binding (not_found)\n"


def test_revoke_a_user_group_as_json(api: FakeApi, invoke: Invoke) -> None:
    acme = api.iam.org("acme")
    devs = api.iam.user_group(acme, "devs")
    api.iam.bindings.append(Binding(acme, "viewer", user_group_id=devs.id))
    result = invoke(["org", "revoke", "--org", "acme", "--user-group", "devs", "-y", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"removed": True}
    assert api.requests()[-1][3] == {"user_group": "devs"}


def test_revoking_the_last_owner_is_refused(api: FakeApi, invoke: Invoke) -> None:
    api.iam.org("acme")
    result = invoke(["org", "revoke", "--org", "acme", "-u", "alice", "--yes"])
    assert result.exit_code == 4
    assert result.stderr == "Error: an organization keeps at least one owner (last_owner)\n"


def test_list_bindings(api: FakeApi, invoke: Invoke, home: Path) -> None:
    acme = api.iam.org("acme")
    devs = api.iam.user_group(acme, "devs", "bob")
    api.iam.bindings.append(Binding(acme, "viewer", user_group_id=devs.id))
    use_context(home, "acme")

    result = invoke(["org", "list-bindings"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        f"/organizations/{acme.id}/members",
        {"limit": "1000"},
        None,
    )
    assert "Roles on organization acme" in result.stderr.splitlines()
    assert table_header(result.stdout) == ["Subject", "Type", "Role", "Inherited from"]
    assert table_rows(result.stdout) == [
        ["alice", "user", "owner", "-"],
        ["devs", "user group", "viewer", "-"],
    ]
    data = json.loads(invoke(["org", "list-bindings", "--json"]).stdout)
    assert data["next"] is None
    assert [(b["subject_type"], b["role"], b["inherited"]) for b in data["items"]] == [
        ("user", "owner", False),
        ("user_group", "viewer", False),
    ]


def test_commands_need_a_login(api: FakeApi, invoke: Invoke, logged_in: Credentials) -> None:
    api.expire(logged_in.access_token)
    api.live_refresh.clear()
    result = invoke(["org", "list"])
    assert result.exit_code == 3
    assert (
        result.stderr
        == "Error: your session has ended; run `kavach login` (invalid_refresh_token)\n"
    )
