"""Every metric the server exports, created once per process with metrics on."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from kavach.server.metrics.directory import MULTIPROCESS_DIR_ENV
from kavach.server.metrics.workers import LiveWorkers, forget_process

# Waits for a pooled connection are mostly none at all: finer buckets than requests need.
_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# The login refusals a device-flow poll can end with; anything else is counted as "error".
LOGIN_OUTCOMES = frozenset(
    {
        "success",
        "access_denied",
        "expired_token",
        "invalid_grant",
        "account_not_allowed",
        # OpenID sign-ins (provider "oidc:NAME").
        "invalid_state",
        "id_token_refused",
        "sign_in_refused",
        "identity_provider_error",
    }
)
Count = Callable[[], None]


def status_class(status: int) -> str:
    """Return `2xx` for 200 and so on; anything outside 100-599 is `5xx`."""
    index = status // 100 - 1
    return _STATUS_CLASSES[index] if 0 <= index < len(_STATUS_CLASSES) else "5xx"


@dataclass(frozen=True)
class CacheCounters:
    """What the access cache counts: hits and misses of each map, and epoch moves."""

    principal_hit: Count
    principal_miss: Count
    grant_hit: Count
    grant_miss: Count
    epoch_move: Count


@dataclass(frozen=True)
class PoolGauges:
    """One connection pool's connections in use and time waited for one."""

    checked_out: Count
    checked_in: Count
    observe_wait: Callable[[float], None]


@dataclass(frozen=True)
class GroupCommits:
    """One kind of group commit's batch sizes and durations."""

    size: Histogram
    committed: Histogram
    failed: Histogram

    def observe(self, items: int, seconds: float, *, ok: bool) -> None:
        """Record one batch: how many items it held and how long its commit took."""
        self.size.observe(items)
        (self.committed if ok else self.failed).observe(seconds)


class Metrics:
    """The server's metrics, and the registry a scrape reads (every worker's, when several)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        own = CollectorRegistry()
        self.registry = own
        self._directory = multiprocess_dir
        if multiprocess_dir is not None:
            # Values live in files per process; a scrape reads and sums all of them.
            self.registry = CollectorRegistry()
            LiveWorkers(multiprocess_dir, registry=self.registry)
        labels = ("route", "method", "status_class")
        self._requests = Counter(
            "kavach_http_requests", "HTTP requests answered.", labels, registry=own
        )
        self._durations = Histogram(
            "kavach_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            labels,
            registry=own,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.pool_in_use = Gauge(
            "kavach_db_pool_connections_in_use",
            "Database connections lent out now.",
            ("pool",),
            registry=own,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            "kavach_db_pool_connections_max",
            "Database connections the pool may open.",
            ("pool",),
            registry=own,
            multiprocess_mode="livesum",
        )
        self.pool_wait = Histogram(
            "kavach_db_pool_wait_seconds",
            "Time a request waited for a database connection.",
            ("pool",),
            buckets=_WAIT_BUCKETS,
            registry=own,
        )
        self.batch_size = Histogram(
            "kavach_group_commit_batch_size",
            "Items committed together in one group commit.",
            ("kind",),
            buckets=_BATCH_BUCKETS,
            registry=own,
        )
        self.batch_duration = Histogram(
            "kavach_group_commit_duration_seconds",
            "Time one group commit took.",
            ("kind", "outcome"),
            registry=own,
        )
        self._cache_lookups = Counter(
            "kavach_access_cache_lookups",
            "Access-cache lookups, by map and result.",
            ("cache", "result"),
            registry=own,
        )
        self._epoch_moves = Counter(
            "kavach_access_epoch_moves",
            "Times this process saw the access epoch move and emptied its access cache.",
            registry=own,
        )
        self.sync_runs = Counter(
            "kavach_sync_runs",
            "Sync runs, by provider and outcome.",
            ("provider", "outcome"),
            registry=own,
        )
        self.rate_limit_refusals = Counter(
            "kavach_rate_limit_refusals",
            "Requests refused by a rate limit.",
            ("rule",),
            registry=own,
        )
        self.logins = Counter(
            "kavach_logins",
            "Device logins ended, by identity provider and outcome.",
            ("provider", "outcome"),
            registry=own,
        )

    @classmethod
    def for_this_process(cls) -> Metrics:
        """Return metrics shared with the other workers when the server runs several."""
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if directory is not None and values.ValueClass is values.MutexValue:
            # prometheus_client picks how it stores values when first imported.
            raise RuntimeError("prometheus_client was imported before its directory was set")
        return cls(directory)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count a request and its duration under its route template."""
        if method not in _METHODS:
            method = "other"  # a client may send any word as its method
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (route, method, status_class(status))
            children = (self._requests.labels(*labels), self._durations.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def cache_counters(self) -> CacheCounters:
        """Return the access cache's counters, labelled once."""
        lookups = self._cache_lookups
        return CacheCounters(
            principal_hit=lookups.labels("principal", "hit").inc,
            principal_miss=lookups.labels("principal", "miss").inc,
            grant_hit=lookups.labels("grant", "hit").inc,
            grant_miss=lookups.labels("grant", "miss").inc,
            epoch_move=self._epoch_moves.inc,
        )

    def pool(self, name: str, size: int) -> PoolGauges:
        """Return the gauges of one connection pool of `size` connections at most."""
        self.pool_max.labels(name).set(size)
        in_use = self.pool_in_use.labels(name)
        return PoolGauges(
            checked_out=in_use.inc,
            checked_in=in_use.dec,
            observe_wait=self.pool_wait.labels(name).observe,
        )

    def group_commits(self, kind: str) -> GroupCommits:
        """Return the histograms of one kind of group commit (`audit`, `secrets`)."""
        return GroupCommits(
            size=self.batch_size.labels(kind),
            committed=self.batch_duration.labels(kind, "committed"),
            failed=self.batch_duration.labels(kind, "failed"),
        )

    def close(self) -> None:
        """Drop this worker's live gauges as it stops (its counters stay in the sums)."""
        if self._directory is not None:
            forget_process(os.getpid(), self._directory)

    def login(self, provider: str, outcome: str) -> None:
        """Count a login that ended: `success` or the refusal's error code."""
        self.logins.labels(provider, outcome if outcome in LOGIN_OUTCOMES else "error").inc()
