"""GET /metrics in-process: what is counted, under which labels, and nothing that names data."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kavach.server.errors import ProviderError
from kavach.server.metrics.registry import status_class
from tests.conftest import InProcessServer
from tests.integration.helpers import login
from tests.integration.routes import api_routes
from tests.integration.test_resources import Api
from tests.integration.test_sync import _commit as sync_commit
from tests.integration.test_sync import _setup as sync_setup
from tests.integration.test_sync import _sync as run_sync

SECRET_NAME = "ZEBRA_METRIC_NAME"
SECRET_VALUE = "v4lue-that-must-stay-inside"
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Metrics on the API port."""
    return {"metrics_enabled": True}


@pytest.fixture
def auth_overrides() -> dict[str, object]:
    """A refresh limit a test can reach."""
    return {"rate_limit_refresh": "1/day"}


async def scrape(server: InProcessServer) -> tuple[str, Samples]:
    """Return the exposition text and its samples by name."""
    response = await server.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return the sum of a metric's samples whose labels include `labels`."""
    found = samples.get(name, [])
    return sum(v for have, v in found if labels.items() <= have.items())


async def _traffic(server: InProcessServer) -> dict[str, Any]:
    """Sign alice in, commit and read a secret, and make a few requests go wrong."""
    tokens = await login(server, "alice")
    alice = Api(server, tokens["access_token"])
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "pay"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    secrets = f"/environments/{env['id']}/secrets"
    body = {"message": "first", "set": {SECRET_NAME: SECRET_VALUE}}
    await alice.call("POST", f"{secrets}/versions", body, status=201)
    for _ in range(3):
        await alice.call("GET", secrets, status=200)
    await alice.call("GET", f"{secrets}/{SECRET_NAME}/history", status=200)
    for n in range(2):  # with the caller and data key remembered, PostgreSQL's lean path
        more = {"message": "again", "set": {"OTHER": str(n)}}
        await alice.call("POST", f"{secrets}/versions", more, status=201)
    assert (await server.client.get(f"/api/v1/nowhere/{SECRET_NAME}")).status_code == 404
    assert (await server.client.request("BREW", f"/api/v1{secrets}")).status_code == 405
    token = "/api/v1/auth/device/token"
    refused = await server.client.post(token, json={"device_code": "not-a-code-at-all"})
    assert refused.status_code == 400
    refresh = "/api/v1/auth/refresh"
    first = await server.client.post(refresh, json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200, first.text
    again = await server.client.post(
        refresh, json={"refresh_token": first.json()["data"]["refresh_token"]}
    )
    assert again.status_code == 429
    return {"org": org, "group": group, "env": env, "tokens": tokens, "refreshed": first.json()}


async def test_requests_are_counted_by_route_template_and_nothing_names_data(
    server: InProcessServer,
) -> None:
    made = await _traffic(server)
    text, samples = await scrape(server)

    tokens, refreshed = made["tokens"], made["refreshed"]["data"]
    for private in (
        SECRET_NAME,
        SECRET_VALUE,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["access_token"],
        "alice",
        made["org"]["id"],
        made["env"]["id"],
        "nowhere",
        "BREW",
    ):
        assert private not in text
    templates = {route.path for route in api_routes(server.app)} | {"/metrics"}
    routes = {labels["route"] for labels, _ in samples["kavach_http_requests_total"]}
    assert routes <= templates | {"unmatched"}
    secrets = "/api/v1/environments/{id}/secrets"
    assert value(samples, "kavach_http_requests_total", route=secrets, method="GET") == 3
    assert value(samples, "kavach_http_requests_total", route=secrets, status_class="2xx") == 3
    assert (
        value(samples, "kavach_http_request_duration_seconds_count", route=secrets, method="GET")
        == 3
    )
    assert value(samples, "kavach_http_requests_total", route="unmatched", status_class="4xx") == 1
    assert value(samples, "kavach_http_requests_total", method="other", status_class="4xx") == 1
    assert {labels["method"] for labels, _ in samples["kavach_http_requests_total"]} <= {
        "GET",
        "POST",
        "other",
    }

    assert value(samples, "kavach_logins_total", provider="local", outcome="success") == 1
    assert value(samples, "kavach_logins_total", outcome="invalid_grant") == 1
    assert value(samples, "kavach_rate_limit_refusals_total", rule="refresh") == 1
    assert value(samples, "kavach_access_cache_lookups_total", result="hit") > 0
    assert value(samples, "kavach_access_cache_lookups_total", result="miss") > 0
    assert value(samples, "kavach_group_commit_batch_size_count", kind="audit") > 0
    assert value(samples, "kavach_group_commit_duration_seconds_count", outcome="failed") == 0
    # Every connection lent for these requests is back; each wait for one was timed.
    assert value(samples, "kavach_db_pool_connections_in_use") == 0
    assert value(samples, "kavach_db_pool_connections_max", pool="engine") == 5 + 10
    assert value(samples, "kavach_db_pool_wait_seconds_count", pool="engine") > 0
    if server.runtime.engine.dialect.name == "postgresql":
        assert value(samples, "kavach_db_pool_connections_max", pool="driver") == 4
        assert value(samples, "kavach_db_pool_wait_seconds_count", pool="driver") > 0
        # The last commit took the lean path, and is counted under the same template.
        assert value(samples, "kavach_http_requests_total", route=f"{secrets}/versions") == 3
        assert value(samples, "kavach_group_commit_batch_size_count", kind="secrets") > 0


async def test_the_docs_files_are_counted_by_their_mount_never_by_a_file_name(
    server: InProcessServer,
) -> None:
    assert (await server.client.get("/static/swagger-ui/swagger-ui.css")).status_code == 200
    assert (await server.client.get("/static/swagger-ui/no-such-file.js")).status_code == 404
    text, samples = await scrape(server)
    mount = "/static/swagger-ui"
    assert value(samples, "kavach_http_requests_total", route=mount, status_class="2xx") == 1
    assert value(samples, "kavach_http_requests_total", route=mount, status_class="4xx") == 1
    assert "swagger-ui.css" not in text and "no-such-file" not in text


async def test_the_access_epoch_moving_is_counted(server: InProcessServer) -> None:
    alice = Api(server, (await login(server, "alice"))["access_token"])
    bob = Api(server, (await login(server, "bob"))["access_token"])
    await alice.call("GET", "/organizations/", status=200)
    _, before = await scrape(server)
    await bob.call("POST", "/auth/logout", status=200)  # ends access: the epoch moves
    await alice.call("GET", "/organizations/", status=200)
    _, after = await scrape(server)
    moves = "kavach_access_epoch_moves_total"
    assert value(after, moves) == value(before, moves) + 1


async def test_sync_runs_are_counted_by_provider_and_outcome(server: InProcessServer) -> None:
    alice, env_id, state = await sync_setup(server, "metrics")
    await sync_commit(alice, env_id, set={"A": "1", "B": "2"})
    _, before = await scrape(server)
    await run_sync(alice, env_id, dry_run=True)
    state.failures["B"].append(ProviderError("refused B"))
    assert (await run_sync(alice, env_id))["status"] == "partial"
    assert (await run_sync(alice, env_id))["status"] == "succeeded"
    text, after = await scrape(server)
    runs = "kavach_sync_runs_total"
    for outcome in ("dry_run", "partial", "succeeded"):
        counted = value(after, runs, provider="memory", outcome=outcome)
        assert counted == value(before, runs, provider="memory", outcome=outcome) + 1, outcome
    assert "refused B" not in text


@pytest.mark.parametrize(
    "settings_overrides",
    [{}, {"metrics_enabled": True, "metrics_addr": "127.0.0.1:9464"}],
    ids=["off", "own-listener"],
)
async def test_no_metrics_on_the_api_port_unless_asked(server: InProcessServer) -> None:
    assert (await server.client.get("/metrics")).status_code == 404
    collecting = server.runtime.settings.metrics_addr is not None
    assert (server.runtime.metrics is not None) is collecting


def test_status_classes() -> None:
    assert [status_class(s) for s in (101, 200, 204, 302, 404, 429, 500, 503, 99, 600)] == [
        "1xx",
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "5xx",
        "5xx",
        "5xx",
    ]
