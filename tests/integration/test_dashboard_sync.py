"""The dashboard's sync pages: providers, plans, runs and their results, against a memory target."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kavach.server.access import SYSTEM
from kavach.server.audit.models import AuditEvent
from kavach.server.db.base import utcnow
from kavach.server.errors import ProviderError
from kavach.server.sync import runs
from kavach.server.sync.models import SyncRun
from tests.conftest import InProcessServer
from tests.integration.test_dashboard import Browser, person
from tests.integration.test_resources import Api
from tests.integration.test_sync import TARGETS, MemoryProvider, Target

CREDENTIAL = "cred-Zq81xW-never-shown"
VALUES = {"API_KEY": "s3cr3t-value", "db.url": "postgres://u:pw@db/app"}


@dataclass
class Setup:
    """Alice's environment with a memory provider, her browser, and the target's state."""

    server: InProcessServer
    alice: Api
    browser: Browser
    env_id: str
    target: str
    state: Target
    pages: list[str]  # every page and fragment fetched, to scan for the credential

    @property
    def base(self) -> str:
        return f"/ui/environments/{self.env_id}"

    async def get(self, path: str, browser: Browser | None = None) -> httpx.Response:
        answer = await (browser or self.browser).get(f"{self.base}{path}")
        self.pages.append(answer.text)
        return answer

    async def sync(self, mode: str, browser: Browser | None = None, **form: str) -> httpx.Response:
        body = {"provider": "memory", "mode": mode, **form}
        answer = await (browser or self.browser).post(f"{self.base}/sync", body)
        self.pages.append(answer.text)
        return answer


@pytest.fixture
async def setup(server: InProcessServer) -> Setup:
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    await alice.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        {"message": "first", "set": VALUES},
        status=201,
    )
    target = f"dash-{uuid.uuid4().hex[:8]}"
    TARGETS[target] = state = Target()
    await alice.call(
        "POST",
        f"/environments/{env['id']}/providers/",
        {"provider": "memory", "config": {"target": target}, "credentials": {"token": CREDENTIAL}},
        status=201,
    )
    return Setup(server, alice, browser, env["id"], target, state, [])


async def _sync_events(server: InProcessServer) -> list[dict[str, Any]]:
    async with server.runtime.sessionmaker() as session:
        found = select(AuditEvent).where(AuditEvent.action == "secret.sync")
        return [event.details or {} for event in await session.scalars(found)]


async def _run_count(server: InProcessServer) -> int:
    async with server.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(SyncRun)) or 0)


def _no_values(text: str) -> None:
    for value in VALUES.values():
        assert value not in text


async def test_a_plan_shows_each_name_and_writes_nothing(setup: Setup) -> None:
    page = await setup.get("/sync")
    assert page.status_code == 200
    assert '<h3 id="provider-memory-heading">memory</h3>' in page.text
    assert f"<dt>target</dt><dd><code>{setup.target}</code></dd>" in page.text
    assert 'value="plan"' in page.text and 'value="run"' in page.text
    assert "<strong>delete</strong>" in page.text  # prune says what it does
    assert f'href="{setup.base}/sync" aria-current="page"' in page.text

    planned = await setup.sync("plan")
    assert planned.status_code == 200, planned.text
    assert planned.headers["HX-Trigger"] == "sync-done"
    assert "Nothing was written" in planned.text
    for name in ("API_KEY", "db.url", "DB_URL"):
        assert f"<code>{name}</code>" in planned.text
    assert planned.text.count(">create<") == 2
    _no_values(planned.text)
    assert setup.state.secrets == {} and setup.state.writes == []
    (event,) = await _sync_events(setup.server)
    assert (event["dry_run"], event["status"], event["provider"]) == (True, "planned", "memory")


async def test_a_run_pushes_the_exact_values_and_is_listed_with_its_results(
    setup: Setup,
) -> None:
    done = await setup.sync("run")
    assert done.status_code == 200, done.text
    assert "Done: every secret is on the target" in done.text
    assert setup.state.secrets == {"API_KEY": VALUES["API_KEY"], "DB_URL": VALUES["db.url"]}
    _no_values(done.text)
    (event,) = await _sync_events(setup.server)
    assert (event["dry_run"], event["status"]) == (False, "succeeded")

    # Prune deletes only what Kavach wrote: planned first, then done.
    await setup.alice.call(
        "POST",
        f"/environments/{setup.env_id}/secrets/versions",
        {"message": "drop", "unset": ["API_KEY"]},
        status=201,
    )
    setup.state.secrets["HANDMADE"] = "keep"
    plan = await setup.sync("plan", prune="on")
    assert '<span class="action delete">delete</span>' in plan.text
    assert "API_KEY" in setup.state.secrets
    pruned = await setup.sync("run", prune="on")
    assert pruned.status_code == 200
    assert setup.state.secrets == {"DB_URL": VALUES["db.url"], "HANDMADE": "keep"}

    listing = await setup.get("/sync")
    run_ids = [part.split('"')[0] for part in listing.text.split(f"{setup.base}/sync-runs/")[1:]]
    assert len(run_ids) == 3
    api = await setup.alice.call("GET", f"/environments/{setup.env_id}/sync-runs", status=200)
    assert run_ids == [run["id"] for run in api["items"]]  # newest first, as the API's
    assert "every 2s" not in listing.text  # nothing running: no polling

    detail = await setup.get(f"/sync-runs/{run_ids[0]}")
    assert detail.status_code == 200
    assert "sync, prune" in detail.text and ">succeeded<" in detail.text
    assert '<span class="action delete">delete</span>' in detail.text
    assert "every 2s" not in detail.text
    _no_values(detail.text)
    first = await setup.get(f"/sync-runs/{run_ids[2]}")
    assert first.text.count('<span class="status succeeded">succeeded</span>') == 3  # run+items
    assert (await setup.get("/sync-runs/not-a-run")).status_code == 404
    assert (await setup.get(f"/sync-runs/{uuid.uuid4()}")).status_code == 404
    assert all(CREDENTIAL not in text for text in setup.pages)


async def test_runs_are_paged_newest_first(setup: Setup) -> None:
    env_id, now = uuid.UUID(setup.env_id), utcnow()
    async with setup.server.runtime.sessionmaker() as session, session.begin():
        for minutes in range(51):
            run = runs.new_run(
                environment_id=env_id,
                provider="memory",
                target="memory:paged",
                version_id=None,
                revision=None,
                dry_run=True,
                prune=False,
                adopt=False,
                actor=SYSTEM,
            )
            run.created_at = now - timedelta(minutes=minutes)
            session.add(run)
    first = await setup.get("/sync")
    assert first.text.count(f"{setup.base}/sync-runs/") == 50
    older = first.text.split('<p><a href="', 2)[-1].split('">Older<', 1)[0]
    assert older.startswith(f"{setup.base}/sync?cursor=")
    second = await setup.get(older.removeprefix(setup.base).replace("&amp;", "&"))
    assert second.text.count(f"{setup.base}/sync-runs/") == 1
    oldest = (now - timedelta(minutes=50)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert oldest in second.text and "Older" not in second.text


async def test_a_viewer_sees_providers_and_runs_but_cannot_sync(setup: Setup) -> None:
    await setup.sync("run")
    await setup.alice.call(
        "POST", f"/environments/{setup.env_id}/members", {"user": "bob", "role": "viewer"}
    )
    _api, bob = await person(setup.server, "bob")
    env_page = await setup.get("/", bob)
    assert f'href="{setup.base}/sync"' in env_page.text
    page = await setup.get("/sync", bob)
    assert page.status_code == 200
    assert "memory" in page.text and f"{setup.base}/sync-runs/" in page.text
    assert "Run sync" not in page.text and 'value="plan"' not in page.text
    assert "hx-post=" not in page.text.replace('hx-post="/ui/sign-out"', "")
    run_id = page.text.split(f"{setup.base}/sync-runs/", 1)[1].split('"', 1)[0]
    assert (await setup.get(f"/sync-runs/{run_id}", bob)).status_code == 200

    before, writes = await _run_count(setup.server), list(setup.state.writes)
    await setup.alice.call(
        "POST",
        f"/environments/{setup.env_id}/secrets/versions",
        {"message": "more", "set": {"NEW": "v"}},
        status=201,
    )
    for mode in ("run", "plan"):
        refused = await setup.sync(mode, bob)
        assert refused.status_code == 403
    assert await _run_count(setup.server) == before
    assert setup.state.writes == writes and "NEW" not in setup.state.secrets
    assert all(CREDENTIAL not in text for text in setup.pages)


async def test_problems_are_said_in_words(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = await setup.browser.post(f"{setup.base}/sync", {"provider": "nope", "mode": "run"})
    assert unknown.status_code == 422
    assert "Not synced: provider &#39;nope&#39; is not configured" in unknown.text
    unsaid = await setup.browser.post(f"{setup.base}/sync", {"provider": "memory"})
    assert unsaid.status_code == 422 and "choose Plan or Run sync" in unsaid.text

    # A write the target refuses: the run is partial, the error said per secret.
    setup.state.failures["API_KEY"].append(ProviderError("permission denied on API_KEY"))
    partial = await setup.sync("run")
    assert partial.status_code == 200
    assert "Partly done" in partial.text and "permission denied on API_KEY" in partial.text
    assert setup.state.secrets == {"DB_URL": VALUES["db.url"]}

    async def unreachable(_self: MemoryProvider) -> dict[str, Any]:
        raise ProviderError("the memory target is unreachable")

    monkeypatch.setattr(MemoryProvider, "list_remote", unreachable)
    down = await setup.sync("plan")
    assert down.status_code == 422
    assert "Not planned: the memory target is unreachable" in down.text
    listed = await setup.get("/sync")
    assert '<span class="status failed">failed</span>' in listed.text  # the failed run is kept
    assert all(CREDENTIAL not in text for text in setup.pages)


async def test_a_running_sync_is_followed_and_a_second_is_refused(setup: Setup) -> None:
    setup.state.hold = asyncio.Event()
    first = asyncio.create_task(setup.sync("run"))
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            page = await setup.get("/sync")
            if 'class="status running"' in page.text:
                break
        else:
            pytest.fail("the run was never listed as running")
        assert 'hx-trigger="every 2s, sync-done from:body"' in page.text
        run_id = page.text.split(f"{setup.base}/sync-runs/", 1)[1].split('"', 1)[0]
        running = await setup.get(f"/sync-runs/{run_id}")
        assert 'hx-trigger="every 2s"' in running.text and 'hx-select="#run"' in running.text
        busy = await setup.sync("run")
        assert busy.status_code == 409
        assert "Not synced: another sync of memory:" in busy.text
    finally:
        setup.state.hold.set()
    assert (await first).status_code == 200
    ended = await setup.get(f"/sync-runs/{run_id}")
    assert "every 2s" not in ended.text and ">succeeded<" in ended.text
    assert setup.state.secrets == {"API_KEY": VALUES["API_KEY"], "DB_URL": VALUES["db.url"]}


async def test_a_large_run_shows_its_problems_first_and_stays_small(setup: Setup) -> None:
    many = {f"KEY_{n:04d}": f"value-{n}" for n in range(450)}
    await setup.alice.call(
        "POST",
        f"/environments/{setup.env_id}/secrets/versions",
        {"message": "many", "set": many},
        status=201,
    )
    await setup.sync("run")  # everything is written once: the next run leaves it unchanged
    await setup.alice.call(
        "POST",
        f"/environments/{setup.env_id}/secrets/versions",
        {"message": "one more", "set": {"ZZ_LAST": "new"}},
        status=201,
    )
    answer = await setup.sync("plan")
    assert answer.status_code == 200, answer.text
    assert answer.text.count("<tr><td><code>") == 200
    # The one change is listed first; the unchanged rest is counted, and the API named.
    assert answer.text.index("ZZ_LAST") < answer.text.index("KEY_0000")
    assert "And 253 more secrets" in answer.text
    assert f"/api/v1/environments/{setup.env_id}/sync-runs/" in answer.text
    assert len(answer.content) < 100_000
