"""Rotating the secret-encryption key: re-wrap without re-encrypting, no restart, retire."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kavach.server import admin
from kavach.server.app import create_app
from kavach.server.secrets.models import DataKey, Secret
from tests.conftest import InProcessServer, make_settings, truncate_all
from tests.integration.test_resources import Api, user


@asynccontextmanager
async def _instance(data_dir: Path, database_url: str | None) -> AsyncIterator[InProcessServer]:
    """Run an app that reads its keys from the generated keys file, like `server start`."""
    app = create_app(make_settings(data_dir, database_url))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://127.0.0.1",
        )
        async with client:
            yield InProcessServer(app=app, client=client)


async def test_rotate_twice_while_reading_then_retire(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KAVACH_DATA_DIR", str(data_dir))
    if database_url:
        monkeypatch.setenv("KAVACH_DATABASE_URL", database_url)
    async with (
        _instance(data_dir, database_url) as first,
        _instance(data_dir, database_url) as second,
    ):
        await truncate_all(first.runtime)
        alice = await user(first, "alice")
        org = await alice.call("POST", "/organizations/", {"name": "rot"}, status=201)
        group = await alice.call(
            "POST", f"/organizations/{org['id']}/secret-groups", {"name": "g"}, status=201
        )
        env = await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": "e"}, status=201
        )
        path = f"/environments/{env['id']}/secrets"
        await alice.call(
            "POST", f"{path}/versions", {"message": "m", "set": {"K": "v1"}}, status=201
        )
        async with first.runtime.sessionmaker() as session:
            before = {s.name: s.value_encrypted for s in await session.scalars(select(Secret))}

        stop = asyncio.Event()
        reads: list[int] = []

        async def keep_reading() -> None:
            while not stop.is_set():
                response = await alice.server.client.get(f"/api/v1{path}", headers=alice.headers)
                assert response.json()["data"]["secrets"] == {"K": "v1"}, response.text
                reads.append(response.status_code)
                await asyncio.sleep(0)

        reader = asyncio.create_task(keep_reading())
        ids = []
        for _ in range(2):
            key_id, count = await asyncio.to_thread(admin.rotate_secret_key)
            ids.append(key_id)
            assert count == 1
        stop.set()
        await reader
        assert reads and set(reads) == {200}
        assert ids[0] != ids[1]

        # An instance that never unwrapped the data key learns the new key by itself.
        late = Api(second, alice.headers["Authorization"].removeprefix("Bearer "))
        assert (await late.call("GET", path, status=200))["secrets"] == {"K": "v1"}

        async with first.runtime.sessionmaker() as session:
            record = await session.scalar(select(DataKey))
            after = {s.name: s.value_encrypted for s in await session.scalars(select(Secret))}
        assert record is not None and record.kek_id == ids[1]
        assert after == before  # values were not re-encrypted

        # A server started before the rotation wraps a new environment's data key under
        # the key that is active now, not the one it started with.
        fresh_env = await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": "new"}, status=201
        )
        await alice.call(
            "POST",
            f"/environments/{fresh_env['id']}/secrets/versions",
            {"message": "m", "set": {"N": "1"}},
            status=201,
        )
        async with first.runtime.sessionmaker() as session:
            wrapped = await session.scalar(
                select(DataKey.kek_id).where(DataKey.environment_id == uuid.UUID(fresh_env["id"]))
            )
        assert wrapped == ids[1]

    dropped, busy, configured = await asyncio.to_thread(admin.retire_secret_keys)
    assert (len(dropped), busy, configured) == (2, [], False)
    assert ids[1] not in dropped
    stored = json.loads((data_dir / "keys.json").read_text())
    assert stored["secret_encryption_old_keys"] == ""
    async with _instance(data_dir, database_url) as fresh:
        reader_api = await user(fresh, "alice")
        assert (await reader_api.call("GET", path, status=200))["secrets"] == {"K": "v1"}
