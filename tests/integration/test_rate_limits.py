"""Per-token API rate limits, shared across instances through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from kavach.server.app import create_app
from kavach.server.crypto.keys import KeyMaterial
from tests.conftest import InProcessServer, make_settings, random_keys
from tests.integration.test_resources import Api, user

REDIS = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def _instance(
    data_dir: Path, keys: KeyMaterial, redis_url: str | None, limit: str
) -> AsyncIterator[InProcessServer]:
    settings = make_settings(data_dir, None, rate_limit_api=limit)
    settings.redis_url = redis_url
    app = create_app(settings, keys=keys)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://127.0.0.1",
        )
        async with client:
            yield InProcessServer(app=app, client=client)


async def _status(api: Api, path: str) -> int:
    response = await api.server.client.get(f"/api/v1{path}", headers=api.headers)
    if response.status_code == 429:
        assert response.json()["error_code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_limit_is_shared_by_instances_through_redis(tmp_path: Path, backend: str) -> None:
    keys = random_keys()
    # A fresh prefix-free key space per run: the limit counts per login session anyway.
    async with (
        _instance(tmp_path / "d", keys, REDIS, "4/minute") as one,
        _instance(tmp_path / "d", keys, REDIS, "4/minute") as two,
    ):
        alice = await user(one, "alice")
        org = await alice.call("POST", "/organizations/", {"name": "rl"}, status=201)
        on_two = Api(two, alice.headers["Authorization"].removeprefix("Bearer "))
        path = f"/organizations/{org['id']}"
        statuses = [await _status(api, path) for api in (alice, on_two, alice, on_two)]
        # The create above counted as the first of four.
        assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_without_redis_each_instance_counts_alone(tmp_path: Path, backend: str) -> None:
    keys = random_keys()
    async with (
        _instance(tmp_path / "d", keys, None, "2/minute") as one,
        _instance(tmp_path / "d", keys, None, "2/minute") as two,
    ):
        alice = await user(one, "alice")
        on_two = Api(two, alice.headers["Authorization"].removeprefix("Bearer "))
        assert [await _status(on_two, "/organizations/") for _ in range(3)] == [200, 200, 429]
        assert await _status(alice, "/organizations/") == 200


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_unreachable_redis_does_not_take_the_api_down(
    tmp_path: Path, backend: str
) -> None:
    async with _instance(tmp_path / "d", random_keys(), "redis://127.0.0.1:1/0", "1/minute") as one:
        alice = await user(one, "alice")
        assert [await _status(alice, "/organizations/") for _ in range(3)] == [200, 200, 200]
