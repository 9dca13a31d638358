"""The change feed across instances, and `kavach run --watch` against real servers.

Two servers share one PostgreSQL. A feed waiting on the first answers a commit made through
the second; `kavach run --watch` (with a service token) on the first restarts its command
with the value committed through the second, or sends it --watch-signal, and keeps doing so
across a restart of the first. One test, as starting servers is most of its time.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    HOST,
    Cli,
    KavachServer,
    ServerFactory,
    kavach_command,
    wait_until_healthy,
)

pytestmark = pytest.mark.e2e

WAIT = 15.0
# Records each start of the command (its pid and API_KEY), and each HUP and TERM it gets;
# on TERM it exits with 3, which `kavach run` must pass on.
CHILD = """
import os, signal, sys
out = sys.argv[1]
def record(line):
    with open(out, "a", encoding="utf-8") as file:
        file.write(line + "\\n")
def on_term(*_):
    record(f"term {os.getpid()}")
    sys.exit(3)
signal.signal(signal.SIGHUP, lambda *_: record(f"hup {os.getpid()}"))
signal.signal(signal.SIGTERM, on_term)
record(f"start {os.getpid()} {os.environ.get('API_KEY')}")
while True:
    signal.pause()
"""


def _api(server: KavachServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _signed_in(server: KavachServer, cli: Cli) -> str:
    """Log `cli` in as alice through the device flow; return her access token."""
    pending = cli.start_login(server.url)
    server.approve(pending.code, "alice")
    assert pending.wait().code == 0
    return cli.tokens(server.url)[0]


def _environment(api: httpx.Client) -> str:
    org = _data(api.post("/organizations/", json={"name": "acme"}), 201)
    group = _data(api.post(f"/organizations/{org['id']}/secret-groups", json={"name": "web"}), 201)
    env = _data(api.post(f"/secret-groups/{group['id']}/environments", json={"name": "prod"}), 201)
    return str(env["id"])


def _commit(api: httpx.Client, env_id: str, value: str) -> dict[str, Any]:
    body = {"message": f"API_KEY={value}", "set": {"API_KEY": value}}
    made: dict[str, Any] = _data(
        api.post(f"/environments/{env_id}/secrets/versions", json=body), 201
    )
    return made


def _wait_for(path: Path, pattern: str, timeout: float = WAIT) -> re.Match[str]:
    """Wait for a line of the file at `path` matching `pattern`; return the match."""
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern, re.MULTILINE)
    while time.monotonic() < deadline:
        if path.exists() and (found := compiled.search(path.read_text(encoding="utf-8"))):
            return found
        time.sleep(0.02)
    shown = path.read_text(encoding="utf-8") if path.exists() else "(no file)"
    pytest.fail(f"no line matching {pattern!r} in {path.name} after {timeout} s:\n{shown}")


def _feed_across_instances(on_first: httpx.Client, on_second: httpx.Client, env_id: str) -> None:
    """A feed waiting on the first instance answers a commit made through the second."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(
            on_first.get, f"/environments/{env_id}/changes", params={"after": "1", "timeout": 20}
        )
        # The feed answers only once the revision moves: until the commit, it waits.
        time.sleep(0.5)
        assert not waiting.done()
        made = _commit(on_second, env_id, "between")
        committed = time.monotonic()
        answer = _data(waiting.result(timeout=WAIT))
    assert time.monotonic() - committed < 2
    assert answer["changed"] is True and answer["revision"] == "2"
    assert answer["latest"]["id"] == made["id"]


def _restart(server: KavachServer) -> None:
    """Stop a server and start it again on the same port, data and logs."""
    assert server.stop() in (0, -signal.SIGTERM)
    with server.stdout_path.open("ab") as out, server.stderr_path.open("ab") as err:
        server.process = subprocess.Popen(
            [*kavach_command(), "server", "start", "--host", HOST, "--port", str(server.port)],
            env=server.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=server.data_dir.parent,
        )
    server.exit_code = None
    wait_until_healthy(server)


def _watch(cli: Cli, server: KavachServer, token: str, out: Path, *extra: str) -> Any:
    script = out.with_name("child.py")
    script.write_text(CHILD, encoding="utf-8")
    stderr = out.with_suffix(".stderr")
    env = cli.env(server.url) | {"KAVACH_TOKEN": token}
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [*kavach_command(), "run", "--watch", *extra, "--", sys.executable, str(script), out],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


# Several instances need a database server they share: PostgreSQL only.
@pytest.mark.parametrize("backend", ["postgresql"])
def test_feed_and_run_watch_follow_commits_through_another_instance_and_a_restart(
    start_server: ServerFactory, cli: Cli, tmp_path: Path
) -> None:
    server = start_server()
    other = start_server(share_data_with=server)
    with (
        _api(server, _signed_in(server, cli)) as api,
        _api(other, cli.tokens(server.url)[0]) as via_other,
    ):
        env_id = _environment(api)
        _commit(api, env_id, "one")
        _feed_across_instances(api, via_other, env_id)
        made = _data(
            api.post(f"/environments/{env_id}/tokens", json={"name": "w", "role": "viewer"}), 201
        )
        restarted, signalled = tmp_path / "restarted.log", tmp_path / "signalled.log"
        watchers = [
            _watch(cli, server, made["token"], restarted),
            _watch(cli, server, made["token"], signalled, "--watch-signal", "HUP"),
        ]
        try:
            first = _wait_for(restarted, r"^start (\d+) between$").group(1)
            hupped = _wait_for(signalled, r"^start (\d+) between$").group(1)
            # Watching the first instance, committing through the other.
            _commit(via_other, env_id, "two")
            second = _wait_for(restarted, r"^start (\d+) two$").group(1)
            assert second != first
            _wait_for(restarted, rf"^term {first}$")
            _wait_for(signalled, rf"^hup {hupped}$")

            _restart(server)
            for log in (restarted, signalled):
                _wait_for(log.with_suffix(".stderr"), r"lost the server .*; retrying…")
                _wait_for(log.with_suffix(".stderr"), r"reconnected to the server")
            _commit(via_other, env_id, "three")
            third = _wait_for(restarted, r"^start (\d+) three$").group(1)
            assert third not in (first, second)
            _wait_for(signalled, rf"^hup {hupped}\nhup {hupped}$")
            # One command all along, never restarted: its environment still says one.
            assert signalled.read_text(encoding="utf-8").count("start ") == 1

            # SIGTERM to kavach reaches the command, whose status kavach exits with.
            for watcher in watchers:
                watcher.send_signal(signal.SIGTERM)
            assert [watcher.wait(WAIT) for watcher in watchers] == [3, 3]
        finally:
            for watcher in watchers:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
    stderr = restarted.with_suffix(".stderr").read_text(encoding="utf-8")
    # Said once per outage, however many retries it took.
    assert stderr.count("lost the server") == 1, stderr
    assert "Traceback" not in stderr, stderr
