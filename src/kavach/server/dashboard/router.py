"""The dashboard's pages: server-rendered, the browser's session cookie, the same use cases.

Every page declares its access as an API route does (`Requirement`, or `Admitted` for the
secrets), so the gate decides it; listings come from `iam.visibility` and secrets from
`secrets.usecases`, as the API's do. A page holds no rule of its own: what a role may not
do is hidden because the gate would refuse it, and refused if asked anyway.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from kavach.server.access import Access
from kavach.server.auth import flows as auth_flows
from kavach.server.auth import token_flows
from kavach.server.auth.browser import end_session
from kavach.server.auth.schemas import ServiceTokenCreate, ServiceTokenPublic
from kavach.server.dashboard.pages import Crumb, fragment, page, row_of
from kavach.server.deps import OriginDep, SessionDep, UserDep, origin_of, runtime_of
from kavach.server.errors import NotFound, ValidationFailed, VersionConflict
from kavach.server.iam import visibility as seen
from kavach.server.iam.models import Environment, Organization, SecretGroup
from kavach.server.pages import PageRequest
from kavach.server.rbac import members, pending
from kavach.server.rbac.deps import Admit, Admitted, Requirement
from kavach.server.rbac.policy import role_allows
from kavach.server.secrets import service as secrets_service
from kavach.server.secrets.flows import summary
from kavach.server.secrets.schemas import CommitRequest, SecretsResponse
from kavach.server.wording import in_words

PREFIX = "/ui"
READ, WRITE = "secret.read", "secret.write"
DRAFT_ROWS = 3

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_READER, _WRITER = Admitted(READ), Admitted(WRITE)


def _listing(request: Request) -> PageRequest:
    cursor = request.query_params.get("cursor")
    return PageRequest(limit=50, cursor=cursor[:512] if cursor else None)


def _next_url(request: Request, after: str | None) -> str | None:
    if after is None:
        return None
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    return f"{request.url.path}?{urlencode({**query, 'cursor': after})}"


@router.get("/", response_class=HTMLResponse)
async def organizations(
    request: Request,
    access: Annotated[Access, Depends(Requirement("org.list"))],
    session: SessionDep,
) -> HTMLResponse:
    """The organizations the caller sees."""
    query = None  # organizations are few per person: no search
    found, after = await seen.organizations(session, access.user.user.id, _listing(request))
    rows = [row_of(item.row, item.role, f"{PREFIX}/organizations/{item.row.id}") for item in found]
    return page(
        request,
        access,
        "dashboard/organizations.html",
        title="Organizations",
        items=rows,
        query=query,
        next_url=_next_url(request, after),
    )


@router.get("/organizations/{id}", response_class=HTMLResponse)
async def organization(
    request: Request,
    access: Annotated[Access, Depends(Requirement("group.read", "organization"))],
    session: SessionDep,
    name: str | None = None,
) -> HTMLResponse:
    """An organization's secret groups the caller sees."""
    org = access.resource
    assert isinstance(org, Organization)  # noqa: S101 - the requirement loads it
    query = (name or "").strip()[:63] or None
    found, after = await seen.secret_groups(
        session, access.user.user.id, org.id, _listing(request), query
    )
    rows = [row_of(item.row, item.role, f"{PREFIX}/secret-groups/{item.row.id}") for item in found]
    return page(
        request,
        access,
        "dashboard/children.html",
        title=org.name,
        heading=org.name,
        crumbs=[Crumb(org.name, request.url.path)],
        kind_plural="secret groups",
        parent_kind="organization",
        role=access.role,
        items=rows,
        query=query,
        next_url=_next_url(request, after),
    )


@router.get("/secret-groups/{id}", response_class=HTMLResponse)
async def secret_group(
    request: Request,
    access: Annotated[Access, Depends(Requirement("env.read", "secret_group"))],
    session: SessionDep,
    name: str | None = None,
) -> HTMLResponse:
    """A secret group's environments the caller sees."""
    group, scope = access.resource, access.scope
    assert isinstance(group, SecretGroup)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    org = await session.get(Organization, scope.organization_id)
    query = (name or "").strip()[:63] or None
    found, after = await seen.environments(
        session, access.user.user.id, scope, _listing(request), query
    )
    rows = [row_of(item.row, item.role, f"{PREFIX}/environments/{item.row.id}/") for item in found]
    crumbs = [Crumb(org.name if org else "?", f"{PREFIX}/organizations/{scope.organization_id}")]
    return page(
        request,
        access,
        "dashboard/children.html",
        title=group.name,
        heading=group.name,
        crumbs=[*crumbs, Crumb(group.name, request.url.path)],
        kind_plural="environments",
        parent_kind="secret group",
        role=access.role,
        items=rows,
        query=query,
        next_url=_next_url(request, after),
    )


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
        **await _environment_context(session, request, access, env),
        version=version,
        names=names,
        **_change_context(env, version.id if version else None),
    )


async def _environment_context(
    session: Any, request: Request, access: Access, env: Environment
) -> dict[str, Any]:
    scope = access.scope
    assert scope is not None  # noqa: S101
    org = await session.get(Organization, scope.organization_id)
    group = await session.get(SecretGroup, scope.secret_group_id)
    crumbs = [
        Crumb(org.name if org else "?", f"{PREFIX}/organizations/{scope.organization_id}"),
        Crumb(group.name if group else "?", f"{PREFIX}/secret-groups/{scope.secret_group_id}"),
        Crumb(env.name, f"{PREFIX}/environments/{env.id}/"),
    ]
    return {
        "title": env.name,
        "heading": env.name,
        "crumbs": crumbs,
        "role": access.role,
        "can_write": _may(access, WRITE),
        "can_see_access": _may(access, "members.read"),
        "can_see_tokens": _may(access, "token.read"),
        "env_id": env.id,
    }


def _change_context(env: Environment, parent: str | None, **more: Any) -> dict[str, Any]:
    draft = more.pop("draft", None) or []
    blanks = [{"name": "", "value": "", "action": "set"}] * max(DRAFT_ROWS - len(draft), 1)
    return {
        "commit_url": f"{PREFIX}/environments/{env.id}/versions",
        "parent_version": parent,
        "draft": [*draft, *blanks],
        **more,
    }


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
        return fragment("dashboard/value.html", value=found.secrets[name])

    return await runtime.secrets.read_latest(ticket, admission, origin, only)


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
        notice = {"kind": "bad", "text": f"Not committed: {in_words(error.errors())}"}
        return fragment(
            "dashboard/change_form.html",
            status_code=422,
            **_change_context(env, parent, notice=notice, **keep),
        )
    try:
        version = await runtime.secrets.commit(ticket, admission, origin_of(request), body)
    except VersionConflict as conflict:
        data = conflict.data or {}
        latest = data.get("latest_version") or {}
        meanwhile = {"seq": latest.get("seq"), "names": data.get("changed", [])}
        return fragment(
            "dashboard/change_form.html",
            status_code=409,
            **_change_context(env, latest.get("id"), changed_meanwhile=meanwhile, **keep),
        )
    except ValidationFailed as refused:
        notice = {"kind": "bad", "text": f"Not committed: {refused.message}"}
        return fragment(
            "dashboard/change_form.html",
            status_code=422,
            **_change_context(env, parent, notice=notice, **keep),
        )
    response = fragment("dashboard/change_form.html", **_change_context(env, version.id))
    # The secrets' table above changed: reload the page to show the new version.
    response.headers["HX-Refresh"] = "true"
    return response


@router.post("/sign-out")
async def sign_out(principal: UserDep, session: SessionDep, origin: OriginDep) -> Response:
    """End the browser's session and go to the sign-in page."""
    await auth_flows.logout(
        session, user=principal.user, login=principal.login_session, origin=origin
    )
    response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    end_session(response)
    return response


@router.get("/environments/{id}/history", response_class=HTMLResponse)
async def history(
    request: Request,
    access: Annotated[Access, Depends(Requirement(READ, "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> HTMLResponse:
    """Versions newest first; the names two of them differ by; rollback for writers."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    versions, after = await secrets_service.list_versions(
        session, environment_id=env.id, request=_listing(request)
    )
    picked = {k: request.query_params.get(k) for k in ("from", "to")}
    compared = None
    if picked["to"]:
        compared = await runtime_of(request).secrets.diff(
            session,
            access,
            origin,
            from_id=picked["from"] or None,
            to_id=picked["to"],
            reveal=False,  # names only: values are revealed one at a time, audited
        )
    context = await _environment_context(session, request, access, env)
    context["crumbs"].append(Crumb("History", request.url.path))
    return page(
        request,
        access,
        "dashboard/history.html",
        **context,
        versions=[summary(v) for v in versions],
        compared=compared,
        rollback_url=f"{PREFIX}/environments/{env.id}/rollback",
        next_url=_next_url(request, after),
    )


@router.post("/environments/{id}/rollback", response_class=HTMLResponse)
async def rollback(
    request: Request,
    access: Annotated[Access, Depends(Requirement(WRITE, "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Make a new version equal to an older one, with a message."""
    form = await request.form()
    version_id = str(form.get("version_id") or "")
    message = str(form.get("message") or "").strip()
    if not version_id or not message:
        raise ValidationFailed("a rollback needs the version and a commit message")
    await runtime_of(request).secrets.rollback(
        session, access, origin, version_id=version_id, message=message[:500]
    )
    target = f"{PREFIX}/environments/{access.environment_id}/history"
    return Response(status_code=204, headers={"HX-Redirect": target})


@router.get("/environments/{id}/access", response_class=HTMLResponse)
async def environment_access(
    request: Request,
    access: Annotated[Access, Depends(Requirement("members.read", "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """Who holds which role here: direct, or inherited from the group or organization."""
    env, scope = access.resource, access.scope
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    assert scope is not None  # noqa: S101
    held = await members.describe(session, scope=scope, request=_listing(request))
    invited = await pending.describe(session, scope=scope, request=PageRequest(limit=100))
    context = await _environment_context(session, request, access, env)
    context["crumbs"].append(Crumb("Access", request.url.path))
    return page(
        request,
        access,
        "dashboard/access.html",
        **context,
        members=held.items,
        invites=invited.items,
        next_url=_next_url(request, held.next),
    )


TOKEN_DAYS = (1, 7, 30, 90)


@router.get("/environments/{id}/tokens", response_class=HTMLResponse)
async def tokens(
    request: Request,
    access: Annotated[Access, Depends(Requirement("token.read", "environment"))],
    session: SessionDep,
) -> HTMLResponse:
    """The environment's service tokens (workloads' included), and a form to make one."""
    env = access.resource
    assert isinstance(env, Environment)  # noqa: S101 - the requirement loads it
    found, after = await token_flows.page_of(session, env.id, _listing(request), None)
    context = await _environment_context(session, request, access, env)
    context["crumbs"].append(Crumb("Tokens", request.url.path))
    return page(
        request,
        access,
        "dashboard/tokens.html",
        **context,
        tokens=[ServiceTokenPublic.model_validate(t) for t in found],
        can_create=_may(access, "token.create"),
        can_revoke=_may(access, "token.revoke"),
        days=TOKEN_DAYS,
        next_url=_next_url(request, after),
    )


def _may(access: Access, action: str) -> bool:
    """Say whether the caller's role here grants an action (to show its controls)."""
    return access.role is not None and role_allows(access.role, action)


@router.post("/environments/{id}/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    access: Annotated[Access, Depends(Requirement("token.create", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Make a token and show its secret this once."""
    form = await request.form()
    days = str(form.get("days") or "30")
    try:
        body = ServiceTokenCreate(
            name=str(form.get("name") or ""),
            role=str(form.get("role") or "viewer"),
            expires_in=int(days) * 86_400 if days.isdigit() else 0,
        )
    except ValidationError as error:
        return fragment(
            "dashboard/token_made.html", status_code=422, problem=in_words(error.errors())
        )
    token, secret = await token_flows.create(session, access, origin, body)
    return fragment("dashboard/token_made.html", token=token, secret=secret)


@router.post("/environments/{id}/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(
    token_id: str,
    access: Annotated[Access, Depends(Requirement("token.revoke", "environment"))],
    session: SessionDep,
    origin: OriginDep,
) -> Response:
    """Revoke a token; it stops working at once."""
    await token_flows.revoke(session, access, origin, token_id)
    return Response(status_code=204, headers={"HX-Refresh": "true"})
