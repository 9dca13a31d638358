"""Sync an environment version to a provider: plan, lock the target, apply, record.

`audited_sync` is what the API's route and the dashboard's page both call.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.errors import ProviderError, ValidationFailed
from kavach.server.providers import service as providers
from kavach.server.providers.base import RemoteSecret, SyncProvider
from kavach.server.providers.egress import Egress
from kavach.server.runtime import Runtime
from kavach.server.secrets import linking
from kavach.server.secrets import service as secrets
from kavach.server.secrets.usecases import source_events
from kavach.server.sync import ledger, runs
from kavach.server.sync.apply import Outcome, apply, retrying
from kavach.server.sync.locks import target_lock
from kavach.server.sync.plan import DELETE, make_plan, map_names, value_hmac
from kavach.server.sync.schemas import SyncRequest, SyncRunDetail


async def _list_remote(provider: SyncProvider, runtime: Runtime) -> dict[str, RemoteSecret]:
    async def once() -> dict[str, RemoteSecret]:
        return await provider.list_remote()

    found: dict[str, RemoteSecret] = await retrying(runtime.settings)(once)
    return found


async def sync(
    runtime: Runtime,
    session: AsyncSession,
    *,
    environment_id: uuid.UUID,
    request: SyncRequest,
    access: Access,
    origin: RequestOrigin,
) -> SyncRunDetail:
    """Run (or, with dry_run, only plan) a sync, recording the run and each secret's result.

    What is pushed is the version's values with their references resolved (for the caller,
    who must be able to read every environment they pull from); the run records the
    revision it pushed, which tells later whether the target is out of date.
    """
    actor = access.principal.actor
    record = await providers.find(session, environment_id=environment_id, provider=request.provider)
    key = runtime.keys.provider_credential_key
    provider = providers.build(
        record, key=key, http=runtime.http, egress=Egress.of(runtime.settings)
    )
    try:
        version = (
            await secrets.get_version(
                session, environment_id=environment_id, version_id=request.version_id
            )
            if request.version_id
            else await secrets.latest_version(session, environment_id=environment_id)
        )
        if version is None:
            raise ValidationFailed("nothing to sync: this environment has no versions yet")
        # Of the version read, its references as of now, taken before the values: a change
        # to a source in between leaves the target out of date, never wrongly up to date.
        revision = (
            await linking.revision_now(session, environment_id, version.seq, version.links)
            if request.version_id is None
            else None
        )
        stored = await secrets.read_values(session, runtime.secret_keys, version=version)
        pinned = request.version_id is not None
        resolved = await runtime.secrets.resolved(
            access, version, stored, pinned=pinned, session=session
        )
        values = resolved.values
        # The environments the references pulled from were read: each gets its read event.
        pulled = source_events(origin, resolved)
        if pulled:
            await audit.append(session, pulled)
        mapped = map_names(sorted(values), provider.remote_name)
        target = provider.target_key()
        owned = await ledger.load(session, environment_id=environment_id, target=target)
        # No transaction stays open while the target is called (locks, idle connections).
        await session.commit()
        async with target_lock(runtime, target):
            run = runs.new_run(
                environment_id=environment_id,
                provider=request.provider,
                target=target,
                version_id=version.id,
                revision=revision,
                dry_run=request.dry_run,
                prune=request.prune,
                adopt=request.adopt,
                actor=actor,
            )
            try:
                remote = await _list_remote(provider, runtime)
            except ProviderError as error:
                _count(runtime, record.provider, "failed")
                await runs.start(runtime.sessionmaker, run=run, items=[])
                await runs.finish(
                    runtime.sessionmaker,
                    run_id=run.id,
                    status="failed",
                    outcomes=[],
                    error=error.message,
                )
                raise
            items = make_plan(
                values=values,
                mapped=mapped,
                remote=remote,
                ledger=owned,
                hmac_of=lambda remote_name, value: value_hmac(key, target, remote_name, value),
                prune=request.prune,
                adopt=request.adopt,
            )
            await runs.start(runtime.sessionmaker, run=run, items=items)
            if request.dry_run:
                _count(runtime, record.provider, "dry_run")
            else:
                outcomes = await apply(
                    provider,
                    items,
                    runtime.settings,
                    lambda outcome: _record(runtime, environment_id, target, run.id, outcome),
                )
                status = runs.final_status(items, outcomes)
                _count(runtime, record.provider, status)
                await runs.finish(
                    runtime.sessionmaker, run_id=run.id, status=status, outcomes=outcomes
                )
    finally:
        await provider.aclose()
    return await runs.detail(session, environment_id=environment_id, run_id=run.id)


async def audited_sync(
    runtime: Runtime,
    session: AsyncSession,
    access: Access,
    origin: RequestOrigin,
    request: SyncRequest,
) -> SyncRunDetail:
    """Sync (or plan) for an admitted caller and record the `secret.sync` event.

    A run the target failed is recorded too, as a failure (the error keeps what was written).
    """
    try:
        result = await sync(
            runtime,
            session,
            environment_id=access.environment_id,
            request=request,
            access=access,
            origin=origin,
        )
    except ProviderError as error:
        await audit.record(
            session,
            actor=access.principal.actor,
            action="secret.sync",
            outcome="failure",
            origin=origin,
            resource_type="environment",
            resource_id=str(access.environment_id),
            details={
                "provider": request.provider,
                "status": "failed",
                "dry_run": request.dry_run,
                "error": error.error_code,
            },
        )
        raise
    await audit.record(
        session,
        actor=access.principal.actor,
        action="secret.sync",
        origin=origin,
        resource_type="environment",
        resource_id=str(access.environment_id),
        details={
            "provider": request.provider,
            "run_id": str(result.id),
            "status": result.status,
            "version_id": result.version_id,
            "dry_run": request.dry_run,
            "prune": request.prune,
            "adopt": request.adopt,
            "counts": result.counts,
        },
    )
    return result


def _count(runtime: Runtime, provider: str, outcome: str) -> None:
    """Count a sync run by provider kind and outcome (succeeded, partial, failed, dry_run)."""
    if runtime.metrics is not None:
        runtime.metrics.sync_runs.labels(provider, outcome).inc()


async def _record(
    runtime: Runtime,
    environment_id: uuid.UUID,
    target: str,
    run_id: uuid.UUID,
    outcome: Outcome,
) -> None:
    """Commit one item's result and, when it worked, the ledger, right away."""
    item = outcome.item
    async with runtime.sessionmaker() as session, session.begin():
        if outcome.ok and item.action == DELETE:
            await ledger.record_delete(
                session,
                environment_id=environment_id,
                target=target,
                remote_name=item.remote_name,
            )
        elif outcome.ok:
            assert item.value_hmac is not None  # noqa: S101 - writes carry their hash
            await ledger.record_write(
                session,
                environment_id=environment_id,
                target=target,
                remote_name=item.remote_name,
                name=item.name,
                value_hmac=item.value_hmac,
            )
        await runs.item_done(session, run_id=run_id, outcome=outcome)
