"""Organizations, secret groups and environments found by names, as far as the caller sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessServer
from tests.integration.cli_bridge import run_cli_as
from tests.integration.test_resources import Api, user

BY_NAME = "/organizations/by-name"


def by_names(org: str, group: str | None = None, env: str | None = None) -> str:
    """Return the path that finds a resource by the names on the way down to it."""
    path = f"{BY_NAME}/{org}"
    if group is not None:
        path += f"/secret-groups/{group}"
    if env is not None:
        path += f"/environments/{env}"
    return path


async def _tree(alice: Api) -> dict[str, Any]:
    """acme/web/{dev,prod} and acme/api/dev, owned by alice."""
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    made: dict[str, Any] = {"acme": org}
    for group_name, env_names in (("web", ("dev", "prod")), ("api", ("dev",))):
        group = await alice.call(
            "POST", f"/organizations/{org['id']}/secret-groups", {"name": group_name}, status=201
        )
        made[group_name] = group
        for env_name in env_names:
            made[f"{group_name}/{env_name}"] = await alice.call(
                "POST",
                f"/secret-groups/{group['id']}/environments",
                {"name": env_name},
                status=201,
            )
    return made


async def _answer(api: Api, path: str) -> tuple[int, Any]:
    response = await api.server.client.get(f"/api/v1{path}", headers=api.headers)
    return response.status_code, response.json()


async def test_a_role_on_one_environment_leads_down_to_it_by_names(
    server: InProcessServer,
) -> None:
    alice, carol = await user(server, "alice"), await user(server, "carol")
    tree = await _tree(alice)
    prod = tree["web/prod"]
    await alice.call(
        "POST", f"/environments/{prod['id']}/members", {"user": "carol", "role": "viewer"}
    )

    org = await carol.call("GET", by_names("acme"), status=200)
    assert (org["id"], org["role"]) == (tree["acme"]["id"], None)
    group = await carol.call("GET", by_names("acme", "web"), status=200)
    assert (group["id"], group["organization_id"], group["role"]) == (
        tree["web"]["id"],
        tree["acme"]["id"],
        None,
    )
    env = await carol.call("GET", by_names("acme", "web", "prod"), status=200)
    assert env == {**prod, "role": "viewer"}
    assert (env["secret_group_id"], env["organization_id"]) == (tree["web"]["id"], org["id"])

    # The owner finds everything, with her role on each.
    for path in (by_names("acme", "api"), by_names("acme", "api", "dev")):
        assert (await alice.call("GET", path, status=200))["role"] == "owner"


# (hidden from carol, who holds a role on web/prod only; missing for everyone)
HIDDEN_AND_MISSING = [
    (("acme", "api"), ("acme", "nope")),
    (("acme", "api"), ("nope", "web")),
    (("acme", "web", "dev"), ("acme", "web", "nope")),
    (("acme", "api", "dev"), ("acme", "nope", "dev")),
    (("acme", "api", "dev"), ("nope", "web", "prod")),
]


async def test_what_the_caller_may_not_see_answers_as_what_does_not_exist(
    server: InProcessServer,
) -> None:
    alice, carol = await user(server, "alice"), await user(server, "carol")
    outsider = await user(server, "outsider")
    tree = await _tree(alice)
    prod = tree["web/prod"]
    await alice.call(
        "POST", f"/environments/{prod['id']}/members", {"user": "carol", "role": "viewer"}
    )
    for hidden, missing in HIDDEN_AND_MISSING:
        for caller in (carol, outsider):
            seen = await _answer(caller, by_names(*hidden))
            assert seen == await _answer(caller, by_names(*missing)), (hidden, missing)
            status, body = seen
            assert (status, body["error_code"]) == (404, "not_found")
    # Without any role in the organization, not even the way down is there.
    for names in (("acme",), ("acme", "web"), ("acme", "web", "prod")):
        assert await _answer(outsider, by_names(*names)) == await _answer(
            outsider, by_names("nope", *names[1:])
        )


async def test_a_service_token_finds_its_own_environment_only(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    prod = tree["web/prod"]
    made = await alice.call(
        "POST", f"/environments/{prod['id']}/tokens", {"name": "ci", "role": "viewer"}, status=201
    )
    ci = Api(server, made["token"])
    found = await ci.call("GET", by_names("acme", "web", "prod"), status=200)
    assert (found["id"], found["role"]) == (prod["id"], "viewer")
    for names in (("acme",), ("acme", "web"), ("acme", "web", "dev")):
        assert (await ci.call("GET", by_names(*names), status=404))["error_code"] == "not_found"


@pytest.fixture
def kavach_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return a runner of `kavach ARGS` as a signed-in user, and the requests it sent."""

    async def runner(api: Api, *args: str) -> tuple[Any, list[tuple[str, str]]]:
        return await run_cli_as(api, tmp_path / "home", monkeypatch, *args)

    return runner


async def test_the_cli_reaches_an_environment_held_alone_by_its_names(
    server: InProcessServer, kavach_as: Any
) -> None:
    alice, carol = await user(server, "alice"), await user(server, "carol")
    tree = await _tree(alice)
    prod = tree["web/prod"]
    await alice.call(
        "POST", f"/environments/{prod['id']}/members", {"user": "carol", "role": "viewer"}
    )
    await alice.call(
        "POST",
        f"/environments/{prod['id']}/secrets/versions",
        {"message": "first", "set": {"API_KEY": "k1"}},
        status=201,
    )
    where = ("--org", "acme", "--group", "web", "--env", "prod")

    result, sent = await kavach_as(carol, "secret", "get", "API_KEY", *where)
    assert (result.exit_code, result.stdout) == (0, "k1"), result.output
    # One request finds the environment: no listing of the organization or the group.
    assert sent[-2:] == [
        ("GET", "/organizations/by-name/acme/secret-groups/web/environments/prod"),
        ("GET", f"/environments/{prod['id']}/secrets"),
    ]
    assert not any(path.endswith(("/secret-groups", "/environments")) for _, path in sent)

    result, _ = await kavach_as(
        carol, "secret", "list", "--org", "acme", "--group", "api", "--env", "dev"
    )
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: secret group 'api' not found in organization acme, "
        "or you have no access to it (not_found)\n"
    )
