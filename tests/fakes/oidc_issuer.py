"""A test OpenID Connect issuer on 127.0.0.1: discovery, keys, tokens to order.

    with serve_oidc_issuer() as issuer:
        token = issuer.mint(issuer.github_claims(aud="https://kavach.test"))

What it serves (`issuer.url` is its issuer identifier, `http://127.0.0.1:PORT`):

- `GET /.well-known/openid-configuration`: the discovery document (issuer, jwks_uri,
  authorization, token and userinfo endpoints, RS256 and ES256); `discovery_fetches` counts.
- `GET /jwks`: the published public keys; `jwks_fetches` counts.
- `GET /authorize`: redirects (302) to the `redirect_uri` asked for, with `code` (`issuer.code`)
  and the `state` asked for; `authorize_requests` keeps each request's query.
- `POST /token`: answers `issuer.on_token(form)` as JSON (a dict; or a `(status, dict)`
  tuple), the form as a dict of strings; `token_requests` keeps each form.
- `GET /userinfo`: answers `issuer.userinfo` as JSON (401 while it is None).

Tokens: `mint(claims, *, kid=None, alg="RS256", key=None, headers=None)` signs `claims` as
they are (nothing added) with the current RSA key (RS256/RS384/RS512/PS256), the EC key
(ES256), another key (`key=`: one from `unpublished_key()`, or an `OctKey` for HS256), or
none at all (`alg="none"`). `headers` are merged into the header (`{"kid": None}` drops it).
`github_claims(aud=..., **overrides)` gives GitHub Actions-shaped claims of a push to main
of acme/app, issued now and valid five minutes; `None` (for `aud` too) removes a claim.

Keys: `rotate()` publishes a new RSA key and signs with it from then on (the old one stays
published until `drop(kid)`). Key material is generated once per process and reused.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.serving import serve_in_thread

SigningKey = RSAKey | ECKey | OctKey
TokenAnswer = dict[str, Any] | tuple[int, dict[str, Any]]
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


@cache
def _rsa_material(index: int) -> dict[str, Any]:
    """Return the index-th RSA private key of this process (generated once)."""
    return dict(RSAKey.generate_key(2048, private=True).as_dict(private=True))


@cache
def _ec_material(index: int) -> dict[str, Any]:
    return dict(ECKey.generate_key("P-256", private=True).as_dict(private=True))


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class OidcIssuer:
    """The issuer's state: its keys, what it answers, and what it was asked."""

    def __init__(self) -> None:
        self.url = ""  # set once served
        self._id = uuid.uuid4().hex[:8]
        self._next_rsa = 0
        self._published: dict[str, SigningKey] = {}
        self._signing_kid = self._new_rsa_key()
        self._ec_kid = f"{self._id}-ec"
        self._published[self._ec_kid] = ECKey.import_key(_ec_material(0) | {"kid": self._ec_kid})
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.code = "code-" + uuid.uuid4().hex
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.on_token: Callable[[dict[str, str]], TokenAnswer] = lambda form: (
            400,
            {"error": "invalid_request"},
        )
        self.userinfo: dict[str, Any] | None = None

    # Keys

    def _new_rsa_key(self) -> str:
        index = self._next_rsa
        self._next_rsa += 1
        kid = f"{self._id}-rsa-{index}"
        self._published[kid] = RSAKey.import_key(_rsa_material(index) | {"kid": kid})
        return kid

    @property
    def kids(self) -> list[str]:
        """Return the ids of the published keys."""
        return list(self._published)

    @property
    def signing_kid(self) -> str:
        """Return the id of the RSA key tokens are signed with by default."""
        return self._signing_kid

    def rotate(self) -> str:
        """Publish a new RSA key and sign with it from now on; return its id."""
        self._signing_kid = self._new_rsa_key()
        return self._signing_kid

    def drop(self, kid: str) -> None:
        """Stop publishing a key."""
        self._published.pop(kid)

    def unpublished_key(self, alg: str = "RS256") -> SigningKey:
        """Return a key of the issuer's kind that it never publishes (a forger's)."""
        kid = f"{self._id}-forged"
        if alg.startswith("ES"):
            return ECKey.import_key(_ec_material(1) | {"kid": kid})
        return RSAKey.import_key(_rsa_material(99) | {"kid": kid})

    def jwks(self) -> dict[str, Any]:
        """Return the published key set."""
        keys = []
        for key in self._published.values():
            public = dict(key.as_dict(private=False))
            public["use"] = "sig"
            public["alg"] = "ES256" if isinstance(key, ECKey) else "RS256"
            keys.append(public)
        return {"keys": keys}

    # Tokens

    def mint(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign `claims` as they are; see the module's description for the choices."""
        if alg == "none":
            unsigned = {"alg": "none", "typ": "JWT", **(headers or {})}
            return f"{_b64(unsigned)}.{_b64(claims)}."
        if key is None:
            chosen = kid or (self._ec_kid if alg.startswith("ES") else self._signing_kid)
            key = self._published[chosen]
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if key.kid is not None:
            header["kid"] = key.kid
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return jwt.encode(header, claims, key, algorithms=[alg])

    def github_claims(self, *, aud: str | list[str] | None, **overrides: Any) -> dict[str, Any]:
        """Return claims shaped like a GitHub Actions ID token's, valid for five minutes."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": aud,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "jti": uuid.uuid4().hex,
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "ref_protected": "true",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "repository": "acme/app",
            "repository_id": "101",
            "repository_owner": "acme",
            "repository_owner_id": "7",
            "repository_visibility": "private",
            "run_id": "4242",
            "run_number": "17",
            "run_attempt": "1",
            "actor": "octocat",
            "actor_id": "1",
            "workflow": "deploy",
            "workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
            "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
            "event_name": "push",
            "runner_environment": "github-hosted",
            "nbf": now - 5,
            "iat": now - 5,
            "exp": now + 300,
        }
        for name, value in {"aud": aud, **overrides}.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    # HTTP

    def app(self) -> Starlette:
        """Return the issuer's ASGI app."""

        async def discovery(request: Request) -> Response:
            self.discovery_fetches += 1
            return JSONResponse(
                {
                    "issuer": self.url,
                    "jwks_uri": f"{self.url}/jwks",
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "userinfo_endpoint": f"{self.url}/userinfo",
                    "response_types_supported": ["code", "id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    "code_challenge_methods_supported": ["S256"],
                    "claims_supported": ["sub", "aud", "iss", "exp", "iat", "nbf"],
                }
            )

        async def jwks(request: Request) -> Response:
            self.jwks_fetches += 1
            return JSONResponse(self.jwks())

        async def authorize(request: Request) -> Response:
            query = dict(request.query_params)
            self.authorize_requests.append(query)
            redirect = query.get("redirect_uri", "")
            answer = {"code": self.code, **({"state": query["state"]} if "state" in query else {})}
            separator = "&" if "?" in redirect else "?"
            return RedirectResponse(f"{redirect}{separator}{urlencode(answer)}", status_code=302)

        async def token(request: Request) -> Response:
            form = {key: str(value) for key, value in (await request.form()).items()}
            self.token_requests.append(form)
            answer = self.on_token(form)
            status, body = answer if isinstance(answer, tuple) else (200, answer)
            return JSONResponse(body, status_code=status)

        async def userinfo(request: Request) -> Response:
            if self.userinfo is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse(self.userinfo)

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/userinfo", userinfo),
            ]
        )


@contextmanager
def serve_oidc_issuer(issuer: OidcIssuer | None = None) -> Iterator[OidcIssuer]:
    """Serve an issuer on a free 127.0.0.1 port until the block ends; yield it, url set."""
    issuer = issuer or OidcIssuer()
    with serve_in_thread(issuer.app(), "the OIDC issuer") as url:
        issuer.url = url
        yield issuer
