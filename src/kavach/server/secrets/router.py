"""HTTP routes for an environment's secrets: read, commit, versions, diff, rollback, history.

Each route is thin: it names what it asks the gate for and hands the request to the use
cases (secrets.usecases). The two hottest (the latest secrets, a commit) are declared like
the others but served by a handler that asks the gate and reads the declared input itself
(api.direct_route), sparing FastAPI's per-request dependency solving; the others are
admitted through `Requirement`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import TypeAdapter
from starlette.responses import Response

from kavach.server import stopping
from kavach.server.access import Access
from kavach.server.api import (
    API_PREFIX,
    Envelope,
    api_router,
    body_of,
    direct_route,
    ok,
    query_value,
)
from kavach.server.deps import (
    OriginDep,
    RuntimeDep,
    SessionDep,
    origin_of,
    runtime_of,
)
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.rbac.deps import Admit, Admitted, Requirement
from kavach.server.secrets import service
from kavach.server.secrets.changes import (
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    Gone,
    next_change,
)
from kavach.server.secrets.flows import summary
from kavach.server.secrets.schemas import (
    Changes,
    CommitRequest,
    CommittedVersion,
    DiffResponse,
    HistoryEntry,
    Revision,
    RollbackRequest,
    SecretName,
    SecretNames,
    SecretsResponse,
    VersionDetail,
    VersionRef,
    VersionSummary,
)
from kavach.server.secrets.usecases import READ, WRITE

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}/secrets", tags=["secrets"])
# The change feed sits beside the secrets, on the environment itself.
feed_router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}", tags=["secrets"])
# Version numbers are a 32-bit column; a larger bound is not a query the database can run.
Reader = Annotated[Access, Depends(Requirement(READ, "environment", cached=True))]
Writer = Annotated[Access, Depends(Requirement(WRITE, "environment", cached=True))]
# The hot routes declare the bearer scheme here: no dependency of theirs declares it.
_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def _json(body: Envelope[Any], status: int = 200) -> Response:
    """Return an envelope as JSON, serialised by its model (no second validation)."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _json_of(found: SecretsResponse) -> Response:
    return _json(ok(found))


_READER, _WRITER = Admitted(READ), Admitted(WRITE)
_VERSION_REF: TypeAdapter[str] = TypeAdapter(VersionRef)
_FLAG: TypeAdapter[bool] = TypeAdapter(bool)
Resolve = Annotated[
    bool,
    Query(
        description="Resolve references (${NAME}, ${env.NAME}, ${group.env.NAME}); false: "
        "the stored text."
    ),
]


async def read_secrets(
    request: Request,
    admitted: Annotated[Admit, Depends(_READER)],
    version: Annotated[VersionRef | None, Query()] = None,
    resolve: Resolve = True,
) -> Response:
    """Return the latest secrets with values, or those of ?version=ID, N, vN or latest~N."""
    use_cases, origin = runtime_of(request).secrets, origin_of(request)
    ticket, admission = admitted
    if version:
        return _json(ok(await use_cases.read_at(ticket, origin, version, resolve=resolve)))
    return await use_cases.read_latest(ticket, admission, origin, _json_of, resolve=resolve)


async def _serve_read(request: Request) -> Response:
    """Serve read_secrets as declared, without FastAPI's dependency solving."""
    admitted = await _READER(request)
    version = query_value(request, "version", _VERSION_REF)
    resolve = query_value(request, "resolve", _FLAG)
    return await read_secrets(request, admitted, version, True if resolve is None else resolve)


router.add_api_route(
    "",
    read_secrets,
    methods=["GET"],
    response_model=Envelope[SecretsResponse],
    openapi_extra=_BEARER,
    route_class_override=direct_route(_serve_read),
)


async def commit_version(
    request: Request, admitted: Annotated[Admit, Depends(_WRITER)], body: CommitRequest
) -> Response:
    """Commit a change (set/unset) or a snapshot (replace); 409 if parent_version is stale."""
    ticket, admission = admitted
    use_cases = runtime_of(request).secrets
    committed = await use_cases.commit(ticket, admission, origin_of(request), body)
    described = summary(committed.version)
    if committed.broken:
        found = CommittedVersion(**dict(described), broken_references=committed.broken)
        return _json(ok(found), status=201)
    return _json(ok(described), status=201)


async def _serve_commit(request: Request) -> Response:
    """Serve commit_version as declared, without FastAPI's dependency solving."""
    admitted = await _WRITER(request)
    return await commit_version(request, admitted, await body_of(request, CommitRequest))


router.add_api_route(
    "/versions",
    commit_version,
    methods=["POST"],
    status_code=201,
    response_model=Envelope[CommittedVersion],
    openapi_extra=_BEARER,
    route_class_override=direct_route(_serve_commit),
)


@router.get("/versions", response_model=Envelope[Page[VersionSummary]])
async def list_versions(
    access: Reader, session: SessionDep, page: PageDep
) -> Envelope[Page[VersionSummary]]:
    """List versions newest first, with author and secret count."""
    versions, after = await service.list_versions(
        session, environment_id=access.environment_id, request=page
    )
    return ok(Page(items=[summary(v) for v in versions], next=after))


@router.get("/names", response_model=Envelope[SecretNames])
async def secret_names(access: Reader, session: SessionDep) -> Envelope[SecretNames]:
    """Return the names in the latest version (no value is read: for completion, listings)."""
    version = await service.latest_version(session, environment_id=access.environment_id)
    if version is None:
        return ok(SecretNames(version=None, names=[]))
    names = await service.secret_names(session, version=version)
    return ok(SecretNames(version=summary(version), names=names))


@router.get("/{name}/history", response_model=Envelope[list[HistoryEntry]])
async def secret_history(
    name: SecretName,
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
    reveal: bool = False,
) -> Envelope[list[HistoryEntry]]:
    """Return one secret's changes across versions, newest first (values with reveal)."""
    # Declared before /versions/{version_id}: a secret may be named "versions", and a
    # version id (8 characters) is never "history".
    entries = await runtime.secrets.history(session, access, origin, name=name, reveal=reveal)
    return ok(entries)


@router.get("/versions/{version_id}", response_model=Envelope[VersionDetail])
async def get_version(
    version_id: Annotated[VersionRef, Path()],
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[VersionDetail]:
    """Return one version (by id, N, vN, latest or latest~N) with its values."""
    return ok(await runtime.secrets.read_version(session, access, origin, version_id))


@router.get("/diff", response_model=Envelope[DiffResponse])
async def diff_versions(
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
    from_: Annotated[VersionRef | None, Query(alias="from")] = None,
    to: Annotated[VersionRef | None, Query()] = None,
    reveal: bool = False,
) -> Envelope[DiffResponse]:
    """Compare two versions (default: latest against its parent); values only with reveal."""
    result = await runtime.secrets.diff(
        session, access, origin, from_id=from_, to_id=to, reveal=reveal
    )
    return ok(result)


@router.post("/rollback", status_code=201, response_model=Envelope[VersionSummary])
async def rollback(
    body: RollbackRequest,
    access: Writer,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[VersionSummary]:
    """Create a new version equal to an older one."""
    version = await runtime.secrets.rollback(
        session, access, origin, version_id=body.version_id, message=body.commit_message
    )
    return ok(summary(version))


def _gone(request: Request) -> Gone:
    """Return what ends a long wait early: the client hung up, or the server is stopping."""

    async def gone() -> bool:
        return stopping.asked() or await request.is_disconnected()

    return gone


@feed_router.get("/changes", response_model=Envelope[Changes])
async def changes(
    request: Request,
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    after: Annotated[Revision | None, Query()] = None,
    wait: Annotated[
        float, Query(alias="timeout", ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)
    ] = DEFAULT_WAIT_SECONDS,
) -> Envelope[Changes]:
    """Return the environment's revision once it differs from `after` (a long poll).

    Without `after`, or when it is not the current revision, at once; otherwise when the
    revision moves (a commit through any server on this database) or after `timeout`
    seconds, with `changed: false`.
    """
    found = await next_change(
        session,
        runtime.read_sessionmaker,
        access.environment_id,
        after=after,
        wait=min(wait, runtime.settings.changes_max_wait),
        poll_interval=runtime.settings.changes_poll_interval,
        gone=_gone(request),
    )
    return ok(found)
