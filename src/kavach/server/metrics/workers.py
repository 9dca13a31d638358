"""Reading the values every worker process wrote, without the gauges of workers now gone."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# A live gauge's file names the process that writes it (prometheus_client's layout).
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds the number: keep the file
        return True
    return True


def forget_process(pid: int, directory: str) -> None:
    """Drop the live gauges of a process that ended (its counters still count)."""
    with contextlib.suppress(FileNotFoundError):  # another process dropped them first
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class LiveWorkers(MultiProcessCollector):
    """Sum every worker's values; first drop the gauges of any worker that died unannounced.

    A worker that stops cleanly drops its own; one that was killed cannot, and would
    otherwise report the connections it held for ever.
    """

    def __init__(self, directory: str, registry: CollectorRegistry) -> None:
        super().__init__(registry, directory)  # type: ignore[no-untyped-call]
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        """Return every worker's metrics, summed as their kinds require."""
        for name in os.listdir(self._directory):
            found = _LIVE_GAUGE_FILE.match(name)
            if found and not _alive(int(found[1])):
                forget_process(int(found[1]), self._directory)
        collected: Iterable[Metric] = super().collect()  # type: ignore[no-untyped-call]
        return collected
