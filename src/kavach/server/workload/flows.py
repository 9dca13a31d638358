"""The exchange: a workload's platform token in, a short-lived service token out.

1. Read, outside any transaction, the environment's trusts of the token's (unverified)
   issuer; none, or no such environment, is the same refusal.
2. Verify the signature with the issuer's published keys, then its times.
3. The first trust whose audience and every condition hold admits it; if none does, the
   refusal says what failed for each.
4. In the request's transaction: hold the trust (a delete waits, or has happened), prune its
   long-expired tokens, create the service token, record the event.

The gate then treats the token as any service token. Every exchange is audited, refusals
included (their event is kept although the request fails); never the token.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.access import ANONYMOUS, Actor, RequestOrigin
from kavach.server.audit import service as audit
from kavach.server.db.base import utcnow
from kavach.server.errors import IdentityProviderError, TokenRefused
from kavach.server.iam import names
from kavach.server.oidc.keys import ASYMMETRIC, IssuerKeys, unverified_claims
from kavach.server.workload import service
from kavach.server.workload.claims import Mismatch, check_times, mismatch, shown
from kavach.server.workload.models import WorkloadTrust
from kavach.server.workload.schemas import TokenExchange, WorkloadToken

ACTION = "token.exchange"
_ISSUER_CHARS = 512


@dataclass
class _Attempt:
    """What is known of an exchange so far, for its audit event."""

    issuer: str | None = None
    environment_id: uuid.UUID | None = None
    subject: str | None = None  # only once the signature holds


async def exchange(
    *,
    keys: IssuerKeys,
    read_sessions: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    body: TokenExchange,
    origin: RequestOrigin,
) -> WorkloadToken:
    """Exchange a platform token for a service token of the environment it names."""
    attempt = _Attempt()
    try:
        trusts, claims = await _verified(keys, read_sessions, body, attempt)
        trust = _admitting(trusts, claims)
        return await _issue(session, trust, attempt, origin)
    except (TokenRefused, IdentityProviderError) as error:
        reason = error.reason if isinstance(error, TokenRefused) else "issuer_unavailable"
        await _refused(session, attempt, origin, reason, body.trust)
        error.persist_changes = True  # the refusal's audit event stays
        raise


async def _verified(
    keys: IssuerKeys,
    read_sessions: async_sessionmaker[AsyncSession],
    body: TokenExchange,
    attempt: _Attempt,
) -> tuple[list[WorkloadTrust], dict[str, Any]]:
    """Return the trusts of the token's issuer and its verified claims, or refuse."""
    issuer = unverified_claims(body.token).get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise TokenRefused("the token names no issuer (iss claim)", reason="issuer")
    attempt.issuer = issuer[:_ISSUER_CHARS]
    async with read_sessions() as reader:
        environment_id = body.environment_id
        if environment_id is None and body.names is not None:
            environment_id = await names.find(reader, "environment", body.names)
        attempt.environment_id = environment_id
        trusts = []
        if environment_id is not None:
            found = await service.trusts_for(
                reader, environment_id=environment_id, issuer=issuer, name=body.trust
            )
            trusts = list(found)
    if not trusts:
        # The same words whether the environment exists or not: the caller is not signed in.
        named = f" named {shown(body.trust)}" if body.trust is not None else ""
        raise TokenRefused(
            f"no trust{named} of this environment accepts tokens from issuer {shown(issuer)}",
            reason="no_trust",
        )
    metadata = await keys.metadata(issuer)
    verified = await keys.verify(
        body.token, issuer=issuer, algorithms=metadata.signing_algs or ASYMMETRIC
    )
    claims = dict(verified.claims)
    subject = claims.get("sub")
    attempt.subject = subject if isinstance(subject, str) else None
    check_times(claims, issuer=issuer, now=int(time.time()))
    return trusts, claims


def _admitting(trusts: list[WorkloadTrust], claims: dict[str, Any]) -> WorkloadTrust:
    """Return the first trust that admits the claims, or refuse saying why each did not."""
    failures: list[Mismatch] = []
    for trust in trusts:
        why = mismatch(trust, claims)
        if why is None:
            return trust
        failures.append(why)
    reasons = {failure.reason for failure in failures}
    raise TokenRefused(
        "the token matches no trust of this environment: "
        + "; ".join(failure.message for failure in failures),
        reason=reasons.pop() if len(reasons) == 1 else "conditions",
    )


async def _issue(
    session: AsyncSession, admitted: WorkloadTrust, attempt: _Attempt, origin: RequestOrigin
) -> WorkloadToken:
    now = utcnow()
    trust = await service.lock(session, admitted.id)
    if trust is None:
        raise TokenRefused(f"trust {shown(admitted.name)} was just deleted", reason="no_trust")
    await service.prune(session, trust_id=trust.id, now=now)
    token, secret, lifetime = await service.issue(
        session, trust=trust, subject=attempt.subject, now=now
    )
    await audit.record(
        session,
        actor=Actor(type="service_token", id=token.id, label=token.name),
        action=ACTION,
        origin=origin,
        resource_type="service_token",
        resource_id=str(token.id),
        details={
            "trust": trust.name,
            "issuer": trust.issuer,
            "subject": token.subject,
            "role": trust.role,
        },
    )
    return WorkloadToken(
        access_token=secret,
        expires_in=lifetime,
        environment_id=trust.environment_id,
        role=trust.role,
        trust=trust.name,
    )


async def _refused(
    session: AsyncSession,
    attempt: _Attempt,
    origin: RequestOrigin,
    reason: str,
    trust: str | None,
) -> None:
    details: dict[str, Any] = {"reason": reason, "issuer": attempt.issuer}
    if attempt.subject is not None:
        details["subject"] = attempt.subject
    if trust is not None:
        details["trust"] = trust
    where = attempt.environment_id
    await audit.record(
        session,
        actor=ANONYMOUS,
        action=ACTION,
        outcome="failure",
        origin=origin,
        resource_type="environment" if where is not None else None,
        resource_id=str(where) if where is not None else None,
        details=details,
    )
