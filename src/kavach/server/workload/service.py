"""Database work of workload trusts and of the service tokens workloads get through them."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.auth.models import ServiceToken
from kavach.server.auth.tokens import new_service_token, token_hash
from kavach.server.errors import AlreadyExists
from kavach.server.iam.tree import flush_unique
from kavach.server.pages import Keyset, PageRequest
from kavach.server.workload.models import WorkloadTrust
from kavach.server.workload.schemas import MAX_TTL_SECONDS, TrustCreate

# Expired workload tokens are kept this long (what `token list` and the audit trail show),
# then pruned at the trust's next exchange.
KEEP_EXPIRED = timedelta(days=1)
# Oldest first; the id breaks ties between trusts made in the same instant.
TRUSTS = Keyset("workload-trusts", WorkloadTrust.created_at, WorkloadTrust.id)


async def create(
    session: AsyncSession, *, environment_id: uuid.UUID, body: TrustCreate, creator: uuid.UUID
) -> WorkloadTrust:
    """Create a trust; its name is unique in the environment."""
    exists = select(WorkloadTrust.id).where(
        WorkloadTrust.environment_id == environment_id, WorkloadTrust.name == body.name
    )
    if await session.scalar(exists):
        raise AlreadyExists(f"a workload trust named {body.name!r} already exists here")
    trust = WorkloadTrust(
        environment_id=environment_id,
        name=body.name,
        issuer=body.issuer,
        audience=body.audience,
        conditions=dict(body.conditions),
        role=body.role,
        token_ttl_seconds=body.token_ttl_seconds,
        created_by=creator,
    )
    session.add(trust)
    await flush_unique(session, "workload trust", body.name)
    return trust


async def list_page(
    session: AsyncSession, *, environment_id: uuid.UUID, request: PageRequest, name: str | None
) -> tuple[list[WorkloadTrust], str | None]:
    """Return a page of an environment's trusts, oldest first, and the next cursor."""
    query = select(WorkloadTrust).where(WorkloadTrust.environment_id == environment_id)
    if name is not None:
        query = query.where(WorkloadTrust.name == name)
    found = list(await session.scalars(TRUSTS.page(query, request)))
    return TRUSTS.cut(found, request, lambda trust: (trust.created_at, trust.id))


async def get(
    session: AsyncSession, *, environment_id: uuid.UUID, trust_id: uuid.UUID
) -> WorkloadTrust | None:
    """Return one of an environment's trusts by id."""
    return await session.scalar(
        select(WorkloadTrust).where(
            WorkloadTrust.id == trust_id, WorkloadTrust.environment_id == environment_id
        )
    )


async def live_tokens(
    session: AsyncSession, trust_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, int]:
    """Count each trust's tokens still in force (neither expired nor revoked), in one query."""
    if not trust_ids:
        return {}
    query = (
        select(ServiceToken.workload_trust_id, func.count())
        .where(
            ServiceToken.workload_trust_id.in_(trust_ids),
            ServiceToken.revoked_at.is_(None),
            ServiceToken.expires_at > now,
        )
        .group_by(ServiceToken.workload_trust_id)
    )
    return {trust_id: count for trust_id, count in await session.execute(query) if trust_id}


async def delete_trust(session: AsyncSession, *, trust: WorkloadTrust) -> int:
    """Delete a trust and every token it issued; return how many tokens went with it.

    The trust goes first: its row's lock makes an exchange under way (which holds the row
    shared, see `lock`) finish first, so the tokens read next include the one it made.
    """
    await session.delete(trust)
    await session.flush()
    return await _delete_tokens(session, ServiceToken.workload_trust_id == trust.id)


async def _delete_tokens(session: AsyncSession, *where: ColumnElement[bool]) -> int:
    """Delete the service tokens `where` selects; return how many.

    Read first, and deleted only if there are any: on PostgreSQL the tokens' epoch trigger
    fires per statement, and a delete of nothing would still empty every access cache.
    """
    ids = list(await session.scalars(select(ServiceToken.id).where(*where)))
    if ids:
        await session.execute(delete(ServiceToken).where(ServiceToken.id.in_(ids)))
    return len(ids)


async def trusts_for(
    session: AsyncSession, *, environment_id: uuid.UUID, issuer: str, name: str | None
) -> Sequence[WorkloadTrust]:
    """Return the environment's trusts of an issuer (of that name only, if given), in order."""
    query = select(WorkloadTrust).where(
        WorkloadTrust.environment_id == environment_id, WorkloadTrust.issuer == issuer
    )
    if name is not None:
        query = query.where(WorkloadTrust.name == name)
    return list(await session.scalars(query.order_by(WorkloadTrust.created_at, WorkloadTrust.id)))


async def lock(session: AsyncSession, trust_id: uuid.UUID) -> WorkloadTrust | None:
    """Return a trust, held shared until the transaction ends (None: it was deleted).

    Exchanges share the hold; a delete waits for them, and they for it.
    """
    return await session.scalar(
        select(WorkloadTrust).where(WorkloadTrust.id == trust_id).with_for_update(read=True)
    )


async def prune(session: AsyncSession, *, trust_id: uuid.UUID, now: datetime) -> int:
    """Delete a trust's tokens that expired more than KEEP_EXPIRED ago; return how many."""
    return await _delete_tokens(
        session,
        ServiceToken.workload_trust_id == trust_id,
        ServiceToken.expires_at < now - KEEP_EXPIRED,
    )


async def issue(
    session: AsyncSession, *, trust: WorkloadTrust, subject: str | None, now: datetime
) -> tuple[ServiceToken, str, int]:
    """Create a service token for a workload the trust admitted; return it, its value, its life.

    Its name is the trust's with a random suffix; it lives the trust's TTL, never over an hour.
    """
    secret = new_service_token()
    lifetime = min(trust.token_ttl_seconds, MAX_TTL_SECONDS)
    token = ServiceToken(
        environment_id=trust.environment_id,
        name=f"{trust.name[:50]}-{secrets.token_hex(6)}",
        role=trust.role,
        token_hash=token_hash(secret),
        created_by=None,
        expires_at=now + timedelta(seconds=lifetime),
        workload_trust_id=trust.id,
        subject=subject[:255] if subject is not None else None,
    )
    session.add(token)
    await flush_unique(session, "token", token.name)
    return token, secret, lifetime
