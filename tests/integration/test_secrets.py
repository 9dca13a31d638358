"""Secrets: versions, concurrency, diff, rollback, history, limits, isolation, encryption."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from kavach.server.audit.models import AuditEvent
from kavach.server.secrets import service
from kavach.server.secrets.models import Secret
from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user

AWKWARD = {
    "NEWLINES": "line1\nline2\r\nline3\n",
    "QUOTES": "it's \"quoted\" 'twice'",
    "DOLLAR": "$HOME $${PATH} $(whoami) `id`",  # $${ is a literal ${ (not a reference)
    "EQUALS": "a=b=c==",
    "HASH": "#not a comment # really",
    "SPACES": "  leading and trailing  ",
    "EMPTY": "",
    "UNICODE": "pässwörd 🔑 \u00a0nbsp",
    "BACKSLASH": "C:\\path\\n\\t",
}


async def _env(alice: Api, name: str = "acme") -> dict[str, Any]:
    org = await alice.call("POST", "/organizations/", {"name": name}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env: dict[str, Any] = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return env


async def _commit(api: Api, env_id: str, status: int = 201, **body: Any) -> Any:
    body.setdefault("message", "change")
    return await api.call("POST", f"/environments/{env_id}/secrets/versions", body, status=status)


async def test_commit_read_and_list_versions(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    empty = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert empty == {"version": None, "secrets": {}, "sources": []}
    first = await _commit(alice, env["id"], set={"A": "1", "B": "2"}, message="first")
    second = await _commit(alice, env["id"], set={"B": "3"}, unset=["A"], message="second")
    assert (first["seq"], second["seq"], second["parent_id"]) == (1, 2, first["id"])
    assert len(first["id"]) == 8
    assert second["author"]["label"] == "alice"
    latest = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert latest["secrets"] == {"B": "3"}
    assert latest["version"]["id"] == second["id"]
    old = await alice.call(
        "GET", f"/environments/{env['id']}/secrets?version={first['id']}", status=200
    )
    assert old["secrets"] == {"A": "1", "B": "2"}
    page = await alice.call("GET", f"/environments/{env['id']}/secrets/versions", status=200)
    assert [(v["seq"], v["secret_count"], v["message"]) for v in page["items"]] == [
        (2, 1, "second"),
        (1, 2, "first"),
    ]
    assert page["next"] is None
    detail = await alice.call(
        "GET", f"/environments/{env['id']}/secrets/versions/{first['id']}", status=200
    )
    assert detail["secrets"] == {"A": "1", "B": "2"}


async def test_pagination(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    for n in range(5):
        await _commit(alice, env["id"], set={"N": str(n)})
    base = f"/environments/{env['id']}/secrets/versions"
    page = await alice.call("GET", f"{base}?limit=2", status=200)
    assert [v["seq"] for v in page["items"]] == [5, 4]
    page = await alice.call("GET", f"{base}?limit=2&cursor={page['next']}", status=200)
    assert [v["seq"] for v in page["items"]] == [3, 2]
    after_three = page["next"]
    await _commit(alice, env["id"], set={"N": "new"})  # a newer version shifts no page
    page = await alice.call("GET", f"{base}?limit=2&cursor={after_three}", status=200)
    assert [v["seq"] for v in page["items"]] == [1]
    assert page["next"] is None
    whole = await alice.call("GET", f"{base}?limit=6", status=200)
    assert [v["seq"] for v in whole["items"]] == [6, 5, 4, 3, 2, 1] and whole["next"] is None


async def test_awkward_values_round_trip_byte_for_byte(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    await _commit(alice, env["id"], secrets=AWKWARD, replace=True)
    raw = await alice.call("GET", f"/environments/{env['id']}/secrets?resolve=false", status=200)
    assert raw["secrets"] == AWKWARD
    read = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert read["secrets"] == {**AWKWARD, "DOLLAR": "$HOME ${PATH} $(whoami) `id`"}


async def test_replace_snapshot_and_validation(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    await _commit(alice, env["id"], set={"A": "1", "B": "2"})
    await _commit(alice, env["id"], secrets={"C": "3"}, replace=True)
    read = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert read["secrets"] == {"C": "3"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"set": {"1BAD": "x"}}, "validation_failed"),
        ({"set": {"A B": "x"}}, "validation_failed"),
        ({"set": {"A": "x"}, "message": ""}, "validation_failed"),
        ({"set": {"A": "x"}, "message": "m" * 501}, "validation_failed"),
        ({"secrets": {"A": "x"}}, "validation_failed"),
        ({}, "validation_failed"),
        ({"unset": ["NOPE"]}, "validation_failed"),
        ({"set": {"C": "3"}}, "no_changes"),
    ]
    for body, code in cases:
        refused = await _commit(alice, env["id"], status=422, **body)
        assert refused["error_code"] == code, body
    page = await alice.call("GET", f"/environments/{env['id']}/secrets/versions", status=200)
    assert len(page["items"]) == 2


async def test_size_limits(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    limit = server.runtime.settings.max_secret_value_bytes
    await _commit(alice, env["id"], set={"BIG": "x" * limit})
    too_big = await _commit(alice, env["id"], status=413, set={"BIG": "x" * (limit + 1)})
    assert too_big["error_code"] == "value_too_large"
    server.runtime.settings.max_secrets_per_version = 3
    many = await _commit(alice, env["id"], status=422, set={f"K{n}": "v" for n in range(3)})
    assert many["error_code"] == "too_many_secrets"


async def test_parent_version_conflict_names_what_changed(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    base = await _commit(alice, env["id"], set={"A": "1", "B": "1"})
    await _commit(alice, env["id"], set={"B": "2"}, parent_version=base["id"])
    conflict = await _commit(
        alice, env["id"], status=409, set={"A": "9"}, parent_version=base["id"]
    )
    assert conflict["error_code"] == "version_conflict"
    assert conflict["data"]["changed"] == ["B"]
    assert conflict["data"]["latest_version"]["seq"] == 2


async def test_a_clashing_version_id_is_drawn_again(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    first = await _commit(alice, env["id"], set={"A": "1"})
    drawn = iter([first["id"], first["id"], "zz9zz9zz"])
    monkeypatch.setattr(service, "_new_version_id", lambda: next(drawn))
    second = await _commit(alice, env["id"], set={"A": "2"})
    assert (second["id"], second["seq"], second["parent_id"]) == ("zz9zz9zz", 2, first["id"])
    versions = await alice.call("GET", f"/environments/{env['id']}/secrets/versions", status=200)
    assert [v["id"] for v in versions["items"]] == ["zz9zz9zz", first["id"]]


async def test_parallel_writers_lose_nothing(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    writers = 12
    results = await asyncio.gather(
        *(_commit(alice, env["id"], set={f"W{n}": str(n)}) for n in range(writers))
    )
    assert sorted(r["seq"] for r in results) == list(range(1, writers + 1))
    read = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert read["secrets"] == {f"W{n}": str(n) for n in range(writers)}


async def test_diff_rollback_and_history(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    base = f"/environments/{env['id']}/secrets"
    v1 = await _commit(alice, env["id"], set={"A": "1", "B": "1", "C": "1"})
    v2 = await _commit(alice, env["id"], set={"B": "2", "D": "4"}, unset=["C"])
    diff = await alice.call("GET", f"{base}/diff", status=200)
    assert (diff["added"], diff["removed"], diff["modified"], diff["unchanged"]) == (
        ["D"],
        ["C"],
        ["B"],
        1,
    )
    assert diff["values"] is None
    assert diff["from_version"]["id"] == v1["id"]
    revealed = await alice.call(
        "GET", f"{base}/diff?from={v1['id']}&to={v2['id']}&reveal=true", status=200
    )
    assert revealed["values"] == {"D": "4", "C": "1", "B": {"old": "1", "new": "2"}}
    back = await alice.call(
        "POST",
        f"{base}/rollback",
        {"version_id": v1["id"], "commit_message": "undo"},
        status=201,
    )
    assert (back["seq"], back["rollback_of"]) == (3, v1["id"])
    read = await alice.call("GET", base, status=200)
    assert read["secrets"] == {"A": "1", "B": "1", "C": "1"}
    history = await alice.call("GET", f"{base}/B/history?reveal=true", status=200)
    assert [(h["version"]["seq"], h["change"], h["value"]) for h in history] == [
        (3, "modified", "1"),
        (2, "modified", "2"),
        (1, "added", "1"),
    ]
    history = await alice.call("GET", f"{base}/D/history", status=200)
    assert [(h["version"]["seq"], h["change"], h["value"]) for h in history] == [
        (3, "removed", None),
        (2, "added", None),
    ]
    await alice.call("GET", f"{base}/NEVER/history", status=404)
    same = await alice.call(
        "POST",
        f"{base}/rollback",
        {"version_id": v1["id"], "commit_message": "again"},
        status=422,
    )
    assert same["error_code"] == "no_changes"
    await _commit(alice, env["id"], set={"versions": "a name like a route"})
    named = await alice.call("GET", f"{base}/versions/history", status=200)
    assert [h["change"] for h in named] == ["added"]


async def test_versions_are_chosen_by_id_number_or_from_the_latest(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    base = f"/environments/{env['id']}/secrets"
    made = [await _commit(alice, env["id"], set={"N": str(n)}) for n in (1, 2, 3)]
    chosen = {
        made[0]["id"]: 1,
        "2": 2,
        "v2": 2,
        "v3": 3,
        "latest": 3,
        "latest~0": 3,
        "latest~1": 2,
        "latest~2": 1,
    }
    for ref, seq in chosen.items():
        read = await alice.call("GET", f"{base}?version={ref}", status=200)
        assert (read["version"]["seq"], read["secrets"]) == (seq, {"N": str(seq)}), ref
        detail = await alice.call("GET", f"{base}/versions/{ref}", status=200)
        assert detail["seq"] == seq, ref
    diff = await alice.call("GET", f"{base}/diff?from=v1&to=latest", status=200)
    assert (diff["from_version"]["seq"], diff["to_version"]["seq"], diff["modified"]) == (
        1,
        3,
        ["N"],
    )
    back = await alice.call(
        "POST", f"{base}/rollback", {"version_id": "latest~2", "commit_message": "undo"}
    )
    assert (back["seq"], back["rollback_of"]) == (4, made[0]["id"])
    for missing in ("v9", "latest~4", "0"):
        refused = await alice.call("GET", f"{base}?version={missing}", status=404)
        assert refused["error_code"] == "not_found", missing
    for malformed in ("latest~", "v", "~1", "LATEST", "v1234567890", "head"):
        refused = await alice.call("GET", f"{base}/versions/{malformed}", status=422)
        assert refused["error_code"] == "validation_failed", malformed


async def test_versions_of_another_environment_are_404(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    mine = await _env(alice, "acme")
    other = await _env(alice, "other")
    theirs = await _commit(alice, other["id"], set={"SECRET": "theirs"})
    await _commit(alice, mine["id"], set={"X": "1"})
    base = f"/environments/{mine['id']}/secrets"
    for path in (
        f"{base}?version={theirs['id']}",
        f"{base}/versions/{theirs['id']}",
        f"{base}/diff?from={theirs['id']}",
        f"{base}/diff?to={theirs['id']}",
    ):
        refused = await alice.call("GET", path, status=404)
        assert "theirs" not in str(refused)
    await alice.call(
        "POST",
        f"{base}/rollback",
        {"version_id": theirs["id"], "commit_message": "steal"},
        status=404,
    )
    await _commit(alice, mine["id"], status=404, set={"Y": "1"}, parent_version=theirs["id"])


async def test_ciphertext_moved_to_another_row_fails_to_decrypt(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    await _commit(alice, env["id"], set={"A": "alpha", "B": "beta"})
    async with server.runtime.sessionmaker() as session, session.begin():
        rows = {s.name: s for s in await session.scalars(select(Secret))}
        await session.execute(
            update(Secret)
            .where(Secret.name == "B")
            .values(value_encrypted=rows["A"].value_encrypted)
        )
    broken = await alice.call("GET", f"/environments/{env['id']}/secrets", status=503)
    assert "alpha" not in str(broken)


async def test_reads_are_audited_without_values(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    version = await _commit(alice, env["id"], set={"TOKEN": "s3cr3t-value"})
    await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    async with server.runtime.sessionmaker() as session:
        events = list(await session.scalars(select(AuditEvent)))
    reads = [e for e in events if e.action == "secret.read"]
    assert [(e.actor_label, e.resource_id, e.details["version_id"]) for e in reads] == [
        ("alice", env["id"], version["id"])
    ]
    assert all("s3cr3t" not in str(e.details) for e in events)


async def test_service_tokens_read_and_write_by_role(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    await _commit(alice, env["id"], set={"A": "1"})
    tokens = {}
    for role in ("viewer", "editor"):
        made = await alice.call(
            "POST", f"/environments/{env['id']}/tokens", {"name": role, "role": role}, status=201
        )
        tokens[role] = Api(server, made["token"])
    read = await tokens["viewer"].call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert read["secrets"] == {"A": "1"}
    await _commit(tokens["viewer"], env["id"], status=403, set={"B": "2"})
    written = await _commit(tokens["editor"], env["id"], set={"B": "2"})
    assert written["author"]["type"] == "service_token"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_plaintext_never_reaches_the_sqlite_file(
    server: InProcessServer, backend: str, tmp_path: Path
) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    marker = "PLAINTEXT-MARKER-4c1d"
    await _commit(alice, env["id"], set={"M": marker, "N": marker * 3})
    await server.runtime.engine.dispose()  # flush the WAL into the database file
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("kavach.db*"))
    assert marker.encode() not in raw
    assert b"M" in raw  # names are stored in the clear; values are not


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_plaintext_never_reaches_a_postgresql_dump(
    server: InProcessServer, backend: str, database_url: str
) -> None:
    alice = await user(server, "alice")
    env = await _env(alice)
    marker = "PLAINTEXT-MARKER-9e2a"
    await _commit(alice, env["id"], set={"M": marker})
    dump = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", database_url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await dump.communicate()
    assert dump.returncode == 0
    assert b"secret_versions" in out
    assert marker.encode() not in out
