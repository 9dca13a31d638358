"""The test OpenID issuer answers as its description says (other tests lean on it)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.oidc_issuer import OidcIssuer


async def test_the_fake_issuer_serves_discovery_keys_and_the_code_flow() -> None:
    issuer = OidcIssuer()
    issuer.url = "http://issuer.test"
    transport = httpx.ASGITransport(app=issuer.app())
    async with httpx.AsyncClient(transport=transport, base_url=issuer.url) as client:
        discovery = (await client.get("/.well-known/openid-configuration")).json()
        assert (discovery["issuer"], discovery["jwks_uri"]) == (issuer.url, f"{issuer.url}/jwks")
        keys = KeySet.import_key_set((await client.get("/jwks")).json())
        assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)

        token = issuer.mint(issuer.github_claims(aud="kavach"))
        assert jwt.decode(token, keys).claims["repository"] == "acme/app"
        old = issuer.signing_kid
        new = issuer.rotate()
        issuer.drop(old)
        rotated = KeySet.import_key_set((await client.get("/jwks")).json())
        assert new in issuer.kids and old not in issuer.kids
        assert jwt.decode(issuer.mint({"iss": issuer.url}), rotated).header["kid"] == new

        back = "https://kavach.test/callback?from=issuer"
        asked = await client.get("/authorize", params={"redirect_uri": back, "state": "s1"})
        assert asked.status_code == 302
        query = parse_qs(urlsplit(asked.headers["location"]).query)
        assert (query["code"], query["state"], query["from"]) == ([issuer.code], ["s1"], ["issuer"])

        assert (await client.post("/token", data={"code": "x"})).status_code == 400
        issuer.on_token = lambda form: {"id_token": form["code"], "token_type": "Bearer"}
        answered = await client.post("/token", data={"code": issuer.code})
        assert answered.json() == {"id_token": issuer.code, "token_type": "Bearer"}
        assert issuer.token_requests[-1] == {"code": issuer.code}

        assert (await client.get("/userinfo")).status_code == 401
        issuer.userinfo = {"sub": "u1", "email": "a@example.com"}
        assert (await client.get("/userinfo")).json()["sub"] == "u1"
