"""The change feed: answer once an environment's revision differs from the one a client holds.

A long poll over the database, not in-process events: a commit made through any instance
on the same database is seen by a feed waiting on any other. While it waits, the feed
holds no connection and no transaction; every `poll_interval` it reads the revision in a
short session of its own.
"""

from __future__ import annotations

import time
import uuid
from asyncio import sleep
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.secrets import service
from kavach.server.secrets.flows import summary
from kavach.server.secrets.revisions import revision_of
from kavach.server.secrets.schemas import Changes

DEFAULT_WAIT_SECONDS = 25.0
MAX_WAIT_SECONDS = 60.0
# Says whether the wait should end early: the client went away or the server is stopping.
Gone = Callable[[], Awaitable[bool]]


async def _answer(
    session: AsyncSession, environment_id: uuid.UUID, revision: str, after: str | None
) -> Changes:
    """Describe the environment at `revision`, against the revision the client holds."""
    latest = await service.latest_version(session, environment_id=environment_id)
    return Changes(
        revision=revision,
        changed=revision != after,
        latest=None if latest is None else summary(latest),
    )


async def next_change(
    session: AsyncSession,
    read_sessions: async_sessionmaker[AsyncSession],
    environment_id: uuid.UUID,
    *,
    after: str | None,
    wait: float,
    poll_interval: float,
    gone: Gone,
) -> Changes:
    """Answer at once unless `after` is the current revision; else when it moves or `wait` ends.

    `session` is the request's, already used by the gate: its connection goes back to the
    pool before any wait.
    """
    revision = await revision_of(session, environment_id)
    if after is None or revision != after or wait <= 0:
        return await _answer(session, environment_id, revision, after)
    await session.commit()  # ends the read, so the connection is not held while waiting
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        await sleep(min(poll_interval, left))
        if await gone():
            break
        async with read_sessions() as polling:
            revision = await revision_of(polling, environment_id)
            if revision != after:
                return await _answer(polling, environment_id, revision, after)
    async with read_sessions() as polling:
        revision = await revision_of(polling, environment_id)
        return await _answer(polling, environment_id, revision, after)
