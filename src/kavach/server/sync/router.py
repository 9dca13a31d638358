"""HTTP routes for syncing an environment and reading its sync runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac.deps import Requirement
from kavach.server.sync import flows, runs, status
from kavach.server.sync.schemas import (
    SyncRequest,
    SyncRunDetail,
    SyncRunPublic,
    SyncTargetStatus,
)

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}", tags=["sync"])


@router.post("/secrets/sync", response_model=Envelope[SyncRunDetail])
async def sync_secrets(
    body: SyncRequest,
    access: Annotated[Access, Depends(Requirement("sync.run", "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[SyncRunDetail]:
    """Sync a version to a provider: the plan, then each secret's outcome (dry_run: plan only)."""
    return ok(await flows.audited_sync(runtime, session, access, origin, body))


@router.get("/sync-runs", response_model=Envelope[Page[SyncRunPublic]])
async def list_sync_runs(
    access: Annotated[Access, Depends(Requirement("provider.read", "environment"))],
    session: SessionDep,
    page: PageDep,
) -> Envelope[Page[SyncRunPublic]]:
    """List the environment's sync runs, newest first."""
    return ok(await runs.recent(session, environment_id=access.environment_id, request=page))


@router.get("/sync-runs/{run_id}", response_model=Envelope[SyncRunDetail])
async def get_sync_run(
    run_id: str,
    access: Annotated[Access, Depends(Requirement("provider.read", "environment"))],
    session: SessionDep,
) -> Envelope[SyncRunDetail]:
    """Return a sync run with its per-secret results."""
    wanted = runs.run_id_of(run_id)
    return ok(await runs.detail(session, environment_id=access.environment_id, run_id=wanted))


@router.get("/sync-status", response_model=Envelope[list[SyncTargetStatus]])
async def sync_status(
    access: Annotated[Access, Depends(Requirement("provider.read", "environment"))],
    session: SessionDep,
) -> Envelope[list[SyncTargetStatus]]:
    """Say, for each provider, whether its target holds what the environment resolves to now."""
    return ok(await status.targets(session, access.environment_id))
