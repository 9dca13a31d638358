"""A webhook delivery outlives its server: queued while the receiver is down, sent after restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.harness import Cli, CliResult, ServerFactory, free_port
from tests.fakes.webhook_receiver import serve_receiver, verify

# The production database; the integration tests run the same rows on SQLite too.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["postgresql"])]


def eventually(check: Callable[[], list[dict[str, object]]]) -> list[dict[str, object]]:
    """Return check()'s first non-empty answer, asked every 50 ms; fail after 15 s."""
    deadline = time.monotonic() + 15
    while not (found := check()):
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
    return found


def _ok(result: CliResult) -> str:
    assert result.code == 0, result
    return result.stdout


def test_a_delivery_pending_when_the_server_stops_goes_out_after_it_starts_again(
    start_server: ServerFactory, cli: Cli
) -> None:
    settings = {"webhook_poll_interval_seconds": 0.1, "webhook_retry_delays_seconds": "[2, 2, 2]"}
    server = start_server(**settings)
    login = cli.start_login(server.url)
    server.approve(login.code, "alice")
    assert login.wait().code == 0
    _ok(cli.run("org", "create", "acme"))
    _ok(cli.run("group", "create", "web", "--org", "acme"))
    _ok(cli.run("env", "create", "prod", "--org", "acme", "--group", "web"))
    port = free_port()  # nothing listens there yet: the receiver is down
    added = json.loads(
        _ok(cli.run("webhook", "add", f"http://127.0.0.1:{port}/hook", "--org", "acme", "--json"))
    )
    where = ("--org", "acme", "--group", "web", "--env", "prod")
    _ok(cli.run("secret", "set", "API_KEY=sk_live_e2e_value", "-m", "first", "--yes", *where))

    def deliveries(url: str) -> list[dict[str, object]]:
        access, _refresh = cli.tokens(server.url)
        answer = httpx.get(
            f"{url}/api/v1/webhooks/{added['id']}/deliveries",
            headers={"Authorization": f"Bearer {access}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["data"]["items"]
        return items

    def first_attempt_failed() -> list[dict[str, object]]:
        rows = deliveries(server.url)
        return rows if rows and rows[0]["attempts"] == 1 and rows[0]["last_error"] else []

    # Nothing listens: the first attempt fails at once, the next waits 2 s.
    rows = eventually(first_attempt_failed)
    assert rows[0]["status"] == "pending"
    assert server.unclean_exit(server.stop()) is None

    with serve_receiver(port=port) as receiver:
        again = start_server(share_data_with=server, **settings)
        (got,) = receiver.wait_for(lambda received: len(received) == 1, timeout=15)
        assert verify(added["secret"], got.headers["kavach-signature"], got.body)
        assert got.headers["kavach-delivery"] == rows[0]["id"]
        assert got.data["type"] == "secret.commit"
        assert got.data["details"]["set"] == ["API_KEY"]
        assert b"sk_live_e2e_value" not in got.body
        (row,) = eventually(
            lambda: [r for r in deliveries(again.url) if r["status"] == "delivered"]
        )
        assert (row["status"], row["response_code"]) == ("delivered", 200)
        attempts = row["attempts"]  # a failed one before the restart, the last after it
        assert isinstance(attempts, int) and attempts >= 2
    for running in (server, again):
        assert added["secret"] not in running.stderr()
