"""Record sync runs and their items, each write in its own short transaction."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.access import Actor
from kavach.server.db.base import utcnow
from kavach.server.errors import NotFound
from kavach.server.pages import Keyset, Page, PageRequest
from kavach.server.secrets.schemas import Author
from kavach.server.sync.apply import Outcome
from kavach.server.sync.models import SyncRun, SyncRunItem
from kavach.server.sync.plan import UNCHANGED, UNMANAGED, PlanItem
from kavach.server.sync.schemas import SyncItemPublic, SyncRunDetail, SyncRunPublic

RUNNING, INTERRUPTED = "running", "interrupted"
INTERRUPTED_ERROR = "the run stopped before it ended (its server stopped); sync again"


def initial_status(item: PlanItem, dry_run: bool) -> str:
    """Return an item's status before anything is applied."""
    if item.action == UNCHANGED:
        return "unchanged"
    if item.action == UNMANAGED:
        return "refused"
    return "planned" if dry_run else "pending"


async def start(
    sessions: async_sessionmaker[AsyncSession], *, run: SyncRun, items: list[PlanItem]
) -> None:
    """Store a new run and its plan; a run of its target left running was interrupted.

    The caller holds the target's lock, which a run holds until it ends and which a
    stopped server's lock gives up: a run of the target still marked running has stopped.
    """
    run.counts = dict(Counter(item.action for item in items))
    async with sessions() as session, session.begin():
        await session.execute(
            update(SyncRun)
            .where(SyncRun.target_key == run.target_key, SyncRun.status == RUNNING)
            .values(status=INTERRUPTED, finished_at=utcnow(), error=INTERRUPTED_ERROR)
        )
        session.add(run)
        await session.flush()
        session.add_all(
            SyncRunItem(
                run_id=run.id,
                name=item.name,
                remote_name=item.remote_name,
                action=item.action,
                status=initial_status(item, run.dry_run),
                note=item.note,
            )
            for item in items
        )


async def item_done(session: AsyncSession, *, run_id: uuid.UUID, outcome: Outcome) -> None:
    """Record one item's outcome."""
    row = await session.get(SyncRunItem, (run_id, outcome.item.remote_name))
    assert row is not None  # noqa: S101 - start() stored every item
    row.status = "succeeded" if outcome.ok else "failed"
    row.attempts = outcome.attempts
    row.error = outcome.error


def final_status(items: list[PlanItem], outcomes: list[Outcome]) -> str:
    """Succeeded when nothing failed or was refused; partial when some of it worked."""
    failed = sum(not o.ok for o in outcomes) + sum(i.action == UNMANAGED for i in items)
    worked = sum(o.ok for o in outcomes) + sum(i.action == UNCHANGED for i in items)
    if failed == 0:
        return "succeeded"
    return "partial" if worked else "failed"


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    *,
    run_id: uuid.UUID,
    status: str,
    outcomes: list[Outcome],
    error: str | None = None,
) -> None:
    """Store a run's final status and counts."""
    async with sessions() as session, session.begin():
        run = await session.get(SyncRun, run_id)
        assert run is not None  # noqa: S101
        run.status = status
        run.error = error
        run.finished_at = utcnow()
        run.counts = {
            **run.counts,
            "succeeded": sum(o.ok for o in outcomes),
            "failed": sum(not o.ok for o in outcomes),
        }


def new_run(
    *,
    environment_id: uuid.UUID,
    provider: str,
    target: str,
    version_id: str | None,
    revision: str | None,
    dry_run: bool,
    prune: bool,
    adopt: bool,
    actor: Actor,
) -> SyncRun:
    """Build a run row (stored by start())."""
    return SyncRun(
        id=uuid.uuid4(),
        environment_id=environment_id,
        provider=provider,
        target_key=target,
        version_id=version_id,
        revision=revision,
        status="planned" if dry_run else RUNNING,
        dry_run=dry_run,
        prune=prune,
        adopt=adopt,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        counts={},
    )


def public(run: SyncRun) -> SyncRunPublic:
    """Describe a run without its items."""
    return SyncRunPublic(
        id=run.id,
        provider=run.provider,
        target=run.target_key,
        version_id=run.version_id,
        status=run.status,
        dry_run=run.dry_run,
        prune=run.prune,
        adopt=run.adopt,
        counts=run.counts,
        actor=Author(type=run.actor_type, id=run.actor_id, label=run.actor_label),
        error=run.error,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


def run_id_of(text: str) -> uuid.UUID:
    """Read a run id from a path; one that is no id is not found, as another's run is."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("sync run not found in this environment") from None


async def detail(
    session: AsyncSession, *, environment_id: uuid.UUID, run_id: uuid.UUID
) -> SyncRunDetail:
    """Return a run of this environment with its items, or 404."""
    run = await session.get(SyncRun, run_id)
    if run is None or run.environment_id != environment_id:
        raise NotFound("sync run not found in this environment")
    items = await session.scalars(
        select(SyncRunItem).where(SyncRunItem.run_id == run_id).order_by(SyncRunItem.name)
    )
    return SyncRunDetail(
        **public(run).model_dump(), items=[SyncItemPublic.model_validate(i) for i in items]
    )


# Newest first; the id breaks ties between runs started in the same instant.
RUNS = Keyset("sync-runs", SyncRun.created_at, SyncRun.id, descending=True)


async def recent(
    session: AsyncSession, *, environment_id: uuid.UUID, request: PageRequest
) -> Page[SyncRunPublic]:
    """Return a page of an environment's runs, newest first."""
    query = select(SyncRun).where(SyncRun.environment_id == environment_id)
    found = list(await session.scalars(RUNS.page(query, request)))
    runs, after = RUNS.cut(found, request, lambda run: (run.created_at, run.id))
    return Page(items=[public(run) for run in runs], next=after)
