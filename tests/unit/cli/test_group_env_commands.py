"""`kavach group …` and `kavach env …`: resolving names to ids, context, and the shared verbs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import Invoke, active, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import USERS, Binding, FakeIam, Node

pytestmark = pytest.mark.usefixtures("logged_in")


@dataclass
class Tree:
    acme: Node
    web: Node
    prod: Node


@pytest.fixture
def tree(api: FakeApi) -> Tree:
    """acme (alice owns it) / web / prod."""
    acme = api.iam.org("acme")
    web = api.iam.group(acme, "web")
    return Tree(acme, web, api.iam.env(web, "prod"))


# ---- group -------------------------------------------------------------------------------


def test_group_create_in_the_active_org(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme")
    result = invoke(["group", "create", "api", "--description", "The API"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created secret group acme/api.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme", {}, None),
        (
            "POST",
            f"/organizations/{tree.acme.id}/secret-groups",
            {},
            {"name": "api", "description": "The API"},
        ),
    ]


def test_group_create_in_another_org_as_json(api: FakeApi, invoke: Invoke, home: Path) -> None:
    other = api.iam.org("other")
    use_context(home, "acme")
    result = invoke(["group", "create", "api", "--org", "other", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["name"], data["organization_id"], data["role"]) == ("api", other.id, "owner")
    assert api.requests()[-1][3] == {"name": "api"}


def test_group_commands_need_an_org(api: FakeApi, invoke: Invoke) -> None:
    for args in (
        ["group", "create", "api"],
        ["group", "list"],
        ["group", "activate", "web"],
        ["group", "delete", "web", "--yes"],
    ):
        result = invoke(args)
        assert result.exit_code == 1, args
        assert result.stderr == (
            "Error: no organization selected: pass --org NAME or run `kavach org activate NAME`\n"
        )
    assert api.calls == []


def test_group_list_marks_the_active_group_only_in_its_org(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    api.iam.group(tree.acme, "api", role="viewer")
    other = api.iam.org("other")
    api.iam.group(other, "web")
    use_context(home, "acme", "web")

    result = invoke(["group", "list"])
    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        f"/organizations/{tree.acme.id}/secret-groups",
        {"limit": "1000"},
        None,
    )
    assert "Secret groups in organization acme" in result.stderr.splitlines()
    assert [row[:3] for row in table_rows(result.stdout)] == [
        ["*", "web", "owner"],
        ["", "api", "owner"],  # owner inherited from the organization beats viewer
    ]
    elsewhere = json.loads(invoke(["group", "list", "--org", "other", "--json"]).stdout)
    assert elsewhere["next"] is None
    assert [(row["name"], row["active"]) for row in elsewhere["items"]] == [("web", False)]


def test_group_list_when_empty(api: FakeApi, invoke: Invoke, home: Path) -> None:
    api.iam.org("acme")
    use_context(home, "acme")
    result = invoke(["group", "list"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "No secret groups in organization acme.\n"


def test_group_activate_looks_the_group_up_by_name(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "api", "dev")
    result = invoke(["group", "activate", "web"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Switched to secret group acme/web.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme", {}, None),
        ("GET", "/organizations/by-name/acme/secret-groups/web", {}, None),
    ]
    # A different group: the environment of the old one means nothing in it.
    assert active(home) == ("acme", "web", None)


def test_group_activate_in_another_org_switches_the_org_too(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    other = api.iam.org("other")
    api.iam.group(other, "web")
    use_context(home, "acme", "web", "prod")
    result = invoke(["group", "activate", "web", "--org", "other", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "organization": "other",
        "secret_group": "web",
        "environment": None,
    }
    assert active(home) == ("other", "web", None)


def test_group_activate_again_keeps_the_env(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "web", "prod")
    result = invoke(["group", "activate", "web"])
    assert result.stdout == "Switched to secret group acme/web (active: acme/web/prod).\n"
    assert active(home) == ("acme", "web", "prod")


def test_group_activate_unknown(api: FakeApi, invoke: Invoke, home: Path, tree: Tree) -> None:
    api.iam.group(tree.acme, "website")  # a longer name must not match
    use_context(home, "acme")
    result = invoke(["group", "activate", "webs"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: secret group 'webs' not found in organization acme, "
        "or you have no access to it (not_found)\n"
    )
    assert active(home) == ("acme", None, None)


def test_group_lookup_matches_the_exact_name_even_if_the_filter_is_ignored(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from . import fake_iam_routes

    real = fake_iam_routes.handle

    def unfiltered(
        iam: FakeIam, method: str, path: str, params: dict[str, str], body: object
    ) -> httpx.Response:
        return real(iam, method, path, {k: v for k, v in params.items() if k != "name"}, body)

    monkeypatch.setattr(fake_iam_routes, "handle", unfiltered)
    api.iam.group(tree.acme, "api")
    use_context(home, "acme")
    assert invoke(["group", "activate", "api"]).exit_code == 0
    assert active(home) == ("acme", "api", None)


def test_group_delete_clears_it_from_the_context(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "web", "prod")
    refused = invoke(["group", "delete", "web", "--cascade"])
    assert refused.exit_code == 1
    assert "pass --yes to delete secret group acme/web and everything in it" in refused.stderr

    result = invoke(["group", "delete", "web", "--cascade", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted secret group acme/web.\n"
    assert api.requests()[-1] == (
        "DELETE",
        f"/secret-groups/{tree.web.id}",
        {"cascade": "true"},
        None,
    )
    assert active(home) == ("acme", None, None)
    assert tree.prod.id not in api.iam.nodes


def test_group_grant_revoke_and_bindings(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "web")
    granted = invoke(["group", "grant", "-r", "viewer", "-u", "carol"])
    assert granted.exit_code == 0, granted.output
    assert granted.stdout == "Granted viewer on secret group acme/web to user carol.\n"
    members = f"/secret-groups/{tree.web.id}/members"
    assert api.requests()[-1] == ("POST", members, {}, {"user": "carol", "role": "viewer"})

    listed = invoke(["group", "list-bindings"])
    assert table_rows(listed.stdout) == [
        ["alice", "user", "owner", "organization acme"],
        ["carol", "user", "viewer", "-"],
    ]

    revoked = invoke(["group", "revoke", "-u", "carol", "--yes"])
    assert revoked.exit_code == 0, revoked.output
    assert api.requests()[-1] == ("DELETE", members, {}, {"user": "carol"})


def test_group_flags_do_not_reuse_the_active_group_in_another_org(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "web")
    result = invoke(["group", "list-bindings", "--org", "other"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no secret group selected in organization 'other': "
        "pass --group NAME or run `kavach group activate NAME`\n"
    )


# ---- env ---------------------------------------------------------------------------------


def test_env_create_in_the_active_group(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    use_context(home, "acme", "web")
    result = invoke(["env", "create", "staging"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created environment acme/web/staging.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme/secret-groups/web", {}, None),
        ("POST", f"/secret-groups/{tree.web.id}/environments", {}, {"name": "staging"}),
    ]


def test_env_commands_need_a_group(api: FakeApi, invoke: Invoke, home: Path) -> None:
    use_context(home, "acme")
    for args in (["env", "create", "dev"], ["env", "list"], ["env", "activate", "dev"]):
        result = invoke(args)
        assert result.exit_code == 1
        assert result.stderr == (
            "Error: no secret group selected in organization 'acme': "
            "pass --group NAME or run `kavach group activate NAME`\n"
        )
    result = invoke(["env", "list-bindings", "--group", "web"])
    assert result.stderr == (
        "Error: no environment selected in secret group acme/web: "
        "pass --env NAME or run `kavach env activate NAME`\n"
    )
    assert api.calls == []


def test_env_list_with_flags_and_the_active_mark(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    api.iam.env(tree.web, "dev")
    use_context(home, "acme", "web", "prod")
    result = invoke(["env", "list"])
    assert result.exit_code == 0, result.output
    assert "Environments in secret group acme/web" in result.stderr.splitlines()
    assert [row[:3] for row in table_rows(result.stdout)] == [
        ["*", "prod", "owner"],
        ["", "dev", "owner"],
    ]
    assert api.requests()[-1] == (
        "GET",
        f"/secret-groups/{tree.web.id}/environments",
        {"limit": "1000"},
        None,
    )
    data = json.loads(invoke(["env", "list", "--org", "acme", "--group", "web", "--json"]).stdout)
    assert data["next"] is None
    assert [(row["name"], row["active"], row["secret_group_id"]) for row in data["items"]] == [
        ("prod", True, tree.web.id),
        ("dev", False, tree.web.id),
    ]
    # Another group's "prod" is not the active environment.
    api_prod = api.iam.env(api.iam.group(tree.acme, "api"), "prod")
    data = json.loads(invoke(["env", "list", "--group", "api", "--json"]).stdout)
    assert [(row["id"], row["active"]) for row in data["items"]] == [(api_prod.id, False)]


def test_env_activate_sets_all_three(api: FakeApi, invoke: Invoke, home: Path, tree: Tree) -> None:
    result = invoke(["env", "activate", "prod", "--org", "acme", "--group", "web"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Switched to environment acme/web/prod.\n"
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme/secret-groups/web", {}, None),
        ("GET", "/organizations/by-name/acme/secret-groups/web/environments/prod", {}, None),
    ]
    assert active(home) == ("acme", "web", "prod")


def test_env_activate_unknown(api: FakeApi, invoke: Invoke, home: Path, tree: Tree) -> None:
    use_context(home, "acme", "web")
    result = invoke(["env", "activate", "qa"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: environment 'qa' not found in secret group acme/web, "
        "or you have no access to it (not_found)\n"
    )


def test_env_delete(api: FakeApi, invoke: Invoke, home: Path, tree: Tree) -> None:
    use_context(home, "acme", "web", "prod")
    result = invoke(["env", "delete", "prod", "-y", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": tree.prod.id, "deleted": True}
    assert api.requests()[-1] == ("DELETE", f"/environments/{tree.prod.id}", {}, None)
    assert active(home) == ("acme", "web", None)


def test_env_bindings_say_where_they_are_inherited_from(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    devs = api.iam.user_group(tree.acme, "devs")
    api.iam.bindings.append(Binding(tree.web, "editor", user_group_id=devs.id))
    api.iam.bindings.append(Binding(tree.prod, "viewer", user_id=USERS["bob"]["id"]))
    use_context(home, "acme", "web", "prod")

    result = invoke(["env", "list-bindings"])

    assert result.exit_code == 0, result.output
    assert api.requests()[-1] == (
        "GET",
        f"/environments/{tree.prod.id}/members",
        {"limit": "1000"},
        None,
    )
    assert table_rows(result.stdout) == [
        ["alice", "user", "owner", "organization acme"],
        ["devs", "user group", "editor", "secret group web"],
        ["bob", "user", "viewer", "-"],
    ]


def test_env_grant_to_a_user_group(api: FakeApi, invoke: Invoke, home: Path, tree: Tree) -> None:
    api.iam.user_group(tree.acme, "devs")
    use_context(home, "acme", "web", "prod")
    result = invoke(["env", "grant", "--user-group", "devs", "-r", "editor"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Granted editor on environment acme/web/prod to user group devs.\n"
    assert api.requests()[-1] == (
        "POST",
        f"/environments/{tree.prod.id}/members",
        {},
        {"user_group": "devs", "role": "editor"},
    )


def test_env_revoke_prompts_on_a_terminal(
    api: FakeApi, invoke: Invoke, home: Path, tree: Tree
) -> None:
    api.iam.bindings.append(Binding(tree.prod, "viewer", user_id=USERS["bob"]["id"]))
    use_context(home, "acme", "web", "prod")
    ended = invoke(["env", "revoke", "-u", "bob"], terminal=True, input="")
    assert ended.exit_code == 1
    assert ended.stderr == (
        "Revoke user bob's role on environment acme/web/prod? [y/N]: \n"
        "Cancelled; nothing was changed.\n"
    )
    assert "DELETE" not in [call.method for call in api.calls]
    result = invoke(["env", "revoke", "-u", "bob"], terminal=True, input="yes\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Revoked user bob's role on environment acme/web/prod.\n"


def test_a_viewer_cannot_see_bindings(api: FakeApi, invoke: Invoke, home: Path) -> None:
    shared = api.iam.org("shared", role=None)
    web = api.iam.group(shared, "web", role="viewer")
    api.iam.env(web, "prod")
    result = invoke(["env", "list-bindings", "--org", "shared", "--group", "web", "--env", "prod"])
    assert result.exit_code == 3
    assert result.stderr == "Error: you may not members.read on this environment (forbidden)\n"
