"""Kavach as a relying party of one OpenID provider: the trip out and what comes back.

Authlib writes the OAuth side (the authorization URL with PKCE, the token request and
the client's authentication), sent over the server's own HTTP client; joserfc verifies the
ID token against the provider's published keys (`keys.IssuerKeys`). Claims missing from
the ID token are read from userinfo, whose `sub` must be the ID token's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError

from kavach.server.errors import IdentityProviderError, TokenRefused
from kavach.server.oidc.keys import IssuerKeys, IssuerMetadata
from kavach.server.settings import OidcProvider

LEEWAY_SECONDS = 60  # clocks of two machines disagree a little
_REASONS = {"iss": "issuer", "aud": "audience", "nonce": "nonce", "azp": "audience"}


@dataclass(frozen=True)
class Person:
    """Who the provider says signed in."""

    subject: str
    login: str | None
    email: str | None
    email_verified: bool
    name: str | None
    groups: tuple[str, ...]


def _refused(message: str, reason: str) -> TokenRefused:
    return TokenRefused(message, reason=reason, code="id_token_refused")


def check_id_token_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str
) -> None:
    """Check an ID token's issuer, audience, times and nonce (OpenID Connect Core 3.1.3.7)."""
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _refused("the ID token has expired", "expired") from None
    except ClaimError as error:
        claim = str(getattr(error, "claim", "") or "")
        reason = _REASONS.get(claim, "claims")
        raise _refused(f"the ID token's {claim or 'claims'} claim is not valid", reason) from None
    except JoseError:
        raise _refused("the ID token's claims are not valid", "claims") from None
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise _refused("the ID token was issued to another client", "audience")


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _groups(value: object) -> tuple[str, ...]:
    """Return a groups claim as names (a list of strings, or one space-separated string)."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str) and item)
    return ()


def person_of(provider: OidcProvider, claims: Mapping[str, Any]) -> Person:
    """Read a person from claims, with the claim names the provider's settings give."""
    email = _text(claims, provider.email_claim)
    verified = claims.get("email_verified")
    return Person(
        subject=str(claims["sub"]),
        login=_text(claims, provider.login_claim),
        email=email.lower() if email else None,
        # Unmarked addresses count only where the operator vouches for the provider.
        email_verified=email is not None
        and (verified is True or (verified is None and provider.trust_unmarked_email)),
        name=_text(claims, provider.name_claim),
        groups=_groups(claims.get(provider.groups_claim)),
    )


class RelyingParty:
    """Sign people in with one OpenID provider."""

    def __init__(
        self, provider: OidcProvider, issuers: IssuerKeys, http: httpx.AsyncClient
    ) -> None:
        self.provider = provider
        self._issuers = issuers
        self._http = http

    async def metadata(self) -> IssuerMetadata:
        """Return the provider's discovery metadata (cached)."""
        return await self._issuers.metadata(self.provider.issuer)

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """Return the URL that sends a browser to the provider's sign-in."""
        endpoint = (await self.metadata()).authorization_endpoint
        if endpoint is None:
            raise IdentityProviderError(f"{self.provider.label} names no authorization endpoint")
        url: str = prepare_grant_uri(
            endpoint,
            self.provider.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=self.provider.scope,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def sign_in(
        self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str
    ) -> Person:
        """Exchange the code, verify the ID token and return the person it names."""
        metadata = await self.metadata()
        if metadata.token_endpoint is None:
            raise IdentityProviderError(f"{self.provider.label} names no token endpoint")
        tokens = await self._exchange(metadata.token_endpoint, code, code_verifier, redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise IdentityProviderError(f"{self.provider.label} sent no ID token")
        verified = await self._issuers.verify(
            id_token,
            issuer=self.provider.issuer,
            algorithms=[self.provider.id_token_alg],
            code="id_token_refused",
        )
        claims = dict(verified.claims)
        check_id_token_claims(
            claims, issuer=self.provider.issuer, client_id=self.provider.client_id, nonce=nonce
        )
        access_token = tokens.get("access_token")
        if self._lacks_claims(claims) and metadata.userinfo_endpoint and access_token:
            claims = await self._with_userinfo(claims, metadata.userinfo_endpoint, access_token)
        return person_of(self.provider, claims)

    def _lacks_claims(self, claims: Mapping[str, Any]) -> bool:
        provider = self.provider
        wanted = [provider.login_claim, provider.email_claim]
        if provider.group_map or provider.group_prefix or provider.required_groups:
            wanted.append(provider.groups_claim)
        return any(name not in claims for name in wanted)

    async def _exchange(
        self, endpoint: str, code: str, code_verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        provider = self.provider
        body = prepare_token_request(
            "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(provider.client_id, provider.secret(), provider.auth_method)
        url, headers, body = auth.prepare("POST", endpoint, headers, body)
        answer = await self._call("POST", url, headers=headers, content=body)
        if not isinstance(answer, dict) or "error" in answer:
            code_name = answer.get("error") if isinstance(answer, dict) else None
            # The provider's error code only: its description may quote what was sent.
            reason = code_name if isinstance(code_name, str) else "no token"
            raise IdentityProviderError(f"{provider.label} refused the sign-in ({reason[:64]})")
        return answer

    async def _with_userinfo(
        self, claims: dict[str, Any], endpoint: str, access_token: str
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        body = await self._call("GET", endpoint, headers=headers)
        if not isinstance(body, dict):
            raise IdentityProviderError(f"{self.provider.label}'s userinfo is not an object")
        if body.get("sub") != claims.get("sub"):
            raise _refused("the userinfo answer is about someone else", "subject")
        # The ID token's own claims win: they are signed.
        return {**body, **claims}

    async def _call(
        self, method: str, url: str, *, headers: dict[str, str], content: str | None = None
    ) -> Any:
        """Send one request to the provider; its JSON answer, or why not (never the secrets)."""
        label = self.provider.label
        try:
            response = await self._http.request(method, url, headers=headers, content=content)
        except httpx.TimeoutException:
            raise IdentityProviderError(f"{label} did not answer in time") from None
        except httpx.HTTPError:
            raise IdentityProviderError(f"{label} could not be reached") from None
        try:
            body = response.json()
        except ValueError:
            raise IdentityProviderError(
                f"{label} answered HTTP {response.status_code} without JSON"
            ) from None
        if response.status_code >= 500 or (not response.is_success and "error" not in body):
            raise IdentityProviderError(f"{label} answered HTTP {response.status_code}")
        return body
