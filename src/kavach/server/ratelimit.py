"""Rate limits on sensitive endpoints, backed by the `limits` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from kavach.server.errors import RateLimited


class RateLimiter:
    """Count hits per named rule and key; raise RateLimited when a rule is exceeded."""

    def __init__(self, rules: dict[str, str], storage_url: str = "async+memory://") -> None:
        self._rules: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in rules.items()}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))

    async def hit(self, rule: str, *keys: str) -> None:
        """Record one hit for rule+keys, raising RateLimited if it is over the limit."""
        item = self._rules[rule]
        if await self._limiter.hit(item, rule, *keys):
            return
        stats = await self._limiter.get_window_stats(item, rule, *keys)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited("too many requests; slow down", retry_after=retry_after)
