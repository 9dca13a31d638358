"""An environment's page: its secrets masked, one value revealed, a draft committed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kavach.server.access import Access
from kavach.server.dashboard.common import (
    PREFIX,
    READ,
    WRITE,
    environment_context,
)
from kavach.server.dashboard.pages import fragment, page
from kavach.server.deps import SessionDep, origin_of, runtime_of
from kavach.server.errors import Conflict, NotFound, ValidationFailed, VersionConflict
from kavach.server.iam.models import Environment
from kavach.server.rbac.deps import Admit, Admitted, Requirement
from kavach.server.secrets import service as secrets_service
from kavach.server.secrets.linking import ReferenceForbidden
from kavach.server.secrets.references import BrokenReference, ReferenceCycle
from kavach.server.secrets.schemas import CommitRequest, SecretsResponse
from kavach.server.wording import in_words

DRAFT_ROWS = 3

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_READER, _WRITER = Admitted(READ), Admitted(WRITE)


@router.get("/environments/{id}/", response_class=HTMLResponse)
async def environment(
    request: Request,
    access: Annotated[Access, Depends(Requirement(READ, "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """An environment's secrets, values masked (no value is read to draw this page)."""
    env, scope = access.resource, access.scope
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    version = await secrets_service.latest_version(session, environment_id=env.id)
    names = await secrets_service.secret_names(session, version=version) if version else []
    return page(
        request,
        access,
        "dashboard/environment.html",
        **await environment_context(session, access, env),
        version=version,
        names=names,
        **_change_context(env, version.id if version else None),
    )


def _change_context(env: Environment, parent: str | None, **more: Any) -> dict[str, Any]:
    draft = more.pop("draft", None) or []
    blanks = [{"name": "", "value": "", "action": "set"}] * max(DRAFT_ROWS - len(draft), 1)
    return {
        "commit_url": f"{PREFIX}/environments/{env.id}/versions",
        "parent_version": parent,
        "draft": [*draft, *blanks],
        **more,
    }


async def _review(session: Any, env: Environment, body: CommitRequest) -> list[dict[str, str]]:
    """Say what the draft would do to the latest version, by name (no value is read)."""
    version = await secrets_service.latest_version(session, environment_id=env.id)
    names = set(await secrets_service.secret_names(session, version=version)) if version else set()
    review = [
        {"name": name, "what": "replace its value" if name in names else "add"} for name in body.set
    ]
    review += [
        {"name": name, "what": "remove" if name in names else "nothing to remove: not set"}
        for name in body.unset
    ]
    return sorted(review, key=lambda change: change["name"])


@router.get("/environments/{id}/value", response_class=HTMLResponse)
async def reveal(
    request: Request, admitted: Annotated[Admit, Depends(_READER)], name: str
) -> Response:
    """One secret's value, read (and audited) as any read of the environment's secrets."""
    runtime, origin = runtime_of(request), origin_of(request)
    ticket, admission = admitted

    def only(found: SecretsResponse) -> Response:
        if name not in found.secrets:
            return fragment("dashboard/value.html", status_code=404, value="(no such secret)")
        return fragment("dashboard/value.html", value=found.secrets[name], name=name, copyable=True)

    try:
        return await runtime.secrets.read_latest(ticket, admission, origin, only)
    except (BrokenReference, ReferenceCycle, ReferenceForbidden) as unresolved:
        # The value pulls from a secret that is gone, goes round in a cycle, or that this
        # reader may not read.
        return fragment("dashboard/value.html", status_code=409, value=unresolved.message)


@router.post("/environments/{id}/versions", response_class=HTMLResponse)
async def commit(request: Request, admitted: Annotated[Admit, Depends(_WRITER)]) -> Response:
    """Commit the draft; a stale draft is kept and shows what changed meanwhile."""
    # No request session here: on SQLite, a transaction held open through the commit would
    # keep the store from writing (the API's commit route is built the same way).
    ticket, admission = admitted
    runtime = runtime_of(request)
    async with runtime.read_sessionmaker() as session:
        env = await session.get(Environment, admission.access.environment_id)
    if env is None:
        raise NotFound("environment not found")
    form = await request.form()
    rows = [
        {"name": str(n).strip(), "action": str(a), "value": str(v)}
        for n, a, v in zip(
            form.getlist("name"), form.getlist("action"), form.getlist("value"), strict=False
        )
        if str(n).strip()
    ]
    message = str(form.get("message") or "")
    parent = str(form.get("parent_version") or "") or None
    keep = {"draft": rows, "message": message}
    try:
        body = CommitRequest(
            message=message,
            set={r["name"]: r["value"] for r in rows if r["action"] != "unset"},
            unset=[r["name"] for r in rows if r["action"] == "unset"],
            parent_version=parent,
        )
    except ValidationError as error:
        refusal = (
            "The draft cannot be committed" if form.get("step") == "review" else "Not committed"
        )
        notice = {"kind": "bad", "text": f"{refusal}: {in_words(error.errors())}"}
        return fragment(
            "dashboard/change_form.html",
            status_code=422,
            **_change_context(env, parent, notice=notice, **keep),
        )
    if form.get("step") == "review":
        if not admission.checked:
            # What exists is read for the review: decided in the database, not the cache.
            await runtime.gate.recheck(ticket)
        async with runtime.read_sessionmaker() as session:
            review = await _review(session, env, body)
        return fragment(
            "dashboard/change_form.html", **_change_context(env, parent, review=review, **keep)
        )
    try:
        version = (
            await runtime.secrets.commit(ticket, admission, origin_of(request), body)
        ).version
    except VersionConflict as conflict:
        data = conflict.data or {}
        latest = data.get("latest_version") or {}
        meanwhile = {"seq": latest.get("seq"), "names": data.get("changed", [])}
        return fragment(
            "dashboard/change_form.html",
            status_code=409,
            **_change_context(env, latest.get("id"), changed_meanwhile=meanwhile, **keep),
        )
    except (ValidationFailed, Conflict, ReferenceForbidden) as refused:
        # A limit, a reference that does not resolve, or a removal others depend on.
        notice = {"kind": "bad", "text": f"Not committed: {refused.message}"}
        return fragment(
            "dashboard/change_form.html",
            status_code=409 if isinstance(refused, Conflict) else 422,
            **_change_context(env, parent, notice=notice, **keep),
        )
    response = fragment("dashboard/change_form.html", **_change_context(env, version.id))
    # The secrets' table above changed: reload the page to show the new version.
    response.headers["HX-Refresh"] = "true"
    return response
