"""Webhooks against a real receiver on 127.0.0.1: signed, routed, retried, in either format.

The in-process server's dispatcher is started once its tables are clean (see `hooks`), with
short poll and retry times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from kavach.cli.app import Runtime
from kavach.cli.errors import ExitCode
from kavach.server.errors import ProviderError
from kavach.server.webhooks.dispatcher import WebhookDispatcher
from tests.conftest import InProcessServer
from tests.fakes.webhook_receiver import Received, Receiver, serve_receiver, verify
from tests.integration.cli_bridge import LoopBridge, run_cli
from tests.integration.test_resources import Api, user
from tests.integration.test_sync import TARGETS, Target

LONG = "sk_live_0123456789abcdef"
DELAYS = (0.1, 0.3)  # three attempts, the second wait longer than the first


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Look for work every 50 ms; retry after 0.1 s, then 0.3 s, then give up."""
    return {"webhook_poll_interval_seconds": 0.05, "webhook_retry_delays_seconds": DELAYS}


@pytest.fixture
async def hooks(server: InProcessServer) -> InProcessServer:
    """Run the dispatcher in the server from now on (its tables are clean); it stops with it."""
    runtime = server.runtime
    runtime.webhooks = WebhookDispatcher(
        runtime.settings,
        runtime.sessionmaker,
        runtime.read_sessionmaker,
        runtime.keys.provider_credential_key,
    )
    runtime.start_background()
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Serve a receiver on 127.0.0.1 for the test."""
    with serve_receiver() as serving:
        yield serving


async def until(check: Callable[[], Awaitable[Any]]) -> Any:
    """Return check()'s first truthy answer; fail after 10 seconds."""
    for _ in range(500):
        if found := await check():
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def _tree(alice: Api) -> dict[str, str]:
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    ids = {"org": org["id"], "group": group["id"]}
    for name in ("prod", "dev"):
        env = await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": name}, status=201
        )
        ids[name] = env["id"]
    return ids


async def _commit(api: Api, env: str, values: dict[str, str]) -> None:
    body = {"message": "change", "set": values}
    await api.call("POST", f"/environments/{env}/secrets/versions", body, status=201)


async def _deliveries(api: Api, hook: dict[str, Any]) -> list[dict[str, Any]]:
    page = await api.call("GET", f"/webhooks/{hook['id']}/deliveries", status=200)
    items: list[dict[str, Any]] = page["items"]
    return items


def _signed(got: Received, secret: str) -> bool:
    return verify(secret, got.headers["kavach-signature"], got.body)


async def test_signed_events_reach_the_organizations_webhook_and_only_their_environments(
    receiver: Receiver, hooks: InProcessServer
) -> None:
    alice = await user(hooks, "alice")
    await user(hooks, "bob")
    ids = await _tree(alice)
    await _commit(alice, ids["prod"], {"EARLY": "before any webhook"})
    everything = await alice.call(
        "POST", f"/organizations/{ids['org']}/webhooks", {"url": f"{receiver.url}/org"}, status=201
    )
    prod_commits = await alice.call(
        "POST",
        f"/environments/{ids['prod']}/webhooks",
        {"url": f"{receiver.url}/prod/hook", "events": ["secret.commit"]},
        status=201,
    )
    assert everything["secret"].startswith("whsec_") and everything["format"] == "kavach"
    assert prod_commits["url"] == f"{receiver.url}/prod/…"  # the last segment hidden

    await _commit(alice, ids["prod"], {"API_KEY": LONG})
    await _commit(alice, ids["dev"], {"DEV": "y"})
    members = f"/organizations/{ids['org']}/members"
    await alice.call("POST", members, {"user": "bob", "role": "viewer"}, status=200)
    await alice.call("DELETE", members, {"user": "bob"}, status=200)
    TARGETS["hooks"] = Target()
    providers = f"/environments/{ids['dev']}/providers/"
    memory = {"provider": "memory", "credentials": {"token": "good"}}
    await alice.call("POST", providers, memory | {"config": {"target": "hooks"}}, status=201)
    sync = f"/environments/{ids['dev']}/secrets/sync"
    await alice.call("POST", sync, {"provider": "memory", "dry_run": True}, status=200)
    await alice.call("POST", sync, {"provider": "memory"}, status=200)
    await _commit(alice, ids["dev"], {"DEV": "z"})
    TARGETS["hooks"].failures["DEV"].append(ProviderError("the target refused it"))
    await alice.call("POST", sync, {"provider": "memory"}, status=200)

    await receiver.arrived(lambda got: len([g for g in got if g.path == "/org"]) == 7)
    to_org = sorted(receiver.on("/org"), key=lambda got: got.data["audit_event_id"])
    assert [got.data["type"] for got in to_org] == [
        "secret.commit",
        "secret.commit",
        "member.grant",
        "member.revoke",
        "secret.sync",  # the run, not the plan before it
        "secret.commit",
        "secret.sync",
    ]
    assert [to_org[i].data["details"]["status"] for i in (4, 6)] == ["succeeded", "failed"]
    assert all(_signed(got, everything["secret"]) for got in to_org)
    assert not _signed(to_org[0], prod_commits["secret"])
    first = to_org[0]
    assert first.headers["kavach-event"] == "secret.commit"
    assert first.headers["kavach-delivery"] == first.data["id"]
    assert first.headers["content-type"] == "application/json"
    data = first.data
    assert data["organization"] == {"id": ids["org"], "name": "acme"}
    assert data["secret_group"] == {"id": ids["group"], "name": "web"}
    assert data["environment"] == {"id": ids["prod"], "name": "prod"}
    assert data["actor"] == "alice"
    assert data["details"]["set"] == ["API_KEY"]
    assert LONG.encode() not in b"".join(got.body for got in receiver.received)
    assert to_org[2].data["environment"] is None and to_org[2].data["details"]["user"] == "bob"

    # The environment's webhook: its own commit only, nothing of dev or of the members.
    (to_prod,) = receiver.on("/prod/hook")
    assert to_prod.data["details"]["set"] == ["API_KEY"]
    assert _signed(to_prod, prod_commits["secret"])
    assert len(await _deliveries(alice, prod_commits)) == 1

    async def recorded() -> list[dict[str, Any]]:
        rows = await _deliveries(alice, everything)
        return rows if all(row["status"] != "pending" for row in rows) else []

    logged = await until(recorded)
    assert {(row["status"], row["attempts"], row["response_code"]) for row in logged} == {
        ("delivered", 1, 200)
    }
    assert sorted(row["audit_event_id"] for row in logged) == [
        got.data["audit_event_id"] for got in to_org
    ]

    # Listings never show a secret; the organization's holds its environments' too.
    listed = await alice.call("GET", f"/organizations/{ids['org']}/webhooks", status=200)
    assert [hook["id"] for hook in listed["items"]] == [everything["id"], prod_commits["id"]]
    assert not any("secret" in hook for hook in listed["items"])
    env_listed = await alice.call("GET", f"/environments/{ids['prod']}/webhooks", status=200)
    assert [hook["id"] for hook in env_listed["items"]] == [prod_commits["id"]]

    deleted = await alice.call("DELETE", f"/webhooks/{everything['id']}", status=200)
    assert deleted["id"] == everything["id"]
    await alice.call("GET", f"/webhooks/{everything['id']}/deliveries", status=404)


async def test_a_failing_receiver_is_retried_with_backoff_then_delivered_or_given_up(
    receiver: Receiver, hooks: InProcessServer
) -> None:
    alice = await user(hooks, "alice")
    ids = await _tree(alice)
    receiver.answers["/flaky"] = [500, 503]
    receiver.answers["/down"] = [500, 500, 500]
    org_hooks = f"/organizations/{ids['org']}/webhooks"
    flaky = await alice.call(
        "POST", org_hooks, {"url": f"{receiver.url}/flaky", "format": "slack"}, status=201
    )
    down = await alice.call("POST", org_hooks, {"url": f"{receiver.url}/down"}, status=201)
    await _commit(alice, ids["prod"], {"API_KEY": LONG})

    async def settled() -> bool:
        rows = [*await _deliveries(alice, flaky), *await _deliveries(alice, down)]
        return len(rows) == 2 and all(row["status"] != "pending" for row in rows)

    await until(settled)
    (delivered,) = await _deliveries(alice, flaky)
    assert (delivered["status"], delivered["attempts"], delivered["response_code"]) == (
        "delivered",
        3,
        200,
    )
    assert delivered["last_error"] is None and delivered["next_attempt_at"] is None
    (failed,) = await _deliveries(alice, down)
    assert (failed["status"], failed["attempts"], failed["response_code"]) == ("failed", 3, 500)
    assert failed["last_error"] == "answered HTTP 500" and failed["next_attempt_at"] is None

    attempts = receiver.on("/flaky")
    assert len(attempts) == 3 and len(receiver.on("/down")) == 3
    # One delivery, one id and one body, each attempt signed anew; each wait longer.
    assert {got.headers["kavach-delivery"] for got in attempts} == {delivered["id"]}
    assert {got.body for got in attempts} == {attempts[0].body}
    assert all(_signed(got, flaky["secret"]) for got in attempts)
    first_wait = attempts[1].at - attempts[0].at
    second_wait = attempts[2].at - attempts[1].at
    assert first_wait >= DELAYS[0] and second_wait >= DELAYS[1]
    # Slack's format: one line of text.
    assert attempts[0].data == {
        "text": "[Kavach] acme/web/prod: alice committed version 1 (1 set, 0 unset)"
    }


async def test_urls_are_refused_in_words_and_checked_again_at_connect_time(
    receiver: Receiver, hooks: InProcessServer
) -> None:
    alice = await user(hooks, "alice")
    ids = await _tree(alice)
    org_hooks = f"/organizations/{ids['org']}/webhooks"
    settings = hooks.runtime.settings
    for url in (
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/x#part",
        "https://hooks.example.com/a b",
        "https:///nohost",
        "https://hooks.example.com/" + "x" * 2048,
    ):
        refused = await alice.call("POST", org_hooks, {"url": url}, status=422)
        assert refused["error_code"] == "validation_failed", url
    unknown = await alice.call(
        "POST", org_hooks, {"url": "https://hooks.example.com", "events": ["secret.read"]}
    )
    assert unknown["error_code"] == "validation_failed"

    kept = await alice.call("POST", org_hooks, {"url": f"{receiver.url}/kept"}, status=201)
    settings.sync_allow_private_targets = False
    plain = await alice.call("POST", org_hooks, {"url": "http://hooks.example.com/x"}, status=422)
    assert plain["error"] == "invalid request: url: must be an https URL"
    for private in ("https://127.0.0.1/x", "https://localhost:8443/x", "https://[::1]/x"):
        refused = await alice.call("POST", org_hooks, {"url": private}, status=422)
        assert refused["error_code"] == "target_not_allowed", private

    # A webhook made while private addresses were allowed is not sent to one now either.
    settings.sync_allow_private_targets = True
    # An https URL on the receiver's port: refused once connected, before a byte is sent.
    https = receiver.url.replace("http://", "https://") + "/secure"
    secure = await alice.call("POST", org_hooks, {"url": https}, status=201)
    settings.sync_allow_private_targets = False
    for hook in (kept, secure):
        await alice.call("POST", f"/webhooks/{hook['id']}/test", status=202)

    async def tried() -> list[dict[str, Any]]:
        rows = [*await _deliveries(alice, kept), *await _deliveries(alice, secure)]
        return rows if all(row["attempts"] >= 1 and row["last_error"] for row in rows) else []

    rows = await until(tried)
    assert [row["event_type"] for row in rows] == ["ping", "ping"]
    assert rows[0]["last_error"] == "the URL is not https, which this server requires"
    assert rows[1]["last_error"] == (
        "127.0.0.1 is not a public address; this server does not connect to it"
    )
    assert receiver.received == []
    audit = await alice.call("GET", f"/audit?organization_id={ids['org']}", status=200)
    made = [event for event in audit["items"] if event["action"] == "webhook.create"]
    assert len(made) == 2 and all("secret" not in str(event["details"]) for event in made)


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI's surface does not depend on it
async def test_the_cli_adds_lists_tests_shows_deliveries_and_removes_webhooks(
    receiver: Receiver, hooks: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await user(hooks, "alice")
    ids = await _tree(alice)
    for name, value in {
        "KAVACH_HOME": str(tmp_path / "home"),
        "KAVACH_TOKEN": alice.headers["Authorization"].removeprefix("Bearer "),
        "KAVACH_CREDENTIAL_STORE": "file",
        "KAVACH_SERVER": "http://127.0.0.1:8080",
        "COLUMNS": "300",
    }.items():
        monkeypatch.setenv(name, value)

    async def kavach(*args: str, code: int = 0) -> Result:
        bridge = LoopBridge(hooks, asyncio.get_running_loop())
        done = await run_cli(*args, runtime=Runtime(transport=bridge))
        assert done.exit_code == code, done.output
        return done

    url = f"{receiver.url}/cli"
    added = await kavach("webhook", "add", url, "--org", "acme", "--format", "slack")
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "not be shown again" in added.stderr
    env_hook = await kavach(
        "webhook", "add", url, "--org", "acme", "--group", "web", "--env", "prod",
        "--event", "secret.commit", "--json",
    )  # fmt: skip
    prod = json.loads(env_hook.stdout)
    assert (prod["environment_id"], prod["events"]) == (ids["prod"], ["secret.commit"])

    listed = json.loads((await kavach("webhook", "list", "--org", "acme", "--json")).stdout)
    org_hook = next(hook for hook in listed["items"] if hook["environment_id"] is None)
    assert {hook["url"] for hook in listed["items"]} == {f"{receiver.url}/…"}
    table = (await kavach("webhook", "list", "--org", "acme")).stdout
    assert "organization" in table and "secret.commit" in table and secret not in table

    await kavach("webhook", "test", org_hook["id"])
    (ping,) = await receiver.arrived(lambda got: len(got) == 1)
    assert verify(secret, ping.headers["kavach-signature"], ping.body)
    assert ping.headers["kavach-event"] == "ping"
    assert ping.data == {"text": "[Kavach] acme: a test of this webhook by alice"}

    async def shown() -> Any:
        out = await kavach("webhook", "deliveries", org_hook["id"], "--limit", "5", "--json")
        rows = json.loads(out.stdout)["items"]
        return rows if rows and rows[0]["status"] == "delivered" else None

    (row,) = await until(shown)
    assert (row["event_type"], row["attempts"], row["response_code"]) == ("ping", 1, 200)
    log = (await kavach("webhook", "deliveries", org_hook["id"])).stdout
    assert "ping" in log and "delivered" in log

    await kavach("webhook", "remove", org_hook["id"], "--yes")
    left = json.loads((await kavach("webhook", "list", "--org", "acme", "--json")).stdout)
    assert [hook["id"] for hook in left["items"]] == [prod["id"]]
    gone = await kavach("webhook", "deliveries", org_hook["id"], code=ExitCode.SERVER)
    assert "webhook not found" in gone.output
