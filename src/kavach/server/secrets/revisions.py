"""What state an environment's resolved values are in, as one opaque revision string.

Clients (the change feed, `kavach run --watch`, a sync target's status) compare revisions
for equality only: two reads that give the same revision resolve to the same values. A
revision is the latest version's number, followed, when its values hold references, by a
digest of the versions of every environment they reach (secrets.linking.revision), so a
change to a referenced secret moves it too.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.secrets.linking import current_revision


async def revision_of(session: AsyncSession, environment_id: uuid.UUID) -> str:
    """Return the environment's revision ("0" when it has no version)."""
    return await current_revision(session, environment_id)
