"""References between secrets: resolution, refusals at commit, access across environments."""

from __future__ import annotations

from typing import Any

from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user


async def _tree(alice: Api) -> dict[str, dict[str, Any]]:
    """acme/web/{dev,shared} and acme/base/common."""
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    made: dict[str, dict[str, Any]] = {"org": org}
    for group_name, envs in (("web", ("dev", "shared")), ("base", ("common",))):
        group = await alice.call(
            "POST", f"/organizations/{org['id']}/secret-groups", {"name": group_name}, status=201
        )
        made[group_name] = group
        for env in envs:
            made[env] = await alice.call(
                "POST", f"/secret-groups/{group['id']}/environments", {"name": env}, status=201
            )
    return made


async def _commit(api: Api, env: dict[str, Any], status: int = 201, **body: Any) -> Any:
    body.setdefault("message", "change")
    path = f"/environments/{env['id']}/secrets/versions"
    return await api.call("POST", path, body, status=status)


async def _read(api: Api, env: dict[str, Any], query: str = "", status: int = 200) -> Any:
    return await api.call("GET", f"/environments/{env['id']}/secrets{query}", status=status)


async def test_references_resolve_across_environments_and_groups(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared, common = tree["dev"], tree["shared"], tree["common"]
    await _commit(alice, common, set={"REGION": "eu-west-1"})
    await _commit(alice, shared, set={"DB_HOST": "db.internal", "ZONE": "${base.common.REGION}a"})
    stored = {
        "DB_USER": "app",
        "DB_URL": "postgres://${DB_USER}@${shared.DB_HOST}/app",
        "ZONE": "${shared.ZONE}",
        "LITERAL": "$${NOT_A_REFERENCE}",
    }
    version = await _commit(alice, dev, set=stored)
    assert [(s["label"], s["seq"]) for s in version["sources"]] == [
        ("base/common", 1),
        ("web/shared", 1),
    ]

    read = await _read(alice, dev)
    assert read["secrets"] == {
        "DB_USER": "app",
        "DB_URL": "postgres://app@db.internal/app",
        "ZONE": "eu-west-1a",
        "LITERAL": "${NOT_A_REFERENCE}",
    }
    assert [(s["label"], s["seq"]) for s in read["sources"]] == [
        ("base/common", 1),
        ("web/shared", 1),
    ]
    raw = await _read(alice, dev, "?resolve=false")
    assert raw["secrets"] == stored and raw["sources"] == []

    # A change to a referenced secret is seen at once; the older version reads as it was.
    await _commit(alice, shared, set={"DB_HOST": "db2.internal"})
    assert (await _read(alice, dev))["secrets"]["DB_URL"] == "postgres://app@db2.internal/app"
    pinned = await _read(alice, dev, f"?version={version['id']}")
    assert pinned["secrets"]["DB_URL"] == "postgres://app@db.internal/app"

    # Each environment a read pulls from is audited as read.
    events = await alice.call("GET", f"/audit?environment_id={shared['id']}&limit=50", status=200)
    reads = [e for e in events["items"] if e["action"] == "secret.read"]
    assert {e["details"]["what"] for e in reads} == {"reference"}


async def test_every_refusal_at_commit_writes_nothing(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"A": "1"})
    await _commit(alice, dev, set={"X": "x"})
    chain = {f"C{n}": f"${{C{n + 1}}}" for n in range(9)} | {"C9": "end"}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"set": {"B": "${shared.A"}}, 422, "invalid_reference", "never closed"),
        ({"set": {"B": "${A B}"}}, 422, "invalid_reference", "B: ${A B} is not a reference"),
        ({"set": {"B": "${shared.NOPE}"}}, 422, "missing_reference", "web/shared.NOPE"),
        ({"set": {"B": "${NOPE}"}}, 422, "missing_reference", "web/dev.B refers to web/dev.NOPE"),
        ({"set": {"B": "${nowhere.A}"}}, 403, "reference_forbidden", "${nowhere.A}"),
        ({"set": {"B": "${C}", "C": "${B}"}}, 422, "reference_cycle", "web/dev.B -> web/dev.C"),
        ({"set": chain}, 422, "reference_cycle", "deeper than 8"),
    ]
    for body, status, code, words in cases:
        refused = await _commit(alice, dev, status=status, **body)
        assert refused["error_code"] == code, body
        assert words in refused["error"], (words, refused["error"])
    # A cycle through another environment is refused too, with its path.
    await _commit(alice, dev, set={"Y": "${shared.A}"})
    cycle = await _commit(alice, shared, status=422, set={"A": "${dev.Y}"})
    assert cycle["error"].endswith("web/shared.A -> web/dev.Y -> web/shared.A")
    versions = await alice.call("GET", f"/environments/{dev['id']}/secrets/versions")
    assert [v["seq"] for v in versions["items"]] == [2, 1]


async def test_removing_a_referenced_secret_is_refused_unless_forced(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"A": "1", "B": "2"})
    await _commit(alice, dev, set={"X": "${shared.A}"})
    refused = await _commit(alice, shared, status=409, unset=["A"])
    assert refused["error_code"] == "secret_referenced"
    assert refused["data"] == {"dependents": ["web/dev.X -> A"]}
    snapshot = await _commit(alice, shared, status=409, secrets={"B": "2"}, replace=True)
    assert snapshot["error_code"] == "secret_referenced"
    await _commit(alice, shared, unset=["B"])  # nothing refers to B

    # Once dev no longer refers to it, A may go; a forced removal names what it breaks.
    await _commit(alice, dev, set={"X": "plain"})
    await _commit(alice, shared, set={"A": "again"})
    await _commit(alice, dev, set={"X": "${shared.A}"})
    forced = await _commit(alice, shared, unset=["A"], force=True)
    assert forced["broken_references"] == ["web/dev.X -> A"]
    events = await alice.call("GET", f"/audit?environment_id={shared['id']}&limit=5", status=200)
    commits = [e for e in events["items"] if e["action"] == "secret.commit"]
    assert commits[0]["details"]["broken_references"] == ["web/dev.X -> A"]
    broken = await _read(alice, dev, status=409)
    assert broken["error_code"] == "broken_reference"
    assert "web/shared.A" in broken["error"]
    assert (await _read(alice, dev, "?resolve=false"))["secrets"] == {"X": "${shared.A}"}
    # Dev's other secrets can still change: a reference carried as it is is not walked again.
    await _commit(alice, dev, set={"OTHER": "1"})
    touched = await _commit(alice, dev, status=422, set={"X": "${shared.A} again"})
    assert touched["error_code"] == "missing_reference"


async def test_references_need_read_access_to_what_they_pull_from(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"PASSWORD": "hunter2"})
    member = {"user": "bob", "role": "editor"}
    await alice.call("POST", f"/environments/{dev['id']}/members", member, status=200)

    # Bob may not write a reference into shared, nor learn whether a name exists there.
    for name in ("PASSWORD", "NOPE"):
        refused = await _commit(bob, dev, status=403, set={"STOLEN": f"${{shared.{name}}}"})
        assert refused["error_code"] == "reference_forbidden"
        assert refused["error"] == (
            f"STOLEN refers to ${{shared.{name}}}: no such environment that you may read"
        )

    # Alice may; Bob's read then fails naming the reference, never the value.
    await _commit(alice, dev, set={"DB_PASSWORD": "${shared.PASSWORD}"})
    refused = await _read(bob, dev, status=403)
    assert refused["error_code"] == "reference_forbidden"
    assert "${shared.PASSWORD}" in refused["error"] and "hunter2" not in str(refused)
    query = f"/audit?environment_id={dev['id']}&action=secret.read&actor=bob"
    (event,) = (await alice.call("GET", query, status=200))["items"]
    assert (event["outcome"], event["details"]["error"]) == ("failure", "reference_forbidden")
    assert (await _read(bob, dev, "?resolve=false"))["secrets"] == {
        "DB_PASSWORD": "${shared.PASSWORD}"
    }
    # Bob may still change other secrets of dev: the reference is carried, not re-admitted.
    await _commit(bob, dev, set={"OTHER": "1"})

    await alice.call("POST", f"/environments/{shared['id']}/members", member, status=200)
    assert (await _read(bob, dev))["secrets"]["DB_PASSWORD"] == "hunter2"


async def test_rollback_checks_references_as_a_commit_does(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"A": "1"})
    first = await _commit(alice, dev, set={"X": "${shared.A}"})
    await _commit(alice, dev, set={"X": "plain"})
    await _commit(alice, shared, unset=["A"])
    rollback = {"version_id": first["id"], "commit_message": "back"}
    path = f"/environments/{dev['id']}/secrets/rollback"
    refused = await alice.call("POST", path, rollback, status=422)
    assert refused["error_code"] == "missing_reference"
    await _commit(alice, shared, set={"A": "2"})
    back = await alice.call("POST", path, rollback, status=201)
    assert [s["label"] for s in back["sources"]] == ["web/shared"]
    assert (await _read(alice, dev))["secrets"] == {"X": "2"}


async def test_a_service_token_follows_references_as_far_as_its_maker_may_read(
    server: InProcessServer,
) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"HOST": "db", "OTHER": "x"})
    await _commit(alice, dev, set={"URL": "pg://${shared.HOST}"})
    await alice.call(
        "POST", f"/environments/{dev['id']}/members", {"user": "bob", "role": "admin"}, status=200
    )
    made = {"name": "ci", "role": "editor"}
    tokens = f"/environments/{dev['id']}/tokens"
    alices = Api(server, (await alice.call("POST", tokens, made, status=201))["token"])
    bobs = Api(server, (await bob.call("POST", tokens, {**made, "name": "b"}, status=201))["token"])

    assert (await _read(alices, dev))["secrets"] == {"URL": "pg://db"}
    refused = await _read(bobs, dev, status=403)  # Bob may not read shared: nor may his token
    assert refused["error_code"] == "reference_forbidden"
    # No token adds a reference beyond its environment, even where its maker may read.
    added = await _commit(alices, dev, status=403, set={"STOLEN": "${shared.OTHER}"})
    assert added["error_code"] == "reference_forbidden"
    await _commit(alices, dev, set={"PORT": "5432", "BOTH": "${URL}:${PORT}"})
    assert (await _read(alices, dev))["secrets"]["BOTH"] == "pg://db:5432"


async def test_deleting_an_environment_others_refer_to_is_refused_unless_forced(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared, common = tree["dev"], tree["shared"], tree["common"]
    await _commit(alice, common, set={"REGION": "eu"})
    await _commit(alice, shared, set={"A": "${base.common.REGION}"})
    await _commit(alice, dev, set={"X": "${shared.A}"})
    refused = await alice.call("DELETE", f"/environments/{shared['id']}?cascade=true", status=409)
    assert refused["error_code"] == "environment_referenced"
    assert refused["data"] == {"dependents": ["web/dev.X -> web/shared.A"]}
    group = await alice.call(
        "DELETE", f"/secret-groups/{tree['base']['id']}?cascade=true", status=409
    )
    assert group["data"] == {"dependents": ["web/shared.A -> base/common.REGION"]}
    # A group whose environments refer only to each other goes at once.
    await alice.call("DELETE", f"/environments/{dev['id']}?cascade=true", status=200)
    await alice.call("DELETE", f"/environments/{shared['id']}?cascade=true", status=200)
    await _commit(alice, common, set={"OWN": "${REGION}"})
    await alice.call("DELETE", f"/secret-groups/{tree['base']['id']}?cascade=true", status=200)


async def test_a_forced_delete_breaks_what_refers_to_it(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    tree = await _tree(alice)
    dev, shared = tree["dev"], tree["shared"]
    await _commit(alice, shared, set={"A": "1"})
    await _commit(alice, dev, set={"X": "${shared.A}"})
    path = f"/environments/{shared['id']}?cascade=true&force=true"
    await alice.call("DELETE", path, status=200)
    events = await alice.call("GET", f"/audit?organization_id={tree['org']['id']}&limit=5")
    deleted = next(e for e in events["items"] if e["action"] == "environment.delete")
    assert deleted["details"]["removed"]["broken_references"] == 1
    refused = await _read(alice, dev, status=403)
    assert refused["error_code"] == "reference_forbidden"


async def test_a_read_follows_only_what_its_values_pull_from(server: InProcessServer) -> None:
    alice, bob = await user(server, "alice"), await user(server, "bob")
    tree = await _tree(alice)
    dev, shared, common = tree["dev"], tree["shared"], tree["common"]
    await _commit(alice, common, set={"R": "secret-of-common"})
    await _commit(alice, shared, set={"Y": "plain", "Q": "${base.common.R}"})
    await _commit(alice, dev, set={"X": "${shared.Y}"})
    viewer = {"user": "bob", "role": "viewer"}
    await alice.call("POST", f"/secret-groups/{tree['web']['id']}/members", viewer, status=200)
    # Bob may not read common, which shared's Q pulls from; dev never uses Q.
    read = await _read(bob, dev)
    assert read["secrets"] == {"X": "plain"}
    assert [s["label"] for s in read["sources"]] == ["web/shared"]
    assert (await _read(bob, shared, status=403))["error_code"] == "reference_forbidden"
