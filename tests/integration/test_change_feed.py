"""The change feed (GET …/environments/{id}/changes): at once when behind, else a long poll.

Who may ask is the authorization matrix's business; here: what it answers, when, and that
it holds no database connection while it waits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kavach.server.secrets import changes as feed
from tests.conftest import InProcessServer
from tests.integration.test_resources import Api, user

POLL = 0.05


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Poll often: the tests wait for the feed, not for its interval."""
    return {"changes_poll_interval": POLL}


async def _environment(alice: Api) -> str:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return str(env["id"])


async def _commit(alice: Api, env_id: str, **values: str) -> dict[str, Any]:
    body = {"message": "change", "set": values}
    made: dict[str, Any] = await alice.call(
        "POST", f"/environments/{env_id}/secrets/versions", body, status=201
    )
    return made


async def _changes(alice: Api, env_id: str, query: str = "", status: int = 200) -> Any:
    return await alice.call("GET", f"/environments/{env_id}/changes{query}", status=status)


async def test_a_client_behind_is_answered_at_once(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    assert await _changes(alice, env_id) == {"revision": "0", "changed": True, "latest": None}
    # Nothing committed yet, and the client knows it: nothing changed.
    assert await _changes(alice, env_id, "?after=0&timeout=0") == {
        "revision": "0",
        "changed": False,
        "latest": None,
    }
    first = await _commit(alice, env_id, API_KEY="one")
    second = await _commit(alice, env_id, API_KEY="two")
    started = time.monotonic()
    for query in ("", "?after=0", "?after=1", "?after=some-other-revision"):
        answer = await _changes(alice, env_id, query)
        assert answer["revision"] == "2" and answer["changed"] is True, (query, answer)
        assert answer["latest"]["id"] == second["id"], query
        assert answer["latest"]["parent_id"] == first["id"]
    # None of them waited for a poll: each was answered from the first read.
    assert time.monotonic() - started < 2


async def test_a_waiting_client_is_answered_by_a_commit_and_holds_no_connection(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    await _commit(alice, env_id, API_KEY="one")
    pool = server.runtime.engine.pool
    held_while_waiting: list[int] = []
    polled_twice = asyncio.Event()

    async def watched_sleep(seconds: float) -> None:
        held_while_waiting.append(pool.checkedout())  # type: ignore[attr-defined]
        if len(held_while_waiting) == 2:
            polled_twice.set()
        await asyncio.sleep(seconds)

    monkeypatch.setattr(feed, "sleep", watched_sleep)
    waiting = asyncio.create_task(_changes(alice, env_id, "?after=1&timeout=20"))
    await asyncio.wait_for(polled_twice.wait(), 10)
    assert not waiting.done()
    started = time.monotonic()
    made = await _commit(alice, env_id, API_KEY="two")
    answer = await asyncio.wait_for(waiting, 10)
    assert answer["revision"] == "2" and answer["changed"] is True
    assert answer["latest"]["id"] == made["id"]
    assert answer["latest"]["seq"] == 2
    assert time.monotonic() - started < 2  # a poll or two, not the 20 s timeout
    assert held_while_waiting[:2] == [0, 0]


async def test_a_wait_without_a_commit_times_out_unchanged(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    made = await _commit(alice, env_id, API_KEY="one")
    started = time.monotonic()
    answer = await _changes(alice, env_id, "?after=1&timeout=0.3")
    waited = time.monotonic() - started
    assert answer["revision"] == "1" and answer["changed"] is False
    assert answer["latest"]["id"] == made["id"]
    assert 0.3 <= waited < 5


BAD_QUERIES = [
    "?timeout=61",
    "?timeout=-1",
    "?timeout=soon",
    "?timeout=nan",
    "?timeout=inf",
    "?after=",
    "?after=two%20words",
    "?after=" + "7" * 129,
    "?after=%00",
]


async def test_bad_after_or_timeout_is_422(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    for query in BAD_QUERIES:
        refused = await _changes(alice, env_id, query, status=422)
        assert refused["error_code"] == "validation_failed", (query, refused)


async def test_a_change_to_a_referenced_environment_moves_the_revision(
    server: InProcessServer,
) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    env = await alice.call("GET", f"/environments/{env_id}", status=200)
    shared = await alice.call(
        "POST",
        f"/secret-groups/{env['secret_group_id']}/environments",
        {"name": "shared"},
        status=201,
    )
    await _commit(alice, shared["id"], HOST="a")
    await _commit(alice, env_id, URL="pg://${shared.HOST}")
    current = (await _changes(alice, env_id))["revision"]
    assert current.startswith("1-")
    waiting = asyncio.create_task(_changes(alice, env_id, f"?after={current}&timeout=10"))
    await asyncio.sleep(POLL * 3)
    assert not waiting.done()
    await _commit(alice, shared["id"], HOST="b")
    answer = await asyncio.wait_for(waiting, 5)
    assert answer["changed"] and answer["revision"] != current
    assert answer["revision"].startswith("1-")  # the environment's own version did not move


async def test_the_server_caps_how_long_a_feed_request_waits(server: InProcessServer) -> None:
    alice = await user(server, "alice")
    env_id = await _environment(alice)
    server.runtime.settings.changes_max_wait = POLL
    started = time.monotonic()
    answer = await _changes(alice, env_id, "?after=0&timeout=30")
    assert answer["changed"] is False and time.monotonic() - started < 5
