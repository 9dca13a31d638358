"""Check a verified platform token's claims: its times, its audience, a trust's conditions.

A refusal says which check failed and shows claim values (they are what the platform says
of the workload, never the token itself), shortened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from joserfc.errors import ClaimError, ExpiredTokenError, MissingClaimError
from joserfc.jwt import JWTClaimsRegistry

from kavach.server.errors import TokenRefused

# Clocks of the platform and of this server may disagree by this much (seconds).
LEEWAY_SECONDS = 60
_SHOWN_CHARS = 120


class Trusting(Protocol):
    """What matching needs of a trust."""

    name: str
    audience: str
    conditions: dict[str, Any]


def shown(value: object) -> str:
    """Return a value as JSON text (strings quoted), shortened for a message."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _when(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):
            pass
    return shown(value)


def check_times(claims: dict[str, Any], *, issuer: str, now: int) -> None:
    """Refuse a token whose issuer, expiry, not-before or issue time does not hold now."""
    registry = JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise TokenRefused(
            f"the token expired at {_when(claims.get('exp'))}", reason="expired"
        ) from None
    except MissingClaimError as error:
        raise TokenRefused(
            f"the token has no {error.claim} claim", reason="missing_claim"
        ) from None
    except ClaimError as error:
        raise _refusal(error.claim, claims) from None


def _refusal(claim: str, claims: dict[str, Any]) -> TokenRefused:
    value = claims.get(claim)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if claim == "nbf" and numeric:
        return TokenRefused(f"the token is not valid before {_when(value)}", reason="not_yet_valid")
    if claim == "iat" and numeric:
        return TokenRefused(
            f"the token says it was issued at {_when(value)}, in the future",
            reason="issued_in_future",
        )
    if claim == "iss":
        return TokenRefused(f"the token's issuer is {shown(value)}", reason="issuer")
    return TokenRefused(f"the token's {claim} claim is not valid", reason="invalid_claim")


def audiences(claims: dict[str, Any]) -> list[str]:
    """Return the token's audiences (its aud claim: a string or a list of strings)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [item for item in aud if isinstance(item, str)]
    return []


def claim_text(value: object) -> str:
    """Return a claim as a condition compares it: a string as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def matches(value: str, pattern: str) -> bool:
    """Say whether a claim's text is the pattern exactly, or matches it as a glob."""
    return value == pattern or fnmatchcase(value, pattern)


@dataclass(frozen=True)
class Mismatch:
    """Why a trust does not admit a token: its audience, or one of its conditions."""

    reason: str  # "audience" or "conditions"
    message: str


def mismatch(trust: Trusting, claims: dict[str, Any]) -> Mismatch | None:
    """Say why a trust does not admit a token with these claims; None when it does."""
    said = f'trust "{trust.name}": '
    if trust.audience not in audiences(claims):
        return Mismatch(
            "audience",
            f"{said}the token's audience is {shown(claims.get('aud'))}, "
            f"not {shown(trust.audience)}",
        )
    for claim in sorted(trust.conditions):
        pattern = str(trust.conditions[claim])
        value = claims.get(claim)
        if value is None:
            return Mismatch("conditions", f'{said}the token has no claim "{claim}"')
        text = claim_text(value)
        if not matches(text, pattern):
            return Mismatch(
                "conditions",
                f'{said}claim "{claim}" is {shown(text)}, which does not match {shown(pattern)}',
            )
    return None
