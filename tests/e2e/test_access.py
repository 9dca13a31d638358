"""Access control end to end: grants, inheritance, user groups, revocation, service tokens."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Cli, CliResult, KavachServer, ServerFactory, run_kavach

pytestmark = pytest.mark.e2e

ORG, GROUP, TEAM = "acme", "payments", "deployers"
ENV1, ENV2 = "staging", "production"
DB_URL = "postgres://app:s3cret@db.internal/staging"


def _log_in(server: KavachServer, users: dict[str, Cli]) -> None:
    """Log users in side by side, each approved headlessly under its own login."""
    pending = {user: cli.start_login(server.url) for user, cli in users.items()}
    for user, login in pending.items():
        server.approve(login.code, user)
    for user, login in pending.items():
        result = login.wait()
        assert result.code == 0, result
        assert result.stdout.strip() == f"Logged in as {user} on {server.url}"


def _ok(result: CliResult) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    return result.stdout


def _refused(result: CliResult, code: int, message: str) -> None:
    """Insist a command failed with `code` and printed exactly `message` as its error."""
    assert result.code == code, result
    assert result.stderr.strip().splitlines()[-1] == f"Error: {message}", result.stderr


def _api(
    server: KavachServer, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _expect(response: httpx.Response, status: int, error_code: str | None = None) -> Any:
    """Insist on a status and envelope error code; return the envelope's data."""
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["success"] is (error_code is None), envelope
    assert envelope["error_code"] == error_code, envelope
    return envelope["data"]


def _roles(cli: Cli) -> dict[str, str | None]:
    """Return the caller's role on each environment of the active secret group."""
    return {env["name"]: env["role"] for env in cli.run_json("env", "list", "--json")["items"]}


def _commit(cli: Cli, env: str, assignment: str) -> CliResult:
    """Stage one NAME=VALUE on an environment and commit it."""
    _ok(cli.run("secret", "add", assignment, "--env", env))
    return cli.run(
        "secret", "commit", "-m", f"set {assignment.split('=')[0]}", "--yes", "--env", env
    )


def _build_tree(owner: Cli) -> tuple[str, str, str]:
    """Create ORG/GROUP/{ENV1,ENV2} with DATABASE_URL on ENV1, active for `owner`.

    Return the organization's id and the API paths of the two environments.
    """
    org = json.loads(_ok(owner.run("org", "create", ORG, "--json")))
    assert org["role"] == "owner"
    _ok(owner.run("org", "activate", ORG))
    _ok(owner.run("group", "create", GROUP))
    _ok(owner.run("group", "activate", GROUP))
    paths = [
        f"/environments/{json.loads(_ok(owner.run('env', 'create', name, '--json')))['id']}"
        for name in (ENV1, ENV2)
    ]
    _ok(_commit(owner, ENV1, f"DATABASE_URL={DB_URL}"))
    return org["id"], paths[0], paths[1]


def test_grants_inherit_and_revocations_apply_at_once_on_every_instance(
    start_server: ServerFactory, make_cli: Callable[[str], Cli]
) -> None:
    server = start_server()
    # A second instance on the same database and keys: nothing may be cached per process.
    replica = start_server(share_data_with=server)
    alice, bob = make_cli("alice"), make_cli("bob")
    _log_in(server, {"alice": alice, "bob": bob})

    # 1. Alice builds acme/payments/{staging,production} and owns all of it.
    org_id, env1, env2 = _build_tree(alice)
    assert _roles(alice) == {ENV1: "owner", ENV2: "owner"}

    # 2. Bob sees nothing, not even that the organization exists.
    assert bob.run_json("org", "list", "--json") == {"items": [], "next": None}
    hidden = bob.run("env", "list", "--org", ORG, "--group", GROUP)
    _refused(hidden, 4, f"organization '{ORG}' not found, or you have no access to it (not_found)")
    assert hidden.stdout == ""
    assert ENV1 not in hidden.stderr and ENV2 not in hidden.stderr
    bob_token = bob.tokens(server.url)[0]
    _expect(_api(server, bob_token, "GET", env1), 404, "not_found")
    _expect(_api(replica, bob_token, "GET", f"{env1}/secrets"), 404, "not_found")

    # 3. Viewer on the secret group: Bob reads both environments and their secrets, creates nothing.
    _ok(alice.run("group", "grant", "-r", "viewer", "-u", "bob"))
    listed = bob.run_json("org", "list", "--json")
    assert [(o["name"], o["role"]) for o in listed["items"]] == [(ORG, None)]
    _ok(bob.run("org", "activate", ORG))
    _ok(bob.run("group", "activate", GROUP))
    assert _roles(bob) == {ENV1: "viewer", ENV2: "viewer"}
    assert _ok(bob.run("secret", "get", "DATABASE_URL", "--env", ENV1)) == DB_URL
    _refused(
        bob.run("env", "create", "x"),
        3,
        "this needs permission 'env.create' (admin or higher) (forbidden)",
    )

    # 4. Editor on ONE environment through a user group: the stronger role wins there only.
    _ok(alice.run("user-group", "create", TEAM))
    _ok(alice.run("user-group", "members", "add", TEAM, "bob"))
    _ok(alice.run("env", "grant", "-r", "editor", "--user-group", TEAM, "--env", ENV1))
    assert _roles(bob) == {ENV1: "editor", ENV2: "viewer"}
    for instance in (server, replica):
        assert _expect(_api(instance, bob_token, "GET", env1), 200)["role"] == "editor"
        assert _expect(_api(instance, bob_token, "GET", env2), 200)["role"] == "viewer"
    committed = _commit(bob, ENV1, "FEATURE_FLAG=on")
    assert _ok(committed).splitlines()[-1].startswith("Committed v2 ("), committed
    refused = _commit(bob, ENV2, "FEATURE_FLAG=on")
    _refused(refused, 3, "this needs permission 'secret.write' (editor or higher) (forbidden)")
    assert "Committed" not in refused.stdout
    # An editor may not hand out roles, not even to himself.
    _refused(
        bob.run("env", "grant", "-r", "owner", "-u", "bob", "--env", ENV1),
        3,
        "this needs permission 'members.grant' (admin or higher) (forbidden)",
    )

    # 5. Alice revokes both grants through one instance; the other denies Bob's next request.
    _ok(alice.run("group", "revoke", "-u", "bob", "--yes"))
    _ok(alice.run("env", "revoke", "--user-group", TEAM, "--env", ENV1, "--yes"))
    write = {"message": "after revoke", "set": {"FEATURE_FLAG": "off"}}
    _expect(_api(replica, bob_token, "GET", env1), 404, "not_found")
    _expect(_api(replica, bob_token, "POST", f"{env1}/secrets/versions", write), 404, "not_found")
    _expect(_api(replica, bob_token, "GET", f"{env2}/secrets"), 404, "not_found")
    _expect(_api(replica, bob_token, "GET", f"/organizations/{org_id}"), 404, "not_found")
    _expect(_api(server, bob_token, "GET", env1), 404, "not_found")
    assert bob.run_json("org", "list", "--json") == {"items": [], "next": None}
    gone = bob.run("env", "list")
    _refused(gone, 4, f"organization '{ORG}' not found, or you have no access to it (not_found)")
    # Only the roles went away: the same access token, and the session, are still good.
    assert bob.tokens(server.url)[0] == bob_token
    assert bob.run_json("status", "--json")["user"]["login"] == "bob"


# SQLite only: the command line finding its environment by name; the server's side of a
# role held on one environment runs on both databases in the integration tests.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_role_on_one_environment_is_used_by_name_from_the_cli(
    start_server: ServerFactory, make_cli: Callable[[str], Cli]
) -> None:
    server = start_server()
    alice, bob = make_cli("alice"), make_cli("bob")
    _log_in(server, {"alice": alice, "bob": bob})
    _build_tree(alice)
    _ok(alice.run("env", "grant", "-r", "viewer", "-u", "bob", "--env", ENV1))

    # Bob has no active context and no role above ENV1: he names the way down each time.
    where = ["--org", ORG, "--group", GROUP, "--env", ENV1]
    listed = bob.run_json("secret", "list", *where, "--json")
    assert [version["message"] for version in listed["items"]] == ["set DATABASE_URL"]
    show = "import os; print(os.environ['DATABASE_URL'])"
    ran = _ok(bob.run("run", *where, "--", sys.executable, "-c", show))
    assert ran.strip() == DB_URL
    envs = bob.run_json("env", "list", "--org", ORG, "--group", GROUP, "--json")
    assert [(env["name"], env["role"]) for env in envs["items"]] == [(ENV1, "viewer")]
    groups = bob.run_json("group", "list", "--org", ORG, "--json")
    assert [(group["name"], group["role"]) for group in groups["items"]] == [(GROUP, None)]
    # What he holds no role on stays out of sight.
    _refused(
        bob.run("secret", "list", "--org", ORG, "--group", GROUP, "--env", ENV2),
        4,
        f"environment '{ENV2}' not found in secret group {ORG}/{GROUP}, "
        "or you have no access to it (not_found)",
    )


def test_a_service_token_reaches_its_environment_only_until_revoked(
    start_server: ServerFactory, make_cli: Callable[[str], Cli]
) -> None:
    server = start_server()
    replica = start_server(share_data_with=server)
    alice, ci = make_cli("alice"), make_cli("ci")
    _log_in(server, {"alice": alice})
    org_id, env1, env2 = _build_tree(alice)

    created = alice.run("token", "create", "ci", "-r", "viewer", "--env", ENV1)
    token = _ok(created).strip()
    assert token.startswith("kvt_") and "\n" not in token, created
    assert f"Created viewer token 'ci' for environment {ORG}/{GROUP}/{ENV1}" in created.stderr

    for instance in (server, replica):
        assert _expect(_api(instance, token, "GET", env1), 200)["role"] == "viewer"
        read = _expect(_api(instance, token, "GET", f"{env1}/secrets"), 200)
        assert read["secrets"] == {"DATABASE_URL": DB_URL}
        _expect(_api(instance, token, "GET", env2), 404, "not_found")
        _expect(_api(instance, token, "GET", f"{env2}/secrets"), 404, "not_found")
        _expect(_api(instance, token, "GET", f"/organizations/{org_id}"), 404, "not_found")
        minted = _api(instance, token, "POST", f"{env1}/tokens", {"name": "x", "role": "viewer"})
        _expect(minted, 403, "forbidden")
        change = {"message": "m", "set": {"K": "v"}}
        _expect(_api(instance, token, "POST", f"{env1}/secrets/versions", change), 403, "forbidden")

    # The CLI, never logged in, works from KAVACH_TOKEN alone.
    as_ci = {**ci.env(server.url), "KAVACH_TOKEN": token}
    exported = _ok(run_kavach(["secret", "export", "--format", "json"], as_ci))
    assert json.loads(exported) == {"DATABASE_URL": DB_URL}
    assert not ci.credentials_file.exists()

    revoked = alice.run("token", "revoke", "ci", "--yes", "--env", ENV1)
    assert _ok(revoked).startswith("Revoked token 'ci' ("), revoked
    for instance in (replica, server):
        _expect(_api(instance, token, "GET", env1), 401, "invalid_token")
        _expect(_api(instance, token, "GET", f"{env1}/secrets"), 401, "invalid_token")
    _refused(
        run_kavach(["secret", "export"], as_ci),
        3,
        "invalid or revoked service token (invalid_token)",
    )
