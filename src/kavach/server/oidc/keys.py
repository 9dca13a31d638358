"""Issuers' published metadata and signing keys: fetched, cached, refreshed on rotation.

An issuer's discovery document (OpenID Connect Discovery 1.0) names its key set; both are
cached for `max_age`. A token signed with a key id the cached set lacks makes one early
refresh (the issuer rotated its keys), at most once per `min_refresh` per issuer, so a
stream of tokens with made-up key ids cannot turn into a stream of fetches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from kavach.server.errors import IdentityProviderError, TokenRefused

# Fetch a URL's JSON (raising IdentityProviderError when it cannot): the caller decides
# which addresses may be reached.
FetchJson = Callable[[str], Awaitable[Any]]
Clock = Callable[[], float]

# Signature algorithms a token may use: asymmetric only, so no shared secret (a client
# secret, say) can sign a token that passes, and never "none".
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class IssuerMetadata:
    """What an issuer's discovery document says that Kavach uses."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    signing_algs: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()


@dataclass
class _Cached:
    metadata: IssuerMetadata
    keys: KeySet
    fetched_at: float
    refreshed_at: float = field(default=0.0)


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _endpoint(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def parse_metadata(issuer: str, body: object) -> IssuerMetadata:
    """Read a discovery document; its issuer must be exactly the one asked for (§4.3)."""
    if not isinstance(body, dict):
        raise IdentityProviderError(f"the discovery document of {issuer} is not a JSON object")
    if body.get("issuer") != issuer:
        raise IdentityProviderError(
            f"the discovery document of {issuer} names another issuer; "
            "check the issuer URL (exactly as the provider writes it, trailing slash included)"
        )
    jwks_uri = _endpoint(body, "jwks_uri")
    if jwks_uri is None:
        raise IdentityProviderError(f"the discovery document of {issuer} has no jwks_uri")
    return IssuerMetadata(
        issuer=issuer,
        jwks_uri=jwks_uri,
        authorization_endpoint=_endpoint(body, "authorization_endpoint"),
        token_endpoint=_endpoint(body, "token_endpoint"),
        userinfo_endpoint=_endpoint(body, "userinfo_endpoint"),
        signing_algs=_strings(body.get("id_token_signing_alg_values_supported")),
        code_challenge_methods=_strings(body.get("code_challenge_methods_supported")),
    )


def parse_key_set(issuer: str, body: object) -> KeySet:
    """Read a JSON Web Key Set, keeping the keys this server understands."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise IdentityProviderError(f"the key set of {issuer} is not a JSON Web Key Set")
    try:
        return KeySet.import_key_set({"keys": body["keys"]})
    except (JoseError, ValueError, TypeError):
        raise IdentityProviderError(f"the key set of {issuer} holds no usable key") from None


def _extract(token: str) -> Any:
    """Split a compact JWS without verifying it (to pick the key, or to find the issuer)."""
    try:
        return jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeError):
        raise TokenRefused("the token is not a signed JWT", reason="malformed") from None


def unverified_header(token: str) -> dict[str, Any]:
    """Return a compact JWS's header, unverified."""
    return dict(_extract(token).headers())


def unverified_claims(token: str) -> dict[str, Any]:
    """Return a compact JWS's claims, unverified."""
    try:
        claims = json.loads(_extract(token).payload or b"")
    except ValueError:
        raise TokenRefused("the token's claims are not JSON", reason="malformed") from None
    if not isinstance(claims, dict):
        raise TokenRefused("the token's claims are not a JSON object", reason="malformed")
    return claims


class IssuerKeys:
    """Discovery documents and key sets of issuers, cached, and tokens verified with them."""

    def __init__(
        self,
        fetch_json: FetchJson,
        *,
        max_age: float = 3600.0,
        min_refresh: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._fetch = fetch_json
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    async def metadata(self, issuer: str) -> IssuerMetadata:
        """Return an issuer's metadata (cached)."""
        return (await self._entry(issuer)).metadata

    async def verify(
        self,
        token: str,
        *,
        issuer: str,
        algorithms: Collection[str],
        code: str = "oidc_token_refused",
    ) -> jwt.Token:
        """Verify a token's signature with the issuer's keys; claims are the caller's to check.

        Only `algorithms` (asymmetric ones) are accepted; a key id the cached set lacks
        refreshes it once (rotation), then the token is refused if it is still unknown.
        A refusal is a TokenRefused with the given error code.
        """
        try:
            return await self._verify(token, issuer=issuer, algorithms=algorithms)
        except TokenRefused as refused:
            refused.error_code = code
            raise

    async def _verify(self, token: str, *, issuer: str, algorithms: Collection[str]) -> jwt.Token:
        allowed = sorted(set(algorithms) & ASYMMETRIC)
        header = unverified_header(token)
        alg = header.get("alg")
        if alg not in allowed:
            raise TokenRefused(
                f"the token is signed with {alg!r}, which this issuer is not trusted to use "
                f"(expected {', '.join(allowed) or 'an asymmetric algorithm'})",
                reason="algorithm",
            )
        kid = header.get("kid")
        entry = await self._entry(issuer)
        if not _has_key(entry.keys, kid):
            entry = await self._refresh(issuer, entry)
            if not _has_key(entry.keys, kid):
                raise TokenRefused(
                    "the token is signed with a key the issuer does not publish",
                    reason="unknown_key",
                )
        try:
            return jwt.decode(token, entry.keys, algorithms=allowed)
        except BadSignatureError:
            raise TokenRefused("the token's signature is not valid", reason="signature") from None
        except (JoseError, ValueError):
            raise TokenRefused(
                "the token could not be verified with the issuer's keys", reason="signature"
            ) from None

    async def _entry(self, issuer: str) -> _Cached:
        entry = self._cache.get(issuer)
        if entry is None or self._clock() - entry.fetched_at > self._max_age:
            entry = await self._load(issuer)
        return entry

    async def _refresh(self, issuer: str, entry: _Cached) -> _Cached:
        now = self._clock()
        if now - max(entry.fetched_at, entry.refreshed_at) < self._min_refresh:
            return entry
        entry.refreshed_at = now
        return await self._load(issuer)

    async def _load(self, issuer: str) -> _Cached:
        metadata = parse_metadata(issuer, await self._fetch(issuer.rstrip("/") + DISCOVERY_PATH))
        keys = parse_key_set(issuer, await self._fetch(metadata.jwks_uri))
        entry = _Cached(metadata=metadata, keys=keys, fetched_at=self._clock())
        self._cache[issuer] = entry
        return entry


def _has_key(keys: KeySet, kid: object) -> bool:
    """Say whether a key set can verify a token with this key id (none: a set of one)."""
    if kid is None:
        return len(keys.keys) == 1
    return any(key.kid == kid for key in keys.keys)
