"""HTTP routes for an environment's secrets: read, commit, versions, diff, rollback, history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from kavach.server.api import API_PREFIX, Envelope, api_router, ok, with_fast_path
from kavach.server.audit import service as audit
from kavach.server.audit.service import RequestOrigin
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep, origin_of, runtime_of
from kavach.server.errors import CannotDecrypt
from kavach.server.rbac.deps import Access, Requirement
from kavach.server.runtime import Runtime
from kavach.server.secrets import fast, fast_commit, flows, service
from kavach.server.secrets.events import commit_event, environment_event, read_event
from kavach.server.secrets.flows import summary
from kavach.server.secrets.models import SecretVersion
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

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}/secrets", tags=["secrets"])
# Version numbers are a 32-bit column; a larger bound is not a query the database can run.
MAX_SEQ = 2**31 - 1
Reader = Annotated[Access, Depends(Requirement("secret.read", "environment", cached=True))]
Writer = Annotated[Access, Depends(Requirement("secret.write", "environment", cached=True))]


async def _record_read(
    session: SessionDep,
    runtime: Runtime,
    access: Access,
    origin: RequestOrigin,
    version_id: str | None,
    what: str,
    failure: CannotDecrypt | None = None,
) -> None:
    """Audit a read of secret values (or its failure) before answering.

    The read's own transaction ends first: the event commits with other requests' events
    (see audit.batch), and on SQLite this transaction would otherwise hold the write lock
    the batch needs.
    """
    await session.commit()
    event = read_event(access, origin, version_id, what, failure=failure)
    await runtime.audit_batcher.record(event)


@asynccontextmanager
async def _failed_reads_recorded(
    session: SessionDep,
    runtime: Runtime,
    access: Access,
    origin: RequestOrigin,
    what: str,
    *,
    values_read: bool = True,
) -> AsyncIterator[None]:
    """Record a failed read event when the values of a read do not decrypt."""
    try:
        yield
    except CannotDecrypt as failure:
        if values_read:
            await _record_read(session, runtime, access, origin, failure.version_id, what, failure)
        raise


async def _read_latest_fast(request: Request) -> Response | None:
    """Serve the latest secrets the lean way when it applies (see secrets.fast)."""
    found = await fast.read_latest(request)
    if found is None:
        return None
    version = found.version
    version_id = version.id if version else None
    batcher = runtime_of(request).audit_batcher
    try:
        # Before the event: its outcome is whether the values decrypt.
        values = found.values()
    except CannotDecrypt as failure:
        event = read_event(found.access, origin_of(request), version_id, "secrets", failure=failure)
        await batcher.record(event)
        raise
    event = read_event(found.access, origin_of(request), version_id, "secrets")
    committed = batcher.submit(event)
    try:
        if not batcher.committing:
            # Let the event's batch go out, then build the answer while it commits: it is
            # still sent only once the event is committed.
            await asyncio.sleep(0)
        described = summary(version) if version else None
        answer = _answer(ok(SecretsResponse(version=described, secrets=values)))
    finally:
        await committed
    return answer


async def _commit_fast(request: Request) -> Response | None:
    """Commit the lean way when it applies (see secrets.fast_commit)."""
    version = await fast_commit.commit(request)
    if version is None:
        return None
    return _answer(ok(summary(version)), status=201)


def _answer(body: Envelope[Any], status: int = 200) -> Response:
    """Return a lean path's envelope as the general path's JSON answer."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


async def read_secrets(
    access: Reader,
    session: SessionDep,
    request: Request,
    version: Annotated[VersionId | None, Query()] = None,
) -> Envelope[SecretsResponse]:
    """Return the latest secrets with values, or those of ?version=ID."""
    runtime, origin = runtime_of(request), origin_of(request)
    env_id = access.environment_id
    found: SecretVersion | None
    async with _failed_reads_recorded(session, runtime, access, origin, "secrets"):
        if version:
            found = await service.get_version(session, environment_id=env_id, version_id=version)
            values = await service.read_values(session, runtime.secret_keys, version=found)
        else:
            found, values = await service.read_latest(
                session, runtime.secret_keys, environment_id=env_id
            )
    await _record_read(session, runtime, access, origin, found.id if found else None, "secrets")
    return ok(SecretsResponse(version=summary(found) if found else None, secrets=values))


router.add_api_route(
    "",
    read_secrets,
    methods=["GET"],
    response_model=Envelope[SecretsResponse],
    route_class_override=with_fast_path(_read_latest_fast),
)


async def commit_version(
    body: CommitRequest,
    access: Writer,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[VersionSummary]:
    """Commit a change (set/unset) or a snapshot (replace); 409 if parent_version is stale."""
    version = await flows.commit(
        session,
        runtime.secret_keys,
        runtime.settings,
        env_id=access.environment_id,
        request=body,
        author=access.principal.actor,
    )
    # In the commit's transaction: both or neither.
    await audit.append(session, [commit_event(access, origin, version, body)])
    return ok(summary(version))


router.add_api_route(
    "/versions",
    commit_version,
    methods=["POST"],
    status_code=201,
    response_model=Envelope[VersionSummary],
    route_class_override=with_fast_path(_commit_fast),
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
    what = f"history:{name}"
    async with _failed_reads_recorded(session, runtime, access, origin, what, values_read=reveal):
        entries = await flows.history(
            session, runtime.secret_keys, env_id=access.environment_id, name=name, reveal=reveal
        )
    if reveal:
        await _record_read(session, runtime, access, origin, None, what)
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
    version = await service.get_version(
        session, environment_id=access.environment_id, version_id=version_id
    )
    async with _failed_reads_recorded(session, runtime, access, origin, "version"):
        values = await service.read_values(session, runtime.secret_keys, version=version)
    await _record_read(session, runtime, access, origin, version.id, "version")
    return ok(VersionDetail(**summary(version).model_dump(), secrets=values))


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
    async with _failed_reads_recorded(session, runtime, access, origin, "diff", values_read=reveal):
        result = await flows.compare(
            session,
            runtime.secret_keys,
            env_id=access.environment_id,
            from_id=from_,
            to_id=to,
            reveal=reveal,
        )
    if reveal:
        await _record_read(session, runtime, access, origin, result.to_version.id, "diff")
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
    version = await flows.rollback(
        session,
        runtime.secret_keys,
        env_id=access.environment_id,
        version_id=body.version_id,
        message=body.commit_message,
        author=access.principal.actor,
    )
    details = {"version_id": version.id, "rollback_of": body.version_id}
    await audit.append(session, [environment_event(access, origin, "secret.rollback", details)])
    return ok(summary(version))
