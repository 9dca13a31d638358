"""A fake of GitHub Actions' ID token endpoint (the one `ACTIONS_ID_TOKEN_REQUEST_URL` names).

A job with `permissions: id-token: write` gets two variables: the endpoint's URL (which
already holds a query, `?api-version=2.0`) and a bearer token for it. `GET URL&audience=AUD`
with `Authorization: Bearer TOKEN` answers `{"count": N, "value": JWT}`, an ID token the
test issuer (`tests.fakes.oidc_issuer`) signs, with GitHub's claims for the job and `aud`
set to the audience asked for (GitHub's default without one: the owner's URL).

    with serve_actions_id_tokens(issuer) as actions:
        env = actions.environ()  # ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN, GITHUB_ACTIONS

`actions.claims` overrides the job's claims (`{"ref": "refs/heads/dev"}`); `audiences`
keeps the audience of each request; a wrong bearer token gets 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.oidc_issuer import OidcIssuer
from tests.fakes.serving import serve_in_thread

DEFAULT_AUDIENCE = "https://github.com/acme"


@dataclass
class ActionsIdTokens:
    """The endpoint's state: who signs, what the job's token says, what was asked."""

    issuer: OidcIssuer
    request_token: str = field(default_factory=lambda: "ghrt_" + secrets.token_urlsafe(24))
    claims: dict[str, Any] = field(default_factory=dict)
    audiences: list[str | None] = field(default_factory=list)
    url: str = ""

    def environ(self) -> dict[str, str]:
        """Return the variables GitHub sets in a job allowed to request ID tokens."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/idtoken?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def app(self) -> Starlette:
        """Return the endpoint's ASGI app."""

        async def idtoken(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.request_token}":
                return JSONResponse({"message": "Unauthorized"}, status_code=401)
            audience = request.query_params.get("audience")
            self.audiences.append(audience)
            claims = self.issuer.github_claims(aud=audience or DEFAULT_AUDIENCE, **self.claims)
            return JSONResponse({"count": 1, "value": self.issuer.mint(claims)})

        return Starlette(routes=[Route("/idtoken", idtoken)])


@contextmanager
def serve_actions_id_tokens(issuer: OidcIssuer) -> Iterator[ActionsIdTokens]:
    """Serve the endpoint for `issuer` on a free 127.0.0.1 port; yield its state, url set."""
    actions = ActionsIdTokens(issuer)
    with serve_in_thread(actions.app(), "the Actions ID token endpoint") as url:
        actions.url = url
        yield actions
