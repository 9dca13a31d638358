"""Per-process caches of who a bearer token is and what they may do, kept exact by an epoch.

The access gate (kavach.server.gate) is the only user of these caches. Every change that
can end or narrow access (a role binding, a group membership, a revoked
session or token, a deleted resource) moves `access_epoch.value` in its own transaction,
by database triggers (migrations 0006 and 0011). Changes that only widen access, such as
a refresh sliding a session's expiry forward, leave it alone: no cached grant becomes
wrong by them. A request that wants a cached answer first reads the
epoch, one row by primary key; when it moved, this process's caches are emptied. A cached
answer is therefore never older than the request's own read of the epoch, on any instance,
and no message between instances can be lost or late. Only grants are cached: refusals and
everything they report (404 or 403) always come from the database.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Grant, Principal
from kavach.server.rbac.models import AccessEpoch

if TYPE_CHECKING:
    from kavach.server.metrics.registry import CacheCounters

MAX_ENTRIES = 20_000
_SESSION_KEY = "kavach.access_epoch"
NO_EPOCH = -1


_READ_EPOCH = select(AccessEpoch.value).where(AccessEpoch.id == 1)


class AccessCache:
    """Authenticated principals by bearer token, and granted (caller, action, resource)."""

    def __init__(
        self, max_entries: int = MAX_ENTRIES, counters: CacheCounters | None = None
    ) -> None:
        self._max = max_entries
        self._counters = counters  # None: metrics are off
        self._epoch: int | None = None
        self._principals: dict[str, tuple[Principal, datetime | None]] = {}
        self._grants: dict[tuple[str, str, uuid.UUID], Grant] = {}

    @property
    def epoch(self) -> int | None:
        """Return the epoch the cached answers were made under (None: nothing cached yet)."""
        return self._epoch

    def clear(self) -> None:
        """Forget everything (the epoch moved)."""
        self._principals.clear()
        self._grants.clear()

    async def sync(self, session: AsyncSession) -> int:
        """Read the epoch once per request; empty the caches if it moved forward."""
        seen = session.info.get(_SESSION_KEY)
        if isinstance(seen, int):
            return seen
        value = await (await session.connection()).scalar(_READ_EPOCH)  # Core: cheaper
        # Without the row nothing could tell this process of changes: cache nothing.
        epoch = NO_EPOCH if value is None else int(value)
        session.info[_SESSION_KEY] = epoch
        if epoch != NO_EPOCH and (self._epoch is None or epoch > self._epoch):
            if self._epoch is not None and self._counters is not None:
                self._counters.epoch_move()
            self.clear()
            self._epoch = epoch
        return epoch

    def _current(self, epoch: int) -> bool:
        # A request that read an older epoch than the cache holds (it raced a change) neither
        # uses nor fills the cache.
        return epoch == self._epoch

    def principal(self, epoch: int, token: str, now: datetime) -> Principal | None:
        """Return the cached principal of a token, unless its session or token has expired."""
        found = self._principals.get(token) if self._current(epoch) else None
        if found is not None and found[1] is not None and found[1] <= now:
            del self._principals[token]
            found = None
        if self._counters is not None:
            (self._counters.principal_miss if found is None else self._counters.principal_hit)()
        return None if found is None else found[0]

    def remember_principal(
        self, epoch: int, token: str, principal: Principal, expires_at: datetime | None
    ) -> None:
        """Cache who a verified token is, until the earliest of its expiries."""
        if self._current(epoch):
            if len(self._principals) >= self._max:
                self._principals.clear()
            self._principals[token] = (principal, expires_at)

    def grant(self, epoch: int, caller: str, action: str, resource_id: uuid.UUID) -> Grant | None:
        """Return a cached grant of an action on a resource to a caller."""
        found = self._grants.get((caller, action, resource_id)) if self._current(epoch) else None
        if self._counters is not None:
            (self._counters.grant_miss if found is None else self._counters.grant_hit)()
        return found

    def remember_grant(
        self, epoch: int, caller: str, action: str, resource_id: uuid.UUID, grant: Grant
    ) -> None:
        """Cache that a caller may do an action on a resource."""
        if self._current(epoch):
            if len(self._grants) >= self._max:
                self._grants.clear()
            self._grants[(caller, action, resource_id)] = grant
