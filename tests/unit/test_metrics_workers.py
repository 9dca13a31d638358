"""Summing the workers' metric files: a worker that died unannounced stops counting in gauges."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from kavach.server.metrics.workers import LiveWorkers

GAUGE = "kavach_db_pool_connections_max"


def _write(directory: Path, kind: str, pid: int, name: str, value: float) -> None:
    """Write one sample the way a worker in multiprocess mode does."""
    values = MmapedDict(str(directory / f"{kind}_{pid}.db"))  # type: ignore[no-untyped-call]
    key = mmap_key(name, name, ["pool"], ["engine"], "help")
    values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    values.close()  # type: ignore[no-untyped-call]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_gauges_of_dead_workers_are_dropped_and_counters_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    for pid in (os.getpid(), dead):
        _write(tmp_path, "gauge_livesum", pid, GAUGE, 15)
        _write(tmp_path, "counter", pid, "kavach_http_requests_total", 3)
    registry = CollectorRegistry()
    LiveWorkers(str(tmp_path), registry=registry)

    assert registry.get_sample_value(GAUGE, {"pool": "engine"}) == 15
    assert registry.get_sample_value("kavach_http_requests_total", {"pool": "engine"}) == 6
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()
    assert (tmp_path / f"gauge_livesum_{os.getpid()}.db").exists()
