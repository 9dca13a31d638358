"""Three servers on one PostgreSQL database behind nginx, as deploy/compose.yaml runs them.

Every server is a real `kavach server start` in production mode with the same configured
keys; nginx runs deploy/nginx.conf rewritten for 127.0.0.1 (scripts/multi_instance.py).
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from scripts.multi_instance import Nginx, NginxError, shared_environment
from tests.e2e.harness import (
    HOST,
    Cli,
    KavachServer,
    Launcher,
    clean_environ,
    create_database,
    drop_database,
    free_port,
    run_kavach,
    wait_until_healthy,
)

# Several instances need a database server they share: PostgreSQL only.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["postgresql"])]

INSTANCES = 3
CONCURRENT_COMMITS = 30
KILL_WORKERS = 4
COMMITS_BEFORE_KILL = 20
COMMITS_AFTER_KILL = 40
LOOP_TIMEOUT = 30.0


@dataclass
class Cluster:
    """The servers, nginx in front of them, and the environment they all run with."""

    servers: list[KavachServer]
    nginx: Nginx
    env: dict[str, str]
    launch: Launcher  # takes the tokens and values the servers' logs must not contain

    @property
    def url(self) -> str:
        """Return nginx's URL, the one clients use."""
        return self.nginx.url


@pytest.fixture
def cluster(backend: str, tmp_path: Path, launch: Launcher) -> Iterator[Cluster]:
    """Migrate a fresh database once, start three servers on it and nginx in front."""
    assert backend == "postgresql"
    name, url = create_database()
    servers: list[KavachServer] = []
    nginx: Nginx | None = None
    try:
        port = free_port()
        env = clean_environ(
            KAVACH_DATA_DIR=str(tmp_path / "data"),
            **shared_environment(database_url=url, public_url=f"http://{HOST}:{port}"),
            # `launch` scans the logs for credentials once the cluster has stopped.
            KAVACH_LOG_LEVEL="DEBUG",
        )
        migrated = run_kavach(["server", "migrate"], env)
        assert migrated.code == 0, migrated
        servers = [
            launch(tmp_path / f"kavach-{n}", env, database_name=name, wait=False)
            for n in range(1, INSTANCES + 1)
        ]
        for server in servers:
            wait_until_healthy(server)
        try:
            nginx = Nginx.start([f"{HOST}:{server.port}" for server in servers], port=port)
        except NginxError as exc:
            pytest.fail(f"{exc} (CI installs it with `apt-get install -y nginx-light`)")
        yield Cluster(servers=servers, nginx=nginx, env=env, launch=launch)
    finally:
        problems = []
        if nginx is not None and (code := nginx.stop()) != 0:
            problems.append(f"nginx exited with {code}")
        for server in servers:
            if server.exit_code is not None:  # killed by the test
                continue
            try:
                code = server.stop()
            except pytest.fail.Exception as exc:
                problems.append(f"{server.url}: {exc}")
            else:
                if problem := server.unclean_exit(code):
                    problems.append(f"{server.url}: {problem}:\n{server.stderr()}")
        drop_database(name)
        assert not problems, "the cluster did not stop cleanly:\n" + "\n".join(problems)


class Api:
    """One user's calls to one base URL (nginx or a single server), envelope unwrapped."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.client.close()

    def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """Send a request, insist on `status` and a successful envelope; return its data."""
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        body = response.json()
        assert body["success"] is True, body
        return body["data"]


def log_in(cluster: Cluster, cli: Cli, user: str) -> str:
    """Log in through nginx with the real CLI, approve on the server side; return the token."""
    pending = cli.start_login(cluster.url)
    assert pending.url.startswith(f"{cluster.url}/device"), pending.url
    approved = run_kavach(["server", "approve", pending.code, "--user", user], cluster.env)
    assert approved.code == 0, approved
    result = pending.wait()
    assert result.code == 0, result
    access, refresh = cli.tokens(cluster.url)
    cluster.launch.known(f"{user}'s access token", access)
    cluster.launch.known(f"{user}'s refresh token", refresh)
    return access


def make_environment(api: Api, organization: str) -> str:
    """Create an organization, a secret group and an environment; return the environment id."""
    org = api.call("POST", "/api/v1/organizations/", 201, json={"name": organization})
    group = api.call(
        "POST", f"/api/v1/organizations/{org['id']}/secret-groups", 201, json={"name": "backend"}
    )
    env = api.call(
        "POST", f"/api/v1/secret-groups/{group['id']}/environments", 201, json={"name": "prod"}
    )
    return str(env["id"])


def secrets_path(env_id: str, suffix: str = "") -> str:
    """Return the path of an environment's secrets routes."""
    return f"/api/v1/environments/{env_id}/secrets{suffix}"


def versions_of(api: Api, env_id: str) -> list[dict[str, Any]]:
    """Return all versions (newest first), checking they are numbered 1..N without gaps."""
    versions: list[dict[str, Any]] = []
    query = "/versions?limit=200"
    while True:
        page = api.call("GET", secrets_path(env_id, query))
        versions += page["items"]
        if page["next"] is None:
            break
        query = f"/versions?limit=200&cursor={page['next']}"
    assert [v["seq"] for v in versions] == list(range(len(versions), 0, -1))
    # One line of history: every version's parent is the one just before it.
    parents = [v["parent_id"] for v in versions]
    assert parents == [v["id"] for v in versions[1:]] + [None]
    return versions


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `predicate()` holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_login_and_changes_through_nginx_are_seen_by_every_instance(
    cluster: Cluster, make_cli: Callable[[str], Cli]
) -> None:
    alice_cli, bob_cli = make_cli("alice"), make_cli("bob")
    alice = log_in(cluster, alice_cli, "alice")
    bob = log_in(cluster, bob_cli, "bob")
    assert alice_cli.run_json("status", "--json")["user"]["login"] == "alice"

    with Api(cluster.url, alice) as via_nginx:
        env_id = make_environment(via_nginx, "acme")
        via_nginx.call(
            "POST",
            secrets_path(env_id, "/versions"),
            201,
            json={"message": "first", "set": {"DATABASE_URL": "postgres://db/app", "API_KEY": "a"}},
        )
        via_nginx.call(
            "POST",
            f"/api/v1/environments/{env_id}/members",
            json={"user": "bob", "role": "viewer"},
        )
        latest = via_nginx.call(
            "POST",
            secrets_path(env_id, "/versions"),
            201,
            json={"message": "rotate", "set": {"API_KEY": "b"}},
        )

    expected = {"DATABASE_URL": "postgres://db/app", "API_KEY": "b"}
    cluster.launch.known("a secret value", expected["DATABASE_URL"])
    for server in cluster.servers:
        with Api(server.url, bob) as bob_direct, Api(server.url, alice) as alice_direct:
            read = bob_direct.call("GET", secrets_path(env_id))
            assert read["secrets"] == expected, server.url
            assert read["version"]["id"] == latest["id"]
            assert [v["seq"] for v in versions_of(bob_direct, env_id)] == [2, 1]
            page = alice_direct.call("GET", f"/api/v1/environments/{env_id}/members")
            assert page["next"] is None, page  # a handful of members: one page
            members = page["items"]
            assert any(
                m["user"] is not None and m["user"]["login"] == "bob" and m["role"] == "viewer"
                for m in members
            ), members
            refused = bob_direct.client.post(
                secrets_path(env_id, "/versions"), json={"message": "no", "set": {"X": "1"}}
            )
            assert refused.status_code == 403, refused.text

    # Round robin, with the request id and the forwarded client address passed through: as
    # if a load balancer on 127.0.0.1 (a trusted proxy) had added X-Forwarded-For.
    tags = [f"multi-{secrets.token_hex(4)}-{n}" for n in range(2 * INSTANCES)]
    with httpx.Client(base_url=cluster.url, timeout=10) as raw:
        for tag in tags:
            response = raw.get(
                "/api/v1/auth/me",
                headers={
                    "Authorization": f"Bearer {bob}",
                    "X-Request-ID": tag,
                    "X-Forwarded-For": "198.51.100.7",
                },
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] == tag

    def tagged(server: KavachServer) -> list[dict[str, Any]]:
        return [r for r in server.log_records() if r.get("request_id") in tags]

    wait_for(
        lambda: sum(len(tagged(s)) for s in cluster.servers) == len(tags),
        5,
        "the servers to log the tagged requests",
    )
    for server in cluster.servers:
        records = tagged(server)
        assert len(records) == 2, (server.url, records)
        assert {r["client"] for r in records} == {"198.51.100.7"}
        assert {r["route"] for r in records} == {"/api/v1/auth/me"}


def test_concurrent_commits_through_every_instance_lose_nothing(cluster: Cluster, cli: Cli) -> None:
    token = log_in(cluster, cli, "carol")
    with Api(cluster.url, token) as via_nginx:
        env_id = make_environment(via_nginx, "concurrency")
    targets = [Api(server.url, token) for server in cluster.servers] + [Api(cluster.url, token)]
    start = threading.Event()

    def commit(n: int) -> tuple[int, int, str]:
        start.wait(10)
        response = targets[n % len(targets)].client.post(
            secrets_path(env_id, "/versions"),
            json={"message": f"commit {n}", "set": {f"KEY_{n:02d}": f"value-{n}"}},
        )
        return n, response.status_code, response.text

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            futures = [pool.submit(commit, n) for n in range(CONCURRENT_COMMITS)]
            start.set()
            results = [future.result() for future in futures]
    finally:
        for api in targets:
            api.client.close()

    assert [r for r in results if r[1] != 201] == []
    expected = {f"KEY_{n:02d}": f"value-{n}" for n in range(CONCURRENT_COMMITS)}
    cluster.launch.known("a secret value", *expected.values())
    for server in cluster.servers:
        with Api(server.url, token) as direct:
            versions = versions_of(direct, env_id)
            assert len(versions) == CONCURRENT_COMMITS
            # Each commit added one key to everything committed before it.
            assert [v["secret_count"] for v in versions] == [v["seq"] for v in versions]
            latest = direct.call("GET", secrets_path(env_id))
            assert latest["secrets"] == expected
            assert latest["version"]["seq"] == CONCURRENT_COMMITS


@dataclass(frozen=True)
class Attempt:
    """One commit sent through nginx while an instance was killed."""

    key: str
    started: float
    ended: float
    status: int | str  # the HTTP status, or the transport error's name


def test_killing_an_instance_mid_traffic_loses_no_version(cluster: Cluster, cli: Cli) -> None:
    token = log_in(cluster, cli, "dave")
    with Api(cluster.url, token) as via_nginx:
        env_id = make_environment(via_nginx, "failover")
    attempts: list[Attempt] = []
    lock = threading.Lock()
    stop = threading.Event()
    killed_at: list[float] = []

    def done(*, after_kill: bool) -> int:
        with lock:
            return sum(
                1
                for a in attempts
                if a.status == 201 and (not after_kill or (killed_at and a.started > killed_at[0]))
            )

    def loop(worker: int) -> None:
        with Api(cluster.url, token) as api:
            n = 0
            while not stop.is_set():
                key = f"W{worker}_{n:03d}"
                n += 1
                started = time.monotonic()
                status: int | str
                try:
                    response = api.client.post(
                        secrets_path(env_id, "/versions"), json={"message": key, "set": {key: key}}
                    )
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    attempts.append(Attempt(key, started, time.monotonic(), status))

    victim, survivors = cluster.servers[1], [cluster.servers[0], cluster.servers[2]]
    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in range(KILL_WORKERS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: done(after_kill=False) >= COMMITS_BEFORE_KILL, LOOP_TIMEOUT, "commits")
        killed_at.append(time.monotonic())
        assert victim.kill() == -signal.SIGKILL
        wait_for(
            lambda: done(after_kill=True) >= COMMITS_AFTER_KILL,
            LOOP_TIMEOUT,
            "commits after the kill",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)

    kill = killed_at[0]
    failed = [a for a in attempts if a.status != 201]
    # Only requests in flight at the kill may fail (at most one per worker); nginx sends
    # the rest to the remaining instances.
    assert len(failed) <= KILL_WORKERS, failed
    for attempt in failed:
        assert attempt.started <= kill + 0.5 and attempt.ended >= kill, (kill, attempt)
        # nginx answers 502 for a request the instance died holding; when the instance had
        # begun its answer, nginx can only close the connection.
        assert attempt.status in (502, "RemoteProtocolError"), attempt
    succeeded = {a.key for a in attempts if a.status == 201}
    maybe = {a.key for a in failed}  # may have committed before the instance died

    with Api(survivors[0].url, token) as direct:
        versions = versions_of(direct, env_id)
        latest = direct.call("GET", secrets_path(env_id))
        assert succeeded <= latest["secrets"].keys() <= succeeded | maybe
        assert len(latest["secrets"]) == len(versions)
        # Every version is whole: it returns as many secrets as it says it has, one more
        # than its parent.
        previous: set[str] = set()
        for version in reversed(versions):
            detail = direct.call("GET", secrets_path(env_id, f"/versions/{version['id']}"))
            assert len(detail["secrets"]) == version["secret_count"] == version["seq"], version
            assert previous < detail["secrets"].keys()
            previous = set(detail["secrets"])

    for server in survivors:
        with Api(server.url, token) as direct:
            assert len(versions_of(direct, env_id)) == len(versions)
    # The remaining instances keep serving, directly and through nginx.
    for server in survivors:
        with Api(server.url, token) as direct:
            health = direct.client.get("/healthz/detailed")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"
            direct.call(
                "POST",
                secrets_path(env_id, "/versions"),
                201,
                json={"message": "after", "set": {f"AFTER_{server.port}": "1"}},
            )
    with httpx.Client(base_url=cluster.url, timeout=10) as raw:
        assert [raw.get("/healthz").status_code for _ in range(2 * INSTANCES)] == [200] * 6
