"""Database work on users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import RequestOrigin
from kavach.server.db.base import utcnow
from kavach.server.errors import Conflict, NotFound
from kavach.server.iam.models import User
from kavach.server.rbac import pending


@dataclass(frozen=True)
class Identity:
    """A person as an identity provider describes them."""

    provider: str
    provider_id: str
    login: str
    email: str | None = None
    name: str | None = None
    avatar_url: str | None = None
    # The addresses the identity provider vouches the person owns (grants pending for them
    # are theirs at sign-in); `email` alone proves nothing.
    verified_emails: tuple[str, ...] = ()


async def upsert_user(
    session: AsyncSession, *, identity: Identity, origin: RequestOrigin | None = None
) -> User:
    """Create the user for an identity, or refresh their profile; mark the login time.

    Every path that creates a user, or refreshes one from its identity provider, passes
    here, so here the grants pending for the person (by login, or by an e-mail address the
    provider vouches for) become theirs, in the same transaction.
    """
    user = await session.scalar(
        select(User).where(
            User.provider == identity.provider, User.provider_id == identity.provider_id
        )
    )
    if user is None:
        taken = await session.scalar(select(User.id).where(User.login == identity.login))
        if taken is not None:
            raise Conflict(f"the login {identity.login!r} belongs to another account")
        user = User(provider=identity.provider, provider_id=identity.provider_id)
        session.add(user)
    user.login = identity.login
    user.email = identity.email
    user.name = identity.name
    user.avatar_url = identity.avatar_url
    user.last_login_at = utcnow()
    await session.flush()
    await pending.accept(session, user=user, emails=identity.verified_emails, origin=origin)
    return user


async def signed_in(
    session: AsyncSession,
    *,
    user: User,
    verified_emails: tuple[str, ...],
    origin: RequestOrigin | None = None,
) -> User:
    """Mark a sign-in of an existing user through a linked identity (profile untouched)."""
    user.last_login_at = utcnow()
    await session.flush()
    await pending.accept(session, user=user, emails=verified_emails, origin=origin)
    return user


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    """Return a user by id."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user
