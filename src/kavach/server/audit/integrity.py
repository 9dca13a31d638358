"""Check audit chains, and tell which stored events are on their chain.

Every event recorded since chaining began (database revision 0005) is on the chain of its
organization (or the `server` chain). Events recorded before it are not, and cannot be:
they were written before any event was chained, so each has a smaller id than the first
chained event in the database (ids only grow). Any other event outside its chain, forged
or taken out of it, is an alteration.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import ColumnElement, CompoundSelect, and_, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.audit.chain import Break, ChainReport, Walk, key_for
from kavach.server.audit.models import AuditEvent
from kavach.server.audit.service import chain_of
from kavach.server.iam.models import Environment, SecretGroup

ChainStatus = Literal["chained", "legacy", "unchained"]
_PAGE = 500


async def first_chained_id(session: AsyncSession) -> int | None:
    """Return the id of the first event ever chained (None: chaining has not begun)."""
    query = select(func.min(AuditEvent.id)).where(AuditEvent.chain.is_not(None))
    found = await session.scalar(query)
    return None if found is None else int(found)


def chain_status(event: AuditEvent, first_chained: int | None) -> ChainStatus:
    """Say whether an event is on its chain, recorded before chaining, or neither."""
    if event.chain is None:
        # Ids start at 1 on both databases: a smaller one was never assigned by them.
        before = first_chained is None or 1 <= event.id < first_chained
        return "legacy" if event.id >= 1 and before else "unchained"
    on_chain = event.chain == chain_of(event.organization_id) and event.chain_seq is not None
    return "chained" if on_chain else "unchained"


def _legacy(first_chained: int | None) -> ColumnElement[bool]:
    """Match events recorded before chaining began (see chain_status)."""
    unchained = and_(AuditEvent.chain.is_(None), AuditEvent.id >= 1)
    return unchained if first_chained is None else and_(unchained, AuditEvent.id < first_chained)


def _owned(organization_id: uuid.UUID | None) -> ColumnElement[bool]:
    """Match the events an organization's listings show (or the server's, for None)."""
    if organization_id is None:
        return AuditEvent.organization_id.is_(None)
    chain = chain_of(organization_id)
    # Its groups and environments, present and deleted (deleted ones are named by its chain).
    groups: CompoundSelect[tuple[uuid.UUID | None]] = union(
        select(SecretGroup.id).where(SecretGroup.organization_id == organization_id),
        select(AuditEvent.secret_group_id).where(
            AuditEvent.chain == chain, AuditEvent.secret_group_id.is_not(None)
        ),
    )
    environments: CompoundSelect[tuple[uuid.UUID | None]] = union(
        select(Environment.id)
        .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
        .where(SecretGroup.organization_id == organization_id),
        select(AuditEvent.environment_id).where(
            AuditEvent.chain == chain, AuditEvent.environment_id.is_not(None)
        ),
    )
    return or_(
        AuditEvent.organization_id == organization_id,
        AuditEvent.secret_group_id.in_(groups),
        AuditEvent.environment_id.in_(environments),
    )


def _after(seq: int) -> ColumnElement[bool]:
    """Match a chain's events after `seq`; the first page also takes events without a seq."""
    later = AuditEvent.chain_seq > seq
    return or_(later, AuditEvent.chain_seq.is_(None)) if seq == 0 else later


async def verify_chain(session: AsyncSession, *, organization_id: uuid.UUID | None) -> ChainReport:
    """Recompute an organization's chain (or the server's); report the first broken link."""
    chain = chain_of(organization_id)
    report = ChainReport(chain=chain)
    walk = Walk(key_for(session), report)
    # Pages by sequence number rather than one cursor: a GET runs outside a transaction,
    # where a server-side cursor cannot live, and a long chain needs no long transaction.
    after = 0
    while True:
        page = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.chain == chain, _after(after))
                .order_by(AuditEvent.chain_seq.nulls_first())
                .limit(_PAGE)
            )
        )
        if not all(walk.step(event) for event in page) or len(page) < _PAGE:
            break
        after = page[-1].chain_seq or after
    await _check_off_chain(session, report, organization_id)
    return report


async def _check_off_chain(
    session: AsyncSession, report: ChainReport, organization_id: uuid.UUID | None
) -> None:
    """Count events from before chaining; any other event off the chain is a break."""
    first = await first_chained_id(session)
    owned, legacy = _owned(organization_id), _legacy(first)
    count = select(func.count()).select_from(AuditEvent).where(owned, legacy)
    report.legacy = int(await session.scalar(count) or 0)
    if report.broken is not None:
        return
    off_chain = or_(AuditEvent.chain.is_(None), AuditEvent.chain != report.chain)
    stray = (
        await session.execute(
            select(AuditEvent.id, AuditEvent.chain_seq)
            .where(owned, off_chain, ~legacy)
            .order_by(AuditEvent.id)
            .limit(1)
        )
    ).first()
    if stray is not None:
        report.broken = Break(
            stray[1],
            stray[0],
            "unchained",
            f"event id {stray[0]} is not on the chain: it was added, or taken out of the "
            "chain, after chaining began",
        )
