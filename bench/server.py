"""Start a real Kavach server for a benchmark and sign a user in through the device flow."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

POSTGRES_ADMIN_URL = os.environ.get(
    "KAVACH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
KAVACH = str(Path(sys.executable).with_name("kavach"))


@dataclass
class Server:
    """A running server: its URL, the environment it was started with, a signed-in client."""

    url: str
    env: dict[str, str]
    backend: str
    client: httpx.Client
    pid: int

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API and return the envelope's data, failing loudly on errors."""
        response = self.client.request(method, f"/api/v1{path}", **kwargs)
        body = response.json()
        if not body["success"]:
            raise RuntimeError(f"{method} {path}: {response.status_code} {body['error_code']}")
        return body["data"]


def pinned(cpu: str | None) -> list[str]:
    """Return the command prefix that runs a process on the given cores (none for None)."""
    return ["taskset", "-c", cpu] if cpu else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def manage_database(action: str, name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        if action == "create":
            await admin.execute(f'CREATE DATABASE "{name}"')
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _login(url: str, env: dict[str, str]) -> str:
    started = httpx.post(f"{url}/api/v1/auth/device/code", json={}).json()["data"]
    subprocess.run(
        [KAVACH, "server", "approve", started["user_code"], "--user", "bench"],
        env=env,
        check=True,
        capture_output=True,
    )
    answer = httpx.post(
        f"{url}/api/v1/auth/device/token", json={"device_code": started["device_code"]}
    ).json()
    token: str = answer["data"]["access_token"]
    return token


@contextmanager
def running_server(backend: str, *, cpu: str | None = None, **settings: str) -> Iterator[Server]:
    """Run `kavach server start` on a fresh database; stop it and drop the database after.

    With `cpu`, the server is pinned to those cores (taskset), as a benchmark under load needs.
    """
    with tempfile.TemporaryDirectory(prefix="kavach-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
        env.update(
            KAVACH_DATA_DIR=tmp,
            KAVACH_LOG_LEVEL="WARNING",
            KAVACH_ACCESS_TOKEN_TTL_SECONDS="3600",
            **settings,
        )
        database = None
        if backend == "postgresql":
            database = f"kavach_bench_{secrets.token_hex(4)}"
            asyncio.run(manage_database("create", database))
            env["KAVACH_DATABASE_URL"] = POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{database}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [*pinned(cpu), KAVACH, "server", "start", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
            token = _login(url, env)
            client = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            with client:
                yield Server(url=url, env=env, backend=backend, client=client, pid=process.pid)
        finally:
            process.terminate()
            process.wait(timeout=15)
            if database:
                asyncio.run(manage_database("drop", database))
