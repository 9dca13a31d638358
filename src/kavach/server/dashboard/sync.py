"""An environment's sync: its providers, a plan or a run, and past runs with their results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kavach.server.access import Access
from kavach.server.dashboard.common import (
    PREFIX,
    environment_context,
    listing,
    may,
    next_url,
)
from kavach.server.dashboard.pages import Crumb, fragment, page
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.errors import Conflict, KavachError
from kavach.server.iam.models import Environment
from kavach.server.pages import PageRequest
from kavach.server.providers import service as providers
from kavach.server.rbac.deps import Requirement
from kavach.server.sync import flows, runs
from kavach.server.sync.schemas import SyncItemPublic, SyncRequest, SyncRunDetail
from kavach.server.wording import in_words

READ, RUN = "provider.read", "sync.run"
# The page's fragments swap on 409 and 422 only (the layout's htmx configuration).
REFUSED, BUSY = 422, 409
# What the run button's response triggers, so the runs listed below reload.
DONE_EVENT = "sync-done"
# A run's secrets shown on a page: enough for any run looked at by hand, and the page stays
# small (a row is about 250 bytes). The API's run lists them all.
MAX_ITEMS_SHOWN = 200
_QUIET_ACTIONS = ("unchanged", "unmanaged")

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/environments/{id}/sync", response_class=HTMLResponse)
async def sync_page(
    request: Request,
    access: Annotated[Access, Depends(Requirement(READ, "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """The providers configured here (never their credentials) and the runs, newest first."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    # One of each kind per environment: a single page holds them all.
    records, _ = await providers.list_for(
        session, environment_id=env.id, request=PageRequest(limit=50)
    )
    found = await runs.recent(session, environment_id=env.id, request=listing(request))
    context = await environment_context(session, access, env, tab="sync")
    context["crumbs"].append(Crumb("Sync", request.url.path))
    return page(
        request,
        access,
        "dashboard/sync.html",
        **context,
        providers=[providers.public(record) for record in records],
        can_sync=may(access, RUN),
        runs=found.items,
        running=any(run.status == "running" for run in found.items),
        here=f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path,
        sync_url=f"{PREFIX}/environments/{env.id}/sync",
        runs_url=f"{PREFIX}/environments/{env.id}/sync-runs",
        next_url=next_url(request, found.next),
    )


@router.post("/environments/{id}/sync", response_class=HTMLResponse)
async def run_sync(
    request: Request,
    access: Annotated[Access, Depends(Requirement(RUN, "environment"))],
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Plan (a dry run) or run a sync to one provider, as the API's sync does."""
    form = await request.form()
    provider, mode = str(form.get("provider") or ""), str(form.get("mode") or "")
    runs_url = f"{PREFIX}/environments/{access.environment_id}/sync-runs"

    def refused(problem: str, status_code: int = REFUSED) -> Response:
        return _done(
            fragment(
                "dashboard/sync_result.html",
                status_code=status_code,
                provider=provider,
                planning=mode == "plan",
                problem=problem,
            )
        )

    if mode not in ("plan", "run"):
        return refused("choose Plan or Run sync")
    try:
        body = SyncRequest(
            provider=provider,
            dry_run=mode == "plan",
            prune=form.get("prune") == "on",
            adopt=form.get("adopt") == "on",
        )
    except ValidationError as error:
        return refused(in_words(error.errors()))
    try:
        run = await flows.audited_sync(runtime, session, access, origin, body)
    except KavachError as error:
        # An unknown provider, a target that failed or refused, a sync of the same target
        # already running, nothing to sync: each is said in words on the page, and, as the
        # API's refusal does, leaves nothing of the request's transaction behind.
        await session.rollback()
        return refused(error.message, BUSY if isinstance(error, Conflict) else REFUSED)
    return _done(
        fragment(
            "dashboard/sync_result.html",
            provider=provider,
            planning=body.dry_run,
            run=run,
            shown=items_shown(run, access.environment_id),
            run_url=f"{runs_url}/{run.id}",
        )
    )


def items_shown(run: SyncRunDetail, environment_id: object) -> dict[str, Any]:
    """A run's secrets for a page: failures first, then changes, then the rest, capped."""

    def weight(item: SyncItemPublic) -> int:
        if item.error or item.status in ("failed", "refused"):
            return 0
        return 2 if item.action in _QUIET_ACTIONS else 1

    ordered = sorted(run.items, key=weight)  # stable: the run's own order within each
    return {
        "items": ordered[:MAX_ITEMS_SHOWN],
        "hidden": max(len(ordered) - MAX_ITEMS_SHOWN, 0),
        "api_url": f"/api/v1/environments/{environment_id}/sync-runs/{run.id}",
    }


def _done(response: Response) -> Response:
    """Have the page reload its list of runs (a failed run is listed too)."""
    response.headers["HX-Trigger"] = DONE_EVENT
    return response


@router.get("/environments/{id}/sync-runs/{run_id}", response_class=HTMLResponse)
async def sync_run(
    request: Request,
    run_id: str,
    access: Annotated[Access, Depends(Requirement(READ, "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """One run and each secret's result; while it runs, the page polls itself."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    run = await runs.detail(session, environment_id=env.id, run_id=runs.run_id_of(run_id))
    context = await environment_context(session, access, env, tab="sync")
    context["crumbs"] += [
        Crumb("Sync", f"{PREFIX}/environments/{env.id}/sync"),
        Crumb(run.created_at.strftime("%Y-%m-%d %H:%M:%S"), request.url.path),
    ]
    context["title"] = f"Sync run of {env.name}"
    return page(
        request,
        access,
        "dashboard/sync_run.html",
        **context,
        run=run,
        shown=items_shown(run, env.id),
        run_url=request.url.path,
        sync_url=f"{PREFIX}/environments/{env.id}/sync",
    )
