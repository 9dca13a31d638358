"""Pending grants (invites): roles for a login or e-mail address nobody has signed in with yet.

A pending grant follows the rules of a grant: only someone who could grant its role on its
resource may make, change or revoke it. It grants nothing by itself. When someone signs in
with its login (compared without case) or with its e-mail address, vouched for by their
identity provider, it becomes their role binding in the sign-in's transaction and is
removed. That binding moves the access epoch as every grant does (its trigger); pending
grants themselves need none, since no cached answer can depend on them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Actor, RequestOrigin, Scope
from kavach.server.audit import service as audit
from kavach.server.errors import Conflict, NotFound, ValidationFailed
from kavach.server.iam.models import User
from kavach.server.pages import Keyset, Page, PageRequest
from kavach.server.rbac import holders
from kavach.server.rbac import service as rbac_service
from kavach.server.rbac.models import PendingGrant, RoleBinding
from kavach.server.rbac.policy import ROLE_RANK
from kavach.server.rbac.schemas import PendingGrantPublic, UserRef

LOGIN, EMAIL = "login", "email"
# What a login can be with either identity provider (GitHub's are a subset), without case.
_SIGN_IN_LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# An invitee is unique on its resource (a login never holds "@", an address always does).
PENDING = Keyset("pending-members", PendingGrant.invitee)
InviteeKey = tuple[str, str]  # (login or email, lower-cased value)


def login_invitee(login: str) -> InviteeKey:
    """Return the invitee for a login nobody has signed in with, if anyone ever could."""
    value = login.lower()
    if not _SIGN_IN_LOGIN.fullmatch(value):
        raise ValidationFailed(
            f"no user has the login {login!r}, and nobody can sign in with it: a login is 1-63 "
            "letters, digits, '.', '_' or '-' (to invite an address, give email)"
        )
    return LOGIN, value


def email_invitee(email: str) -> InviteeKey:
    """Return the invitee for an e-mail address (already checked by the request's schema)."""
    return EMAIL, email.lower()


def _on(scope: Scope) -> Any:
    return and_(
        PendingGrant.resource_type == scope.resource_type,
        PendingGrant.resource_id == scope.resource_id,
    )


async def _find(session: AsyncSession, scope: Scope, invitee: InviteeKey) -> PendingGrant | None:
    return await session.scalar(
        select(PendingGrant).where(_on(scope), PendingGrant.invitee == invitee[1])
    )


async def invite(
    session: AsyncSession,
    *,
    scope: Scope,
    invitee: InviteeKey,
    role: str,
    caller_role: str | None,
    caller_id: uuid.UUID,
) -> PendingGrant:
    """Grant a role on the scope to an invitee, pending their sign-in (or change its role)."""
    holders.require_grant(caller_role, role)
    found = await _find(session, scope, invitee)
    if found is None:
        found = PendingGrant(
            organization_id=scope.organization_id,
            resource_type=scope.resource_type,
            resource_id=scope.resource_id,
            invitee_type=invitee[0],
            invitee=invitee[1],
        )
        session.add(found)
    else:
        holders.require_grant(caller_role, found.role)
    found.role = role
    found.granted_by = caller_id
    try:
        await session.flush()
    except IntegrityError:
        # Another request invited the same person here first.
        raise Conflict(f"{invitee[1]!r} was invited here meanwhile; try again") from None
    return found


async def revoke(
    session: AsyncSession,
    *,
    scope: Scope,
    invitee: InviteeKey,
    role: str | None,
    caller_role: str | None,
) -> PendingGrant:
    """Withdraw a pending grant on the scope; a role, if given, must match."""
    found = await _find(session, scope, invitee)
    if found is None or (role is not None and found.role != role):
        raise NotFound(f"no such invite of {invitee[1]!r} is pending on this resource")
    holders.require_grant(caller_role, found.role)
    await session.delete(found)
    await session.flush()
    return found


async def describe(
    session: AsyncSession, *, scope: Scope, request: PageRequest
) -> Page[PendingGrantPublic]:
    """List a page of the grants pending on the scope itself, by invitee."""
    query = _with_granter(select(PendingGrant).where(_on(scope)))
    rows = list(await session.execute(PENDING.page(query, request)))
    page, after = PENDING.cut(rows, request, lambda row: (row[0].invitee,))
    return Page(items=await _described(session, scope, page), next=after)


async def describe_one(
    session: AsyncSession, *, scope: Scope, grant: PendingGrant
) -> PendingGrantPublic:
    """Describe one pending grant on the scope."""
    row = (
        await session.execute(
            _with_granter(select(PendingGrant)).where(PendingGrant.id == grant.id)
        )
    ).one()
    return (await _described(session, scope, [row]))[0]


def _with_granter(query: Any) -> Any:
    return query.add_columns(User.login).outerjoin(User, User.id == PendingGrant.granted_by)


async def _described(
    session: AsyncSession, scope: Scope, rows: Sequence[Row[PendingGrant, str | None]]
) -> list[PendingGrantPublic]:
    name = await rbac_service.resource_name(
        session, resource_type=scope.resource_type, resource_id=scope.resource_id
    )
    described = []
    for grant, granter in rows:
        is_login = grant.invitee_type == LOGIN
        described.append(
            PendingGrantPublic(
                id=grant.id,
                login=grant.invitee if is_login else None,
                email=None if is_login else grant.invitee,
                role=grant.role,
                resource_type=grant.resource_type,
                resource_id=grant.resource_id,
                resource_name=name,
                granted_by=(
                    UserRef(id=grant.granted_by, login=granter)
                    if grant.granted_by is not None and granter is not None
                    else None
                ),
                created_at=grant.created_at,
            )
        )
    return described


async def accept(
    session: AsyncSession,
    *,
    user: User,
    emails: Sequence[str],
    origin: RequestOrigin | None,
) -> list[PendingGrant]:
    """Turn the grants pending for a user signing in into their role bindings.

    `emails` are the addresses their identity provider vouches for. Where several grants
    apply to one resource, or the user holds a role there already, the strongest stands: an
    invite never lowers a role. Return the pending grants taken.
    """
    wanted = [and_(PendingGrant.invitee_type == LOGIN, PendingGrant.invitee == user.login.lower())]
    if emails:
        addresses = sorted({email.lower() for email in emails})
        wanted.append(and_(PendingGrant.invitee_type == EMAIL, PendingGrant.invitee.in_(addresses)))
    found = list(await session.scalars(select(PendingGrant).where(or_(*wanted)).with_for_update()))
    if not found:
        return []
    held = {
        (binding.resource_type, binding.resource_id): binding
        for binding in await session.scalars(
            select(RoleBinding).where(RoleBinding.user_id == user.id)
        )
    }
    for grant in sorted(found, key=lambda g: ROLE_RANK[g.role]):  # the strongest last
        where = (grant.resource_type, grant.resource_id)
        binding = held.get(where)
        if binding is None:
            binding = RoleBinding(
                organization_id=grant.organization_id,
                resource_type=grant.resource_type,
                resource_id=grant.resource_id,
                user_id=user.id,
            )
            session.add(binding)
            held[where] = binding
        elif ROLE_RANK[binding.role] >= ROLE_RANK[grant.role]:
            continue
        binding.role = grant.role
        binding.granted_by = grant.granted_by
    await session.execute(delete(PendingGrant).where(PendingGrant.id.in_([g.id for g in found])))
    await session.flush()
    actor = Actor(type="user", id=user.id, label=user.login)
    for grant in found:
        await audit.record(
            session,
            actor=actor,
            action="member.invite.accept",
            origin=origin,
            resource_type=grant.resource_type,
            resource_id=str(grant.resource_id),
            details={
                "email" if grant.invitee_type == EMAIL else "user": grant.invitee,
                "role": grant.role,
                "granted_by": str(grant.granted_by) if grant.granted_by else None,
            },
        )
    return found
