"""Who may sign in through GitHub: the allow-list of organizations and logins.

Any GitHub account can finish GitHub's device flow, so a GitHub login proves only who
someone is on GitHub. The server admits a GitHub user when their login is in
KAVACH_GITHUB_ALLOWED_LOGINS or they are an active member of an organization in
KAVACH_GITHUB_ALLOWED_ORGS, checked at every login, so leaving the organization ends the
next login. With neither set nobody new is admitted: only users who already exist keep
signing in, so an upgrade locks nobody out.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.auth.github import ORG_SCOPE, SCOPE, GitHubClient, GitHubIdentity
from kavach.server.errors import DeviceFlowError
from kavach.server.iam.models import User
from kavach.server.settings import AuthSettings

NOT_ALLOWED = "account_not_allowed"


def scope_for(auth: AuthSettings) -> str:
    """Return the OAuth scope to ask for: read:org only when organizations are checked."""
    return f"{SCOPE} {ORG_SCOPE}" if auth.allowed_github_orgs else SCOPE


async def _exists(session: AsyncSession, identity: GitHubIdentity) -> bool:
    found = await session.scalar(
        select(User.id).where(User.provider == "github", User.provider_id == identity.provider_id)
    )
    return found is not None


async def admit(
    session: AsyncSession,
    auth: AuthSettings,
    client: GitHubClient,
    *,
    access_token: str,
    identity: GitHubIdentity,
) -> None:
    """Refuse a GitHub identity the allow-list does not admit."""
    logins, orgs = auth.allowed_github_logins, auth.allowed_github_orgs
    if identity.login.lower() in logins:
        return
    for org in sorted(orgs):
        if await client.is_active_member(access_token, org):
            return
    if not logins and not orgs and await _exists(session, identity):
        return
    raise DeviceFlowError(
        NOT_ALLOWED,
        f"the GitHub account {identity.login!r} may not sign in to this server; "
        "ask its administrator to allow it",
    )
