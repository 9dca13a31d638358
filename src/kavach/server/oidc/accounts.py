"""Who an OpenID sign-in is in Kavach: admitted or not, which user, which user groups.

A person is the user of (provider, subject), or of an identity an administrator linked
to a user; never the user of another provider who happens to have the same e-mail.
Memberships that the provider's group mapping brings are marked with the provider, and
each sign-in brings them up to date: a group the provider no longer sends takes its
mapped membership (and so its access) away. Memberships people added stay as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.errors import AlreadyExists, Conflict, Forbidden, LastOwner, NotFound
from kavach.server.iam import service as iam_service
from kavach.server.iam.models import Organization, User, UserGroup, UserGroupMember, UserIdentity
from kavach.server.oidc.relying import Person
from kavach.server.rbac import holders
from kavach.server.settings import OidcProvider

log = structlog.get_logger("kavach.oidc")


class SignInRefused(Forbidden):
    """The provider signed the person in, but this server's rules do not admit them."""

    error_code = "sign_in_refused"


def admit(provider: OidcProvider, person: Person) -> None:
    """Refuse a person the provider's admission rules do not let in."""
    if provider.allow_all_users:
        return
    domain = person.email.rpartition("@")[2] if person.email else None
    if (
        provider.allowed_email_domains
        and person.email_verified
        and domain in provider.allowed_email_domains
    ):
        return
    if set(provider.required_groups) & set(person.groups):
        return
    rules = []
    if provider.allowed_email_domains:
        rules.append("a verified address at " + " or ".join(provider.allowed_email_domains))
    if provider.required_groups:
        rules.append("membership of " + " or ".join(provider.required_groups))
    raise SignInRefused(
        f"{provider.label} signed you in, but this server needs {'; or '.join(rules)}"
    )


def mapped_groups(provider: OidcProvider, groups: Iterable[str]) -> set[tuple[str, str]]:
    """Return the (organization, user group) names a person's provider groups map to."""
    targets: set[tuple[str, str]] = set()
    for group in groups:
        names = [provider.group_map[group]] if group in provider.group_map else []
        prefix = provider.group_prefix
        if prefix and group.startswith(prefix) and group[len(prefix) :].count("/") == 1:
            names.append(group[len(prefix) :])
        for name in names:
            organization, _, user_group = name.partition("/")
            targets.add((organization, user_group))
    return targets


async def find_user(session: AsyncSession, *, provider: str, subject: str) -> User | None:
    """Return the user of a provider's subject: their own, or one an administrator linked."""
    user = await session.scalar(
        select(User).where(User.provider == provider, User.provider_id == subject)
    )
    if user is None:
        user = await session.scalar(
            select(User)
            .join(UserIdentity, UserIdentity.user_id == User.id)
            .where(UserIdentity.provider == provider, UserIdentity.subject == subject)
        )
    return user


async def user_for(
    session: AsyncSession, provider: OidcProvider, person: Person, origin: RequestOrigin
) -> User:
    """Return the user a sign-in is (created at the first), their profile brought up to date."""
    verified = (person.email,) if person.email and person.email_verified else ()
    linked = await find_user(session, provider=provider.key, subject=person.subject)
    if linked is not None and linked.provider != provider.key:
        # An identity linked to a user of another provider: that provider owns the profile.
        return await iam_service.signed_in(
            session, user=linked, verified_emails=verified, origin=origin
        )
    login = person.login or (person.email if person.email_verified else None)
    if login is None:
        raise SignInRefused(
            f"{provider.label} sent neither the {provider.login_claim!r} claim nor a verified "
            "e-mail address: ask an administrator to map another login claim"
        )
    identity = iam_service.Identity(
        provider=provider.key,
        provider_id=person.subject,
        login=login,
        email=person.email,
        name=person.name,
        verified_emails=verified,
    )
    try:
        return await iam_service.upsert_user(session, identity=identity, origin=origin)
    except Conflict:
        raise Conflict(
            f"the login {login!r} belongs to another account; an administrator can link "
            f"your {provider.label} identity (subject {person.subject!r}) to it with "
            f"`kavach server link-identity {login} --provider {provider.name} "
            f"--subject {person.subject}`"
        ) from None


async def sync_groups(
    session: AsyncSession,
    provider: OidcProvider,
    user: User,
    person: Person,
    origin: RequestOrigin,
) -> tuple[list[str], list[str]]:
    """Bring the user's mapped memberships up to date; return the groups joined and left."""
    targets = mapped_groups(provider, person.groups)
    wanted: dict[uuid.UUID, str] = {}
    if targets:
        rows = await session.execute(
            select(UserGroup.id, Organization.name, UserGroup.name)
            .join(Organization, Organization.id == UserGroup.organization_id)
            .where(tuple_(Organization.name, UserGroup.name).in_(sorted(targets)))
        )
        wanted = {group_id: f"{org}/{name}" for group_id, org, name in rows.all()}
        missing = targets - {tuple(name.split("/", 1)) for name in wanted.values()}
        if missing:
            log.warning(
                "mapped user groups do not exist",
                provider=provider.name,
                groups=sorted("/".join(pair) for pair in missing),
            )
    held = {
        member.user_group_id: member
        for member in await session.scalars(
            select(UserGroupMember).where(UserGroupMember.user_id == user.id)
        )
    }
    joined = []
    for group_id, name in wanted.items():
        if group_id not in held:
            session.add(
                UserGroupMember(user_group_id=group_id, user_id=user.id, source=provider.key)
            )
            joined.append(name)
    left = [
        gone
        for group_id, member in held.items()
        if member.source == provider.key
        and group_id not in wanted
        and (gone := await _leave(session, member)) is not None
    ]
    if joined or left:
        await audit.record(
            session,
            actor=Actor(type="user", id=user.id, label=user.login),
            action="user_group.sync",
            origin=origin,
            resource_type="user",
            resource_id=str(user.id),
            details={"identity_provider": provider.key, "joined": joined, "left": left},
        )
    return joined, left


async def _leave(session: AsyncSession, member: UserGroupMember) -> str | None:
    """Remove a mapped membership and name its group, unless it holds the last owner."""
    group = await session.get(UserGroup, member.user_group_id)
    try:
        async with session.begin_nested():
            await session.delete(member)
            if group is not None:
                await holders.keep_an_owner(session, organization_id=group.organization_id)
    except LastOwner:
        log.warning(
            "kept a mapped membership: it holds the last owner", group=str(group and group.id)
        )
        return None
    return group.name if group is not None else str(member.user_group_id)


async def link(
    session: AsyncSession,
    *,
    login: str,
    provider: OidcProvider,
    subject: str,
    actor: Actor,
    origin: RequestOrigin,
) -> User:
    """Make a provider's subject sign in as an existing user (an administrator's decision)."""
    user = await session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound(f"no user {login!r}")
    holder = await find_user(session, provider=provider.key, subject=subject)
    if holder is not None:
        if holder.id == user.id:
            raise AlreadyExists(
                f"{provider.name} subject {subject!r} already signs in as {login!r}"
            )
        raise Conflict(
            f"{provider.name} subject {subject!r} is the user {holder.login!r}; "
            "unlink it first (or delete that user)"
        )
    session.add(UserIdentity(user_id=user.id, provider=provider.key, subject=subject))
    await audit.record(
        session,
        actor=actor,
        action="user.identity.link",
        origin=origin,
        details={"user": login, "identity_provider": provider.key, "subject": subject},
    )
    return user


async def unlink(
    session: AsyncSession,
    *,
    login: str,
    provider: OidcProvider,
    subject: str,
    actor: Actor,
    origin: RequestOrigin,
) -> None:
    """Undo a link: the subject no longer signs in as that user."""
    found = await session.scalar(
        select(UserIdentity)
        .join(User, User.id == UserIdentity.user_id)
        .where(
            User.login == login,
            UserIdentity.provider == provider.key,
            UserIdentity.subject == subject,
        )
    )
    if found is None:
        raise NotFound(f"{provider.name} subject {subject!r} is not linked to {login!r}")
    await session.delete(found)
    await audit.record(
        session,
        actor=actor,
        action="user.identity.unlink",
        origin=origin,
        details={"user": login, "identity_provider": provider.key, "subject": subject},
    )
