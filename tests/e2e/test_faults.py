"""Faults: SIGKILL during a commit loop, SIGTERM draining, PostgreSQL restarted under load."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    KavachServer,
    Launcher,
    clean_environ,
    create_database,
    drop_database,
)

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def _cluster_env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment every server of a test shares: one data directory, one database."""
    env = clean_environ(
        KAVACH_DATA_DIR=str(tmp_path / "data"),
        KAVACH_DB_POOL_TIMEOUT="3",
        # The commit loops send as fast as the server answers; the API limit is not tested.
        KAVACH_RATE_LIMIT_API="1000000/minute",
        # The `launch` fixture scans the logs for credentials: log as much as possible.
        KAVACH_LOG_LEVEL="DEBUG",
    )
    name = None
    if backend == "postgresql":
        name, url = create_database()
        env["KAVACH_DATABASE_URL"] = url
    try:
        yield env
    finally:
        if name:
            drop_database(name)


def _login(server: KavachServer, launch: Launcher) -> httpx.Client:
    started = httpx.post(f"{server.url}/api/v1/auth/device/code", json={}).json()["data"]
    server.approve(started["user_code"], "alice")
    answer = httpx.post(
        f"{server.url}/api/v1/auth/device/token", json={"device_code": started["device_code"]}
    ).json()
    token = answer["data"]["access_token"]
    launch.known("the device code", started["device_code"])
    launch.known("the access token", token)
    launch.known("the refresh token", answer["data"]["refresh_token"])
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _environment(client: httpx.Client, url: str) -> str:
    def data(response: httpx.Response) -> Any:
        assert response.status_code == 201, response.text
        return response.json()["data"]

    org = data(client.post(f"{url}/api/v1/organizations/", json={"name": "faults"}))
    group = data(
        client.post(f"{url}/api/v1/organizations/{org['id']}/secret-groups", json={"name": "g"})
    )
    env = data(
        client.post(f"{url}/api/v1/secret-groups/{group['id']}/environments", json={"name": "e"})
    )
    env_id: str = env["id"]
    return env_id


def _assert_versions_complete(client: httpx.Client, url: str, env_id: str) -> int:
    """Every version holds exactly what it claims; numbers run 1..N without gaps."""
    versions: list[dict[str, Any]] = []
    query = "limit=200"
    while True:
        page = client.get(f"{url}/api/v1/environments/{env_id}/secrets/versions?{query}")
        data = page.json()["data"]
        versions += data["items"]
        if data["next"] is None:
            break
        query = f"limit=200&cursor={data['next']}"
    assert [v["seq"] for v in versions] == list(range(len(versions), 0, -1))
    for version in versions:
        detail = client.get(
            f"{url}/api/v1/environments/{env_id}/secrets/versions/{version['id']}"
        ).json()["data"]
        assert len(detail["secrets"]) == version["secret_count"] == version["seq"]
    return len(versions)


LOOP_VALUE = "v" * 512


def _commit_loop(
    client: httpx.Client, url: str, env_id: str, stop: threading.Event, results: list[int]
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            response = client.post(
                f"{url}/api/v1/environments/{env_id}/secrets/versions",
                json={"message": f"loop {n}", "set": {f"K{n:04d}": LOOP_VALUE}},
            )
            results.append(response.status_code)
        except httpx.TransportError:
            results.append(0)


def test_sigkill_during_commits_leaves_each_version_whole_or_absent(
    backend: str, tmp_path: Path, launch: Launcher
) -> None:
    launch.known("a secret value", LOOP_VALUE)
    with _cluster_env(backend, tmp_path) as env:
        first = launch(tmp_path / "one", env)
        client = _login(first, launch)
        env_id = _environment(client, first.url)
        stop, results = threading.Event(), list[int]()
        loop = threading.Thread(
            target=_commit_loop, args=(client, first.url, env_id, stop, results)
        )
        loop.start()
        time.sleep(1.5)
        first.kill()
        time.sleep(0.3)
        stop.set()
        loop.join(10)
        second = launch(tmp_path / "two", env)
        try:
            count = _assert_versions_complete(client, second.url, env_id)
            assert count >= results.count(201) >= 5
            # Only what was in flight at the kill can be lost.
            assert count - results.count(201) <= 1
        finally:
            second.stop()
            client.close()


def test_sigterm_drains_requests_in_flight(backend: str, tmp_path: Path, launch: Launcher) -> None:
    with _cluster_env(backend, tmp_path) as env:
        server = launch(tmp_path / "one", env)
        client = _login(server, launch)
        env_id = _environment(client, server.url)
        big = {f"S{n:04d}": "x" * 256 for n in range(1000)}
        launch.known("a secret value", "x" * 256)
        outcomes: list[int | str] = []

        def commit(n: int) -> None:
            try:
                response = client.post(
                    f"{server.url}/api/v1/environments/{env_id}/secrets/versions",
                    json={
                        "message": f"drain {n}",
                        "secrets": {**big, "N": str(n)},
                        "replace": True,
                    },
                )
                outcomes.append(response.status_code)
            except httpx.ConnectError:
                outcomes.append("refused")  # never reached the server: fine
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=commit, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        code = server.stop()
        for thread in threads:
            thread.join(30)
        assert server.unclean_exit(code) is None
        # Accepted requests finished with an answer; none was cut off half-way.
        assert set(outcomes) <= {201, "refused"}, outcomes
        again = launch(tmp_path / "two", env)
        try:
            assert _assert_versions_complete_snapshot(client, again.url, env_id) == outcomes.count(
                201
            )
        finally:
            again.stop()
            client.close()


def _assert_versions_complete_snapshot(client: httpx.Client, url: str, env_id: str) -> int:
    page = client.get(f"{url}/api/v1/environments/{env_id}/secrets/versions?limit=1000")
    data = page.json()["data"]
    versions = data["items"]
    assert data["next"] is None
    for version in versions:
        assert version["secret_count"] == 1001
    return len(versions)


@pytest.mark.faults
@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_server_recovers_by_itself_after_postgresql_restarts(
    backend: str, tmp_path: Path, launch: Launcher
) -> None:
    launch.known("a secret value", LOOP_VALUE)
    with _cluster_env(backend, tmp_path) as env:
        server = launch(tmp_path / "one", env)
        client = _login(server, launch)
        env_id = _environment(client, server.url)
        stop, results = threading.Event(), list[int]()
        loop = threading.Thread(
            target=_commit_loop, args=(client, server.url, env_id, stop, results)
        )
        loop.start()
        time.sleep(0.5)
        version = subprocess.run(
            ["ls", "/etc/postgresql"], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"],
            check=True,
        )
        try:
            time.sleep(1.0)
            started = time.monotonic()
            health = httpx.get(f"{server.url}/healthz/detailed", timeout=10)
            assert health.status_code == 503
            assert health.json()["status"] == "degraded"
            assert time.monotonic() - started < 8  # no request hangs past its timeout
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        finally:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
            )
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/healthz/detailed", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.5)
        time.sleep(1.0)
        stop.set()
        loop.join(30)
        assert 503 in results or 0 in results  # the outage was seen
        assert results[-1] == 201  # and commits work again
        assert set(results) <= {201, 503, 0}, sorted(set(results))
        _assert_versions_complete(client, server.url, env_id)
        server.stop()
        client.close()
