"""What state an environment's resolved values are in, as one opaque revision string.

Clients (the change feed, `kavach run --watch`) compare revisions for equality only: two
reads that give the same revision resolve to the same values. Today an environment's values
are its latest version alone, so its revision is that version's number.
"""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.secrets.models import SecretVersion

# The unique (environment_id, seq) index answers this from its last entry for the environment.
_LATEST_SEQ = (
    select(SecretVersion.seq)
    .where(SecretVersion.environment_id == bindparam("environment_id"))
    .order_by(SecretVersion.seq.desc())
    .limit(1)
)
NO_VERSION = "0"


async def revision_of(session: AsyncSession, environment_id: uuid.UUID) -> str:
    """Return the environment's revision: its latest version's number, "0" with none."""
    seq = await session.scalar(_LATEST_SEQ, {"environment_id": environment_id})
    return NO_VERSION if seq is None else str(seq)
