"""HTTP routes for an environment's provider configurations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kavach.server.access import Access
from kavach.server.api import API_PREFIX, Envelope, api_router, ok
from kavach.server.audit import service as audit
from kavach.server.deps import OriginDep, RuntimeDep, SessionDep
from kavach.server.errors import ProviderError
from kavach.server.iam.schemas import Removed
from kavach.server.page_query import PageDep
from kavach.server.pages import Page
from kavach.server.providers import service
from kavach.server.providers.egress import Egress
from kavach.server.providers.schemas import (
    ProviderCreate,
    ProviderPublic,
    ProviderTestResult,
    ProviderUpdate,
)
from kavach.server.rbac.deps import Requirement

router = api_router(prefix=f"{API_PREFIX}/environments/{{id}}/providers", tags=["providers"])
Viewer = Annotated[Access, Depends(Requirement("provider.read", "environment"))]
Manager = Annotated[Access, Depends(Requirement("provider.manage", "environment"))]


async def _audit(
    session: SessionDep,
    access: Access,
    origin: OriginDep,
    action: str,
    provider: str,
    **details: object,
) -> None:
    """Record an event on the environment, naming which of its providers it concerns."""
    env_id = access.environment_id
    await audit.record_request(
        session, access, origin, action, "environment", env_id, provider=provider, **details
    )


@router.get("/", response_model=Envelope[Page[ProviderPublic]])
async def list_providers(
    access: Viewer, session: SessionDep, page: PageDep
) -> Envelope[Page[ProviderPublic]]:
    """List the environment's sync targets (config only, never credentials)."""
    records, after = await service.list_for(
        session, environment_id=access.environment_id, request=page
    )
    return ok(Page(items=[service.public(record) for record in records], next=after))


@router.post("/", status_code=201, response_model=Envelope[ProviderPublic])
async def configure_provider(
    body: ProviderCreate,
    access: Manager,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[ProviderPublic]:
    """Configure a sync target; credentials are encrypted and never returned."""
    record = await service.create(
        session,
        key=runtime.keys.provider_credential_key,
        environment_id=access.environment_id,
        provider=body.provider,
        config=body.config,
        credentials=body.credentials,
        creator=access.user.user.id,
        egress=Egress.of(runtime.settings),
    )
    await _audit(
        session,
        access,
        origin,
        "provider.configure",
        body.provider,
        config_fields=sorted(record.config),
    )
    return ok(service.public(record))


@router.get("/{provider}", response_model=Envelope[ProviderPublic])
async def get_provider(
    provider: str, access: Viewer, session: SessionDep
) -> Envelope[ProviderPublic]:
    """Return one provider configuration."""
    record = await service.find(session, environment_id=access.environment_id, provider=provider)
    return ok(service.public(record))


@router.patch("/{provider}", response_model=Envelope[ProviderPublic])
async def update_provider(
    provider: str,
    body: ProviderUpdate,
    access: Manager,
    runtime: RuntimeDep,
    session: SessionDep,
    origin: OriginDep,
) -> Envelope[ProviderPublic]:
    """Change only the given config and credential fields."""
    record = await service.find(session, environment_id=access.environment_id, provider=provider)
    changed = await service.update(
        session,
        key=runtime.keys.provider_credential_key,
        record=record,
        config=body.config,
        credentials=body.credentials,
        egress=Egress.of(runtime.settings),
    )
    await _audit(session, access, origin, "provider.update", provider, changed=changed)
    return ok(service.public(record))


@router.delete("/{provider}", response_model=Envelope[Removed])
async def delete_provider(
    provider: str, access: Manager, session: SessionDep, origin: OriginDep
) -> Envelope[Removed]:
    """Remove a provider configuration (the remote secrets stay where they are)."""
    record = await service.find(session, environment_id=access.environment_id, provider=provider)
    await session.delete(record)
    await session.flush()
    await _audit(session, access, origin, "provider.delete", provider)
    return ok(Removed())


@router.post("/{provider}/test", response_model=Envelope[ProviderTestResult])
async def test_provider(
    provider: str, access: Manager, runtime: RuntimeDep, session: SessionDep, origin: OriginDep
) -> Envelope[ProviderTestResult]:
    """Check the credentials against the target without writing anything."""
    record = await service.find(session, environment_id=access.environment_id, provider=provider)
    target = service.build(
        record,
        key=runtime.keys.provider_credential_key,
        http=runtime.http,
        egress=Egress.of(runtime.settings),
    )
    try:
        await target.test()
    except ProviderError as error:
        await _audit(
            session, access, origin, "provider.test", provider, ok=False, error=error.message
        )
        raise
    finally:
        await target.aclose()
    await _audit(session, access, origin, "provider.test", provider, ok=True)
    return ok(ProviderTestResult(ok=True, target=target.target_key()))
