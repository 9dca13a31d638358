"""Rate limits on sensitive endpoints, backed by the `limits` library."""

from __future__ import annotations

import ipaddress
import math
import time
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from kavach.server.errors import RateLimited
from kavach.server.logging import get_logger

if TYPE_CHECKING:
    from kavach.server.metrics.registry import Metrics

log = get_logger(__name__)


def client_key(address: str | None) -> str:
    """Return the rate-limit key of a client address: an IPv4 address, or an IPv6 /64."""
    # The address is the TCP peer, or what a listed proxy appended to X-Forwarded-For, so a
    # client cannot pick it; but one IPv6 host usually holds a whole /64 to rotate through.
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class RateLimiter:
    """Count hits per named rule and key; raise RateLimited when a rule is exceeded."""

    def __init__(
        self, rules: dict[str, str], redis_url: str | None = None, metrics: Metrics | None = None
    ) -> None:
        self._metrics = metrics
        self._rules: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in rules.items()}
        storage = (
            storage_from_string(f"async+{redis_url}", implementation="redispy")
            if redis_url
            else storage_from_string("async+memory://")
        )
        # O(1) per key (two counters), where a moving window keeps every hit of the window.
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, rule: str, *keys: str) -> None:
        """Record one hit for rule+keys, raising RateLimited if it is over the limit."""
        item = self._rules[rule]
        try:
            allowed = await self._limiter.hit(item, rule, *keys)
        except Exception as exc:  # the shared store is down: serve rather than refuse everyone
            log.warning("rate_limit_store_unavailable", error=type(exc).__name__)
            return
        if allowed:
            return
        if self._metrics is not None:
            self._metrics.rate_limit_refusals.labels(rule).inc()
        stats = await self._limiter.get_window_stats(item, rule, *keys)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited("too many requests; slow down", retry_after=retry_after)
