"""Access decisions made in the database: where a resource sits and what a caller may do there.

Only the access gate (kavach.server.gate) calls these; it alone caches what they decide.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import LABELS, Principal, Resource, ResourceKind, Scope, TokenPrincipal
from kavach.server.errors import Forbidden, NotFound
from kavach.server.iam.models import Environment, Organization, SecretGroup, UserGroup
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.policy import ROLES, TOKEN_ACTIONS, role_allows
from kavach.server.webhooks.models import Webhook
from kavach.server.workload.models import WorkloadTrust

# What a role held only beneath an organization or secret group allows there: seeing the
# node itself (by id and by name) and listing its children, each listing showing only the
# children the caller holds a role on or under. None of the node's own permissions: no
# bindings, no audit trail, no user groups, nothing to change.
_SEEN_FROM_BELOW: dict[str, frozenset[str]] = {
    "organization": frozenset({"org.read", "group.read"}),
    "secret_group": frozenset({"group.read", "env.read"}),
}


def minimum_role(action: str) -> str:
    """Return the weakest role that grants an action."""
    return next((role for role in ROLES if role_allows(role, action)), "owner")


async def load_resource(
    session: AsyncSession, kind: ResourceKind, resource_id: uuid.UUID
) -> tuple[Resource, Scope]:
    """Load a resource by id with its place in the tree, or raise NotFound."""
    found: Resource | None
    if kind == "environment":
        row = (
            await session.execute(
                select(Environment, SecretGroup.organization_id)
                .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
                .where(Environment.id == resource_id)
            )
        ).first()
        if row is not None:
            env, org_id = row
            return env, Scope(org_id, env.secret_group_id, env.id)
        found = None
    elif kind == "secret_group":
        found = await session.get(SecretGroup, resource_id)
        if isinstance(found, SecretGroup):
            return found, Scope(found.organization_id, found.id)
    elif kind == "user_group":
        found = await session.get(UserGroup, resource_id)
        if isinstance(found, UserGroup):
            return found, Scope(found.organization_id)
    elif kind == "webhook":
        # Decided where the webhook sits: its organization, or its environment.
        hook = (
            await session.execute(
                select(Webhook, Environment.secret_group_id)
                .outerjoin(Environment, Environment.id == Webhook.environment_id)
                .where(Webhook.id == resource_id)
            )
        ).first()
        if hook is not None:
            webhook, group_id = hook
            return webhook, Scope(webhook.organization_id, group_id, webhook.environment_id)
        found = None
    else:
        found = await session.get(Organization, resource_id)
        if isinstance(found, Organization):
            return found, Scope(found.id)
    raise NotFound(f"{LABELS[kind]} not found")


async def authorize(
    session: AsyncSession, principal: Principal, *, scope: Scope, action: str, kind: str
) -> str | None:
    """Return the caller's role on the scope if it grants the action; else 404 or 403."""
    label = LABELS.get(kind, kind)
    if isinstance(principal, TokenPrincipal):
        token = principal.token
        if scope.environment_id != token.environment_id or kind != "environment":
            raise NotFound(f"{label} not found")
        if action not in TOKEN_ACTIONS or not role_allows(token.role, action):
            raise Forbidden(f"this service token may not {action} (role {token.role})")
        return token.role
    user_id = principal.user.id
    role = await rbac_service.effective_role(session, user_id=user_id, scope=scope)
    if role is not None and role_allows(role, action):
        return role
    if role is None:
        seen_from_below = _SEEN_FROM_BELOW.get(kind)
        if seen_from_below is None or not await rbac_service.sees_below(
            session, user_id=user_id, scope=scope
        ):
            raise NotFound(f"{label} not found")
        if action in seen_from_below:
            return None
    raise Forbidden(f"this needs permission {action!r} ({minimum_role(action)} or higher)")


async def authorize_token_reference(
    session: AsyncSession, principal: TokenPrincipal, scope: Scope
) -> str:
    """Let a service token follow a reference into another environment, or say 404.

    A token reaches only its environment; a reference someone wrote there may pull from
    another, which the token reads only as far as whoever made it (the token's creator, or
    its workload trust's) may read there now: a token never reads what its maker could not.
    """
    token = principal.token
    maker = token.created_by
    if maker is None and token.workload_trust_id is not None:
        found = select(WorkloadTrust.created_by).where(WorkloadTrust.id == token.workload_trust_id)
        maker = await session.scalar(found)
    role = (
        await rbac_service.effective_role(session, user_id=maker, scope=scope)
        if maker is not None
        else None
    )
    if role is None or not role_allows(role, "secret.read"):
        raise NotFound("environment not found")
    return "viewer"
