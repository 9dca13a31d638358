"""Two clients refreshing at once must spend the single-use refresh token only once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kavach.cli.client import ApiClient
from kavach.cli.config import Config, save_config
from kavach.cli.credentials import CredentialStore
from kavach.cli.session import Session

from .conftest import SERVER, make_credentials
from .fake_api import USER, FakeApi, FakeServer


def expired_login(api: FakeApi, home: Path, server: str) -> tuple[str, str]:
    access, refresh = api.issue()
    api.expire(access)
    CredentialStore(home).save(server, make_credentials(access, refresh, expires_in=-5))
    return access, refresh


def test_two_clients_share_one_rotation(api: FakeApi, home: Path) -> None:
    _, first_refresh = expired_login(api, home, SERVER)
    # Both requests must get their 401 before either refreshes, and the refresh is slow,
    # so the second client waits on the lock while the first rotates.
    both_expired = threading.Barrier(2, timeout=10)
    api.on_expired = both_expired.wait
    api.refresh_delay = 0.2

    def one_process() -> Any:
        # A store and session of its own, like a separate `kavach` process.
        session = Session(SERVER, CredentialStore(home))
        with ApiClient(SERVER, session, transport=api.transport) as client:
            return client.get("/auth/me")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(one_process) for _ in range(2)]]

    assert results == [USER, USER]
    assert api.count("/api/v1/auth/refresh") == 1
    assert not api.reuse_detected
    saved = CredentialStore(home).load(SERVER)
    assert saved is not None
    assert saved.refresh_token != first_refresh
    assert saved.refresh_token in api.live_refresh
    retried = [c.authorization for c in api.calls if c.path == "/api/v1/auth/me"][2:]
    assert retried == [f"Bearer {saved.access_token}"] * 2


def test_a_rotated_but_expired_pair_is_refreshed_with_the_stored_token(
    api: FakeApi, home: Path
) -> None:
    _, stale_refresh = expired_login(api, home, SERVER)
    session = Session(SERVER, CredentialStore(home))
    session.credentials()  # this process read the old pair
    # Meanwhile another process rotated, and that pair has expired as well.
    _, newer_refresh = expired_login(api, home, SERVER)

    with ApiClient(SERVER, session, transport=api.transport) as client:
        assert client.get("/auth/me") == USER

    refreshes = [c.body for c in api.calls if c.path == "/api/v1/auth/refresh"]
    assert refreshes == [{"refresh_token": newer_refresh}]
    assert stale_refresh != newer_refresh
    assert not api.reuse_detected


def test_two_kavach_processes_refresh_once(home: Path) -> None:
    api = FakeApi()
    both_expired = threading.Barrier(2, timeout=20)
    api.on_expired = both_expired.wait
    api.refresh_delay = 0.3
    with FakeServer(api) as server:
        expired_login(api, home, server.url)
        save_config(home, Config(server=server.url))
        env = {**os.environ, "KAVACH_HOME": str(home), "KAVACH_CREDENTIAL_STORE": "file"}
        command = [sys.executable, "-m", "kavach.cli", "status", "--json"]
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=60) for process in processes]

    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert json.loads(out)["user"]["login"] == "alice"
    assert api.count("/api/v1/auth/refresh") == 1
    assert not api.reuse_detected
