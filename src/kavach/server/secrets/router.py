"""HTTP routes for an environment's secrets: read, commit, versions, diff, rollback, history.

Each route is thin: it names what it asks the gate for and hands the request to the use
cases (secrets.usecases). The two hottest (the latest secrets, a commit) take only the
request and their declared input, so FastAPI solves no dependencies for them; the others
are admitted through `Requirement`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.deps import (
    OriginDep,
    RuntimeDep,
    SessionDep,
    origin_of,
    runtime_of,
)
from kavach.server.rbac.deps import Admit, Admitted, Requirement
from kavach.server.secrets import service
from kavach.server.secrets.flows import summary
from kavach.server.secrets.schemas import (
    CommitRequest,
    DiffResponse,
    HistoryEntry,
    RollbackRequest,
    SecretName,
    SecretsResponse,
    VersionDetail,
    VersionId,
    VersionPage,
    VersionSummary,
)
from kavach.server.secrets.usecases import READ, WRITE

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}/secrets", tags=["secrets"])
# Version numbers are a 32-bit column; a larger bound is not a query the database can run.
MAX_SEQ = 2**31 - 1
Reader = Annotated[Access, Depends(Requirement(READ, "environment", cached=True))]
Writer = Annotated[Access, Depends(Requirement(WRITE, "environment", cached=True))]
# The hot routes declare the bearer scheme here: no dependency of theirs declares it.
_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def _json(body: Envelope[Any], status: int = 200) -> Response:
    """Return an envelope as JSON, serialised by its model (no second validation)."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _json_of(found: SecretsResponse) -> Response:
    return _json(ok(found))


async def read_secrets(
    request: Request,
    admitted: Annotated[Admit, Depends(Admitted(READ))],
    version: Annotated[VersionId | None, Query()] = None,
) -> Response:
    """Return the latest secrets with values, or those of ?version=ID."""
    use_cases, origin = runtime_of(request).secrets, origin_of(request)
    ticket, admission = admitted
    if version:
        return _json(ok(await use_cases.read_at(ticket, origin, version)))
    render = _json_of
    return await use_cases.read_latest(ticket, admission, origin, render)


router.add_api_route(
    "",
    read_secrets,
    methods=["GET"],
    response_model=Envelope[SecretsResponse],
    openapi_extra=_BEARER,
)


async def commit_version(
    request: Request, admitted: Annotated[Admit, Depends(Admitted(WRITE))], body: CommitRequest
) -> Response:
    """Commit a change (set/unset) or a snapshot (replace); 409 if parent_version is stale."""
    ticket, admission = admitted
    use_cases = runtime_of(request).secrets
    version = await use_cases.commit(ticket, admission, origin_of(request), body)
    return _json(ok(summary(version)), status=201)


router.add_api_route(
    "/versions",
    commit_version,
    methods=["POST"],
    status_code=201,
    response_model=Envelope[VersionSummary],
    openapi_extra=_BEARER,
)


@router.get("/versions", response_model=Envelope[VersionPage])
async def list_versions(
    access: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_SEQ, description="a seq: versions older than it")
    ] = None,
) -> Envelope[VersionPage]:
    """List versions newest first, with author and secret count; page with ?before=SEQ."""
    env_id = access.environment_id
    versions = await service.list_versions(
        session, environment_id=env_id, limit=limit, before_seq=before
    )
    total = await service.count_versions(session, environment_id=env_id)
    more = bool(versions) and versions[-1].seq > 1
    return ok(
        VersionPage(
            versions=[summary(v) for v in versions],
            total=total,
            next_before=versions[-1].seq if more else None,
        )
    )


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
    version_id: str,
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[VersionDetail]:
    """Return one version of this environment with its values."""
    return ok(await runtime.secrets.read_version(session, access, origin, version_id))


@router.get("/diff", response_model=Envelope[DiffResponse])
async def diff_versions(
    access: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
    from_: Annotated[VersionId | None, Query(alias="from")] = None,
    to: Annotated[VersionId | None, Query()] = None,
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
