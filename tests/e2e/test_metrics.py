"""A real Prometheus scrapes a two-worker server's own metrics listener and sums both workers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.harness import (
    HOST,
    Launcher,
    clean_environ,
    create_database,
    drop_database,
    free_port,
)

# Several workers are for PostgreSQL; the in-process tests cover both databases' metrics.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["postgresql"])]
ROUTE = "/api/v1/info"
QUERY = f'sum(kavach_http_requests_total{{route="{ROUTE}"}})'
WAIT_SECONDS = 20.0


def _served_by_each_worker(tmp: Path) -> dict[str, float]:
    """Return, per worker process, how many requests to ROUTE its own files count."""
    served = {}
    for path in tmp.glob("kavach-metrics-*/counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        served[path.stem] = sum(
            sample.value
            for metric in metrics
            for sample in metric.samples
            if sample.name == "kavach_http_requests_total" and sample.labels["route"] == ROUTE
        )
    return served


def _get_many(url: str, count: int) -> None:
    """Send `count` requests at once, each on a connection of its own."""

    def one(_: int) -> int:
        with httpx.Client(timeout=5) as client:  # a new connection: any worker may take it
            return client.get(url).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def _query(prometheus: str, query: str) -> float | None:
    """Return the value of an instant query, or None while it has no result."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    answer.raise_for_status()
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Return an exit stack closed at the end of the test."""
    with ExitStack() as found:
        yield found


@pytest.fixture
def prometheus_binary() -> str:
    """Return Debian's prometheus server, which .ci/run installs."""
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (see .ci/run)")
    return found


@contextmanager
def prometheus_scraping(binary: str, target: str, root: Path) -> Iterator[str]:
    """Run Prometheus scraping `target` every second; yield its URL, then stop it."""
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: kavach\n"
        f"    static_configs:\n      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    port = free_port()
    with (root / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address={HOST}:{port}",
                # Targets are applied every 5 s by default: the test would wait for that.
                "--scrape.discovery-reload-interval=100ms",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def database(backend: str) -> Iterator[tuple[str | None, dict[str, str]]]:
    """Return the database name and settings of the test's backend (dropped afterwards)."""
    if backend == "sqlite":
        yield None, {}
        return
    name, url = create_database()
    try:
        yield name, {"KAVACH_DATABASE_URL": url}
    finally:
        drop_database(name)


def test_prometheus_scrapes_the_sum_of_two_workers(
    stack: ExitStack,
    tmp_path: Path,
    launch: Launcher,
    prometheus_binary: str,
    database: tuple[str | None, dict[str, str]],
) -> None:
    name, settings = database
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    metrics_at = f"{HOST}:{free_port()}"
    env = clean_environ(
        KAVACH_DATA_DIR=str(tmp_path / "data"),
        KAVACH_METRICS_ADDR=metrics_at,
        KAVACH_DB_POOL_SIZE="3",
        KAVACH_DB_MAX_OVERFLOW="2",
        TMPDIR=str(tmp),  # where the workers' shared directory is made
        **settings,
    )
    # Prometheus starts while the server does; it finds the target down until then.
    prometheus = stack.enter_context(prometheus_scraping(prometheus_binary, metrics_at, tmp_path))
    server = launch(tmp_path / "server", env, database_name=name, args=("--workers", "2"))
    assert httpx.get(f"{server.url}/metrics").status_code == 404  # not on the API port
    (directory,) = tmp.glob("kavach-metrics-*")
    assert directory.stat().st_mode & 0o777 == 0o700

    sent, deadline = 0, time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        _get_many(f"{server.url}{ROUTE}", 16)
        sent += 16
        if sum(1 for count in _served_by_each_worker(tmp).values() if count) == 2:
            break
    served = _served_by_each_worker(tmp)
    assert len([count for count in served.values() if count]) == 2, served
    assert sum(served.values()) == sent

    scraped = httpx.get(f"http://{metrics_at}/metrics", timeout=5).text
    # Gauges too are summed over the live workers: each pool counts once per worker.
    engine_pool = 3 + 2 if settings else 5 + 10
    assert f'kavach_db_pool_connections_max{{pool="engine"}} {2 * engine_pool}.0' in scraped

    found, deadline = None, time.monotonic() + WAIT_SECONDS
    while found != sent and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            found = _query(prometheus, QUERY)
        except httpx.TransportError:
            continue  # still starting
    assert found == sent, (tmp_path / "prometheus.log").read_text(encoding="utf-8")
