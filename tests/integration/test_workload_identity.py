"""Workload identity: an environment's trusts, and platform OIDC tokens exchanged for tokens.

The issuer is `tests.fakes.oidc_issuer`, served on 127.0.0.1; the server fetches its
discovery document and keys as it would GitHub's.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import OctKey
from sqlalchemy import func, select, update
from typer.testing import Result

from kavach.cli.app import Runtime
from kavach.cli.credentials import Credentials, CredentialStore
from kavach.cli.errors import ExitCode
from kavach.server.audit.models import AuditEvent
from kavach.server.auth.models import ServiceToken
from kavach.server.db.base import utcnow
from kavach.server.oidc.fetch import egress_fetcher
from kavach.server.oidc.keys import IssuerKeys
from kavach.server.providers.egress import Egress
from kavach.server.workload.models import WorkloadTrust
from tests.conftest import InProcessServer
from tests.fakes.actions_id_token import serve_actions_id_tokens
from tests.fakes.oidc_issuer import OidcIssuer, serve_oidc_issuer
from tests.integration.cli_bridge import Recorder, run_cli
from tests.integration.helpers import login
from tests.integration.test_resources import Api, user

AUD = "https://kavach.test"
EXCHANGE = "/api/v1/auth/oidc-token"
MAIN = {"sub": "repo:acme/app:ref:refs/heads/main"}


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with serve_oidc_issuer() as served:
        yield served


@dataclass
class World:
    """Alice's acme/web/{prod,dev}, each with a secret, and the issuer to trust."""

    server: InProcessServer
    alice: Api
    issuer: OidcIssuer
    org: dict[str, Any]
    group: dict[str, Any]
    prod: dict[str, Any]
    dev: dict[str, Any]

    def trusts(self, env: dict[str, Any] | None = None) -> str:
        return f"/environments/{(env or self.prod)['id']}/workload-trusts"

    async def trust(
        self, name: str = "deploy", *, env: dict[str, Any] | None = None, **fields: Any
    ) -> Any:
        body = {
            "name": name,
            "issuer": self.issuer.url,
            "audience": AUD,
            "conditions": MAIN,
            **fields,
        }
        return await self.alice.call("POST", self.trusts(env), body, status=201)

    def token(self, **claims: Any) -> str:
        """A GitHub Actions-shaped token of a push to acme/app's main, for AUD."""
        return self.issuer.mint(self.issuer.github_claims(**{"aud": AUD, **claims}))

    async def exchange(
        self, token: str, *, env: dict[str, Any] | None = None, **fields: Any
    ) -> httpx.Response:
        body = {"token": token, "environment_id": (env or self.prod)["id"], **fields}
        return await self.server.client.post(EXCHANGE, json=body)

    async def admitted(self, token: str, **fields: Any) -> dict[str, Any]:
        answer = await self.exchange(token, **fields)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    async def refused(self, token: str, reason: str, **fields: Any) -> str:
        """Insist the exchange is refused for `reason`; return the message."""
        answer = await self.exchange(token, **fields)
        assert answer.status_code == 401, answer.text
        body = answer.json()
        assert (body["error_code"], body["data"]) == ("oidc_token_refused", {"reason": reason})
        assert token not in answer.text
        message: str = body["error"]
        return message


@pytest.fixture
async def world(server: InProcessServer, issuer: OidcIssuer) -> World:
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    envs = {}
    for name in ("prod", "dev"):
        envs[name] = await alice.call(
            "POST", f"/secret-groups/{group['id']}/environments", {"name": name}, status=201
        )
        await alice.call(
            "POST",
            f"/environments/{envs[name]['id']}/secrets/versions",
            {"message": "first", "set": {"API_KEY": f"{name}-key"}},
            status=201,
        )
    return World(server, alice, issuer, org, group, envs["prod"], envs["dev"])


def bearer_api(world: World, token: str) -> Api:
    return Api(world.server, token)


# Trusts


async def test_trusts_are_created_listed_read_and_deleted(world: World) -> None:
    alice = world.alice
    made = await world.trust(
        "deploy",
        conditions={"repository": "acme/app", "ref": "refs/heads/main"},
        role="editor",
        token_ttl_seconds=600,
    )
    assert {k: made[k] for k in ("name", "issuer", "audience", "conditions", "role")} == {
        "name": "deploy",
        "issuer": world.issuer.url,
        "audience": AUD,
        "conditions": {"repository": "acme/app", "ref": "refs/heads/main"},
        "role": "editor",
    }
    assert (made["token_ttl_seconds"], made["environment_id"]) == (600, world.prod["id"])
    second = await world.trust("preview")
    assert second["role"] == "viewer" and second["token_ttl_seconds"] == 900  # the defaults

    listed = await alice.call("GET", world.trusts(), status=200)
    assert [t["name"] for t in listed["items"]] == ["deploy", "preview"]
    first = await alice.call("GET", f"{world.trusts()}?limit=1", status=200)
    rest = await alice.call("GET", f"{world.trusts()}?limit=1&cursor={first['next']}")
    assert [t["name"] for t in first["items"] + rest["items"]] == ["deploy", "preview"]
    named = await alice.call("GET", f"{world.trusts()}?name=preview", status=200)
    assert [t["id"] for t in named["items"]] == [second["id"]]
    assert (await alice.call("GET", world.trusts(world.dev), status=200))["items"] == []
    assert await alice.call("GET", f"{world.trusts()}/{made['id']}", status=200) == made

    again = await alice.call("POST", world.trusts(), {**_body(world), "name": "deploy"})
    assert again["error_code"] == "already_exists"
    for missing in (f"{world.trusts(world.dev)}/{made['id']}", f"{world.trusts()}/not-an-id"):
        assert (await alice.call("GET", missing, status=404))["error_code"] == "not_found"

    deleted = await alice.call("DELETE", f"{world.trusts()}/{made['id']}", status=200)
    assert (deleted["name"], deleted["tokens_deleted"]) == ("deploy", 0)
    await alice.call("GET", f"{world.trusts()}/{made['id']}", status=404)
    await alice.call("DELETE", f"{world.trusts()}/{made['id']}", status=404)
    events = await _events(world, "trust.create", "trust.delete")
    assert [(e.action, e.details["trust"], e.environment_id) for e in events] == [
        ("trust.create", "deploy", _uuid(world.prod)),
        ("trust.create", "preview", _uuid(world.prod)),
        ("trust.delete", "deploy", _uuid(world.prod)),
    ]


def _body(world: World, **fields: Any) -> dict[str, Any]:
    return {
        "name": "deploy",
        "issuer": world.issuer.url,
        "audience": AUD,
        "conditions": MAIN,
        **fields,
    }


def _uuid(resource: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(resource["id"])


REFUSED_TRUSTS: list[tuple[dict[str, Any], str]] = [
    ({"conditions": {}}, "conditions: at least one condition is required: an issuer such as"),
    (
        {"conditions": {f"c{n}": "x" for n in range(21)}},
        "conditions: at most 20 conditions",
    ),
    ({"conditions": {"bad claim": "x"}}, "conditions: claim names are 1-64 characters"),
    ({"conditions": {"c" * 65: "x"}}, "conditions: claim names are 1-64 characters"),
    ({"conditions": {"ref": ""}}, "conditions: the pattern of claim ref must not be empty"),
    ({"conditions": {"ref": "x" * 257}}, "conditions: the pattern of claim ref must be at most"),
    ({"conditions": {"ref": 3}}, "conditions.ref: must be a string"),
    ({"conditions": None}, "conditions: must be a JSON object"),
    ({"role": "admin"}, "role: must be one of 'viewer' or 'editor'"),
    ({"role": "owner"}, "role: must be one of 'viewer' or 'editor'"),
    ({"token_ttl_seconds": 59}, "token_ttl_seconds: must be at least 60"),
    ({"token_ttl_seconds": 3601}, "token_ttl_seconds: must be at most 3600"),
    ({"issuer": "token.actions.githubusercontent.com"}, "issuer: must be the issuer's URL"),
    ({"issuer": "ftp://issuer.example"}, "issuer: must be the issuer's URL"),
    ({"issuer": "https://issuer.example/?x=1"}, "issuer: must be the issuer's URL"),
    ({"issuer": "https://user@issuer.example"}, "issuer: must be the issuer's URL"),
    ({"audience": ""}, "audience: must not be empty"),
    ({"name": "Deploy"}, "name: names are 1"),
    ({"extra": 1}, "extra: is not a field of this request"),
]


async def test_bad_trusts_are_refused_in_words(world: World) -> None:
    wrong = []
    for fields, said in REFUSED_TRUSTS:
        body = _body(world, **fields)
        answer = await world.alice.call("POST", world.trusts(), body)
        said = f"invalid request: {said}"
        if answer.get("error_code") != "validation_failed" or not answer["error"].startswith(said):
            wrong.append(f"{fields}: {answer.get('error')}")
    assert wrong == []
    assert (await world.alice.call("GET", world.trusts(), status=200))["items"] == []


@pytest.mark.parametrize("settings_overrides", [{"sync_allow_private_targets": False}])
async def test_where_private_targets_are_not_allowed_issuers_are_https_and_public(
    world: World,
) -> None:
    refused = await world.alice.call("POST", world.trusts(), _body(world), status=422)
    assert refused["error"] == "invalid request: issuer: must be an https URL"
    # An https issuer on a loopback address: the fetch of its keys is refused, not made.
    local = world.issuer.url.replace("http://", "https://")
    await world.trust(issuer=local)
    before = world.issuer.discovery_fetches
    answer = await world.exchange(world.issuer.mint(world.issuer.github_claims(aud=AUD, iss=local)))
    assert answer.status_code == 502, answer.text
    assert answer.json()["error_code"] == "identity_provider_error"
    assert "non-public address" in answer.json()["error"]
    assert world.issuer.discovery_fetches == before


async def test_service_tokens_and_workloads_may_not_manage_trusts(world: World) -> None:
    trust = await world.trust()
    made = await world.alice.call(
        "POST", f"/environments/{world.prod['id']}/tokens", {"name": "ci", "role": "editor"}
    )
    workload = (await world.admitted(world.token()))["access_token"]
    for token in (made["token"], workload):
        robot = bearer_api(world, token)
        await robot.call("GET", world.trusts(), status=403)
        await robot.call("GET", f"{world.trusts()}/{trust['id']}", status=403)
        await robot.call("POST", world.trusts(), _body(world, name="mine"), status=403)
        await robot.call("DELETE", f"{world.trusts()}/{trust['id']}", status=403)


# The exchange


async def test_a_workload_token_works_on_its_environment_only_with_its_role(world: World) -> None:
    await world.trust()
    data = await world.admitted(world.token())
    assert set(data) == {
        "access_token",
        "token_type",
        "expires_in",
        "environment_id",
        "role",
        "trust",
    }
    assert data["access_token"].startswith("kvt_")
    assert (data["token_type"], data["expires_in"], data["role"], data["trust"]) == (
        "Bearer",
        900,
        "viewer",
        "deploy",
    )
    assert data["environment_id"] == world.prod["id"]
    robot = bearer_api(world, data["access_token"])
    read = await robot.call("GET", f"/environments/{world.prod['id']}/secrets", status=200)
    assert read["secrets"] == {"API_KEY": "prod-key"}
    change = {"message": "from ci", "set": {"X": "1"}}
    path = f"/environments/{world.prod['id']}/secrets/versions"
    assert (await robot.call("POST", path, change, status=403))["error_code"] == "forbidden"
    await robot.call("GET", f"/environments/{world.dev['id']}/secrets", status=404)
    await robot.call("GET", f"/environments/{world.dev['id']}", status=404)
    await robot.call("GET", f"/organizations/{world.org['id']}", status=404)

    await world.trust("writer", env=world.dev, role="editor")
    editor = await world.admitted(world.token(), env=world.dev)
    assert (editor["role"], editor["environment_id"]) == ("editor", world.dev["id"])
    writer = bearer_api(world, editor["access_token"])
    await writer.call("POST", f"/environments/{world.dev['id']}/secrets/versions", change, 201)
    await writer.call("GET", f"/environments/{world.prod['id']}/secrets", status=404)


async def test_the_environment_may_be_named_and_the_token_says_it_is_a_workloads(
    world: World,
) -> None:
    trust = await world.trust()
    names = {"organization": "acme", "secret_group": "web", "environment": "prod"}
    body = {"token": world.token(), **names}
    answer = await world.server.client.post(EXCHANGE, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["environment_id"] == world.prod["id"]

    who = await bearer_api(world, data["access_token"]).call("GET", "/auth/whoami", status=200)
    assert who["type"] == "service_token"
    assert (who["token"]["workload_trust_id"], who["token"]["subject"]) == (
        trust["id"],
        MAIN["sub"],
    )
    assert who["token"]["name"].startswith("deploy-")
    listed = await world.alice.call("GET", f"/environments/{world.prod['id']}/tokens")
    assert [(t["workload_trust_id"], t["subject"], t["role"]) for t in listed["items"]] == [
        (trust["id"], MAIN["sub"], "viewer")
    ]
    # Revoking one job's token works as for any service token.
    token_id = listed["items"][0]["id"]
    await world.alice.call("DELETE", f"/environments/{world.prod['id']}/tokens/{token_id}", 200)
    gone = await bearer_api(world, data["access_token"]).call("GET", "/auth/whoami", status=401)
    assert gone["error_code"] == "invalid_token"

    for bad in (
        {"token": world.token()},
        {"token": world.token(), "organization": "acme", "secret_group": "web"},
        {"token": world.token(), "environment_id": world.prod["id"], **names},
    ):
        refused = await world.server.client.post(EXCHANGE, json=bad)
        assert refused.status_code == 422, refused.text
        assert "name the environment either by environment_id" in refused.json()["error"]


async def test_an_unknown_issuer_or_environment_gets_one_refusal(
    world: World, issuer: OidcIssuer
) -> None:
    await world.trust()
    with serve_oidc_issuer() as other:
        stranger = other.mint(other.github_claims(aud=AUD))
        said = await world.refused(stranger, "no_trust")
        assert said == f'no trust of this environment accepts tokens from issuer "{other.url}"'
        assert other.discovery_fetches == 0  # nobody trusts it: it is never asked
    token = world.token()
    expected = f'no trust of this environment accepts tokens from issuer "{issuer.url}"'
    assert await world.refused(token, "no_trust", env=world.dev) == expected  # no trust there
    unknown = {"id": "00000000-0000-4000-8000-000000000000"}
    assert await world.refused(token, "no_trust", env=unknown) == expected
    for names in (
        {"organization": "acme", "secret_group": "web", "environment": "nope"},
        {"organization": "nope", "secret_group": "web", "environment": "prod"},
    ):
        answer = await world.server.client.post(EXCHANGE, json={"token": token, **names})
        assert (answer.status_code, answer.json()["error"]) == (401, expected)
    assert await world.refused(token, "no_trust", trust="other") == (
        f'no trust named "other" of this environment accepts tokens from issuer "{issuer.url}"'
    )


async def test_tokens_that_do_not_verify_are_refused(world: World, issuer: OidcIssuer) -> None:
    await world.trust()
    good = world.token()
    header, _claims, signature = good.split(".")
    forged_claims = world.token(sub="repo:acme/app:ref:refs/heads/evil").split(".")[1]
    tampered = f"{header}.{forged_claims}.{signature}"
    assert await world.refused(tampered, "signature") == "the token's signature is not valid"

    claims = issuer.github_claims(aud=AUD)
    forged = issuer.mint(claims, key=issuer.unpublished_key())
    said = await world.refused(forged, "unknown_key")
    assert said == "the token is signed with a key the issuer does not publish"
    secret = OctKey.import_key(b"a shared secret a client could know!")
    hs256 = issuer.mint(claims, alg="HS256", key=secret)
    assert "'HS256', which this issuer is not trusted to use" in await world.refused(
        hs256, "algorithm"
    )
    unsigned = issuer.mint(claims, alg="none")
    assert "'none', which this issuer is not trusted to use" in await world.refused(
        unsigned, "algorithm"
    )
    for junk in ("not-a-jwt", "a.b.c", f"{header}.bm90IGpzb24.{signature}"):
        await world.refused(junk, "malformed")
    no_issuer = issuer.mint(issuer.github_claims(aud=AUD, iss=None))
    assert await world.refused(no_issuer, "issuer") == "the token names no issuer (iss claim)"

    assert (await world.admitted(issuer.mint(claims, alg="ES256")))["trust"] == "deploy"
    assert (await world.admitted(good))["trust"] == "deploy"
    failures = await _events(world, "token.exchange", outcome="failure")
    assert all(good not in str(e.details) and tampered not in str(e.details) for e in failures)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_rotated_key_is_fetched_and_unknown_keys_refetch_at_most_twice_a_minute(
    world: World, issuer: OidcIssuer
) -> None:
    runtime = world.server.runtime
    clock = Clock()
    fetch = egress_fetcher(runtime.http, Egress.of(runtime.settings))
    runtime.workload_issuers = IssuerKeys(fetch, clock=clock)
    await world.trust()
    await world.admitted(world.token())
    await world.admitted(world.token())
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)  # cached

    old = issuer.signing_kid
    issuer.rotate()
    clock.now += 31
    await world.admitted(world.token())  # an unknown key id: the key set is fetched again
    assert issuer.jwks_fetches == 2
    issuer.drop(old)
    forged = issuer.mint(issuer.github_claims(aud=AUD), key=issuer.unpublished_key())
    clock.now += 1
    await world.refused(forged, "unknown_key")  # too soon after the last fetch: none
    assert issuer.jwks_fetches == 2
    await world.admitted(world.token())
    clock.now += 31
    await world.refused(forged, "unknown_key")  # fetched once more, still not published
    assert issuer.jwks_fetches == 3
    stale = issuer.mint(issuer.github_claims(aud=AUD), kid=issuer.signing_kid)
    clock.now += 3601  # over the cache's age: both are fetched again
    await world.admitted(stale)
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (4, 4)


async def test_times_are_checked_with_a_minute_of_leeway(world: World) -> None:
    await world.trust()
    now = int(time.time())
    expired = world.token(iat=now - 600, nbf=now - 600, exp=now - 90)
    assert (await world.refused(expired, "expired")).startswith("the token expired at ")
    early = world.token(nbf=now + 300)
    assert (await world.refused(early, "not_yet_valid")).startswith(
        "the token is not valid before "
    )
    future = world.token(iat=now + 300)
    assert "in the future" in await world.refused(future, "issued_in_future")
    forever = world.token(exp=None)
    assert await world.refused(forever, "missing_claim") == "the token has no exp claim"
    assert "exp claim is not valid" in await world.refused(
        world.token(exp="tomorrow"), "invalid_claim"
    )
    await world.admitted(world.token(exp=now - 30))  # within the leeway
    await world.admitted(world.token(nbf=now + 30, iat=now + 30))


async def test_the_audience_must_be_the_trusts(world: World) -> None:
    await world.trust()
    said = await world.refused(world.token(aud="https://elsewhere.test"), "audience")
    assert said == (
        'the token matches no trust of this environment: trust "deploy": the token\'s '
        'audience is "https://elsewhere.test", not "https://kavach.test"'
    )
    await world.admitted(world.token(aud=["https://elsewhere.test", AUD]))
    await world.refused(world.token(aud=None), "audience")


async def test_each_kind_of_condition(world: World) -> None:
    await world.trust(
        "deploy",
        conditions={
            "ref": "refs/heads/main",  # exact
            "sub": "repo:acme/*:ref:refs/heads/main",  # a glob
            "run_number": "1?",  # a number, compared as its JSON text
            "protected": "true",  # a boolean, the same
            "labels": '{"tier":"*"}',  # an object, the same
        },
    )
    extra = {"run_number": 17, "protected": True, "labels": {"tier": "gold"}}
    await world.admitted(world.token(**extra))
    message = "the token matches no trust of this environment: "
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"ref": "refs/heads/dev"},
            'trust "deploy": claim "ref" is "refs/heads/dev", which does not match '
            '"refs/heads/main"',
        ),
        (
            {"sub": "repo:other/app:ref:refs/heads/main"},
            'trust "deploy": claim "sub" is "repo:other/app:ref:refs/heads/main", which '
            'does not match "repo:acme/*:ref:refs/heads/main"',
        ),
        ({"run_number": 170}, 'trust "deploy": claim "run_number" is "170", which'),
        ({"run_number": None}, 'trust "deploy": the token has no claim "run_number"'),
        ({"protected": False}, 'trust "deploy": claim "protected" is "false", which'),
        ({"protected": "True"}, 'trust "deploy": claim "protected" is "True", which'),
        ({"labels": ["tier"]}, 'trust "deploy": claim "labels" is "[\\"tier\\"]", which'),
    ]
    wrong = []
    for changed, said in cases:
        answer = await world.exchange(world.token(**{**extra, **changed}))
        body = answer.json()
        if answer.status_code != 401 or not body["error"].startswith(message + said):
            wrong.append(f"{changed}: {answer.status_code} {body}")
        elif body["data"] != {"reason": "conditions"}:
            wrong.append(f"{changed}: {body['data']}")
    assert wrong == []


async def test_brackets_and_stars_in_a_value_still_match_it_exactly(world: World) -> None:
    await world.trust(conditions={"environment": "prod[eu]*"})
    await world.admitted(world.token(environment="prod[eu]*"))
    await world.admitted(world.token(environment="prode-west"))  # as a glob, too
    await world.refused(world.token(environment="prod[eu]-west"), "conditions")


async def test_the_first_trust_that_matches_wins_and_a_refusal_names_each(world: World) -> None:
    await world.trust("main", conditions={"ref": "refs/heads/main"})
    await world.trust("dev", conditions={"ref": "refs/heads/dev"}, role="editor")
    await world.trust("tags", conditions={"ref": "refs/tags/*"}, audience="https://other.test")
    on_dev = await world.admitted(world.token(ref="refs/heads/dev"))
    assert (on_dev["trust"], on_dev["role"]) == ("dev", "editor")
    on_main = await world.admitted(world.token(ref="refs/heads/main"))
    assert (on_main["trust"], on_main["role"]) == ("main", "viewer")
    said = await world.refused(world.token(ref="refs/heads/feature"), "conditions")
    assert said == (
        "the token matches no trust of this environment: "
        'trust "main": claim "ref" is "refs/heads/feature", which does not match '
        '"refs/heads/main"; '
        'trust "dev": claim "ref" is "refs/heads/feature", which does not match '
        '"refs/heads/dev"; '
        'trust "tags": the token\'s audience is "https://kavach.test", not "https://other.test"'
    )
    # Named, only that trust is tried.
    only = await world.refused(world.token(ref="refs/heads/dev"), "conditions", trust="main")
    assert 'trust "dev"' not in only and 'trust "main"' in only
    named = await world.admitted(world.token(ref="refs/heads/dev"), trust="dev")
    assert named["trust"] == "dev"


async def test_a_token_lives_the_trusts_time_and_never_over_an_hour(world: World) -> None:
    short = await world.trust("short", token_ttl_seconds=60)
    data = await world.admitted(world.token(), trust="short")
    assert data["expires_in"] == 60
    async with world.server.runtime.sessionmaker() as session, session.begin():
        # A trust row saying more than the API allows still gives an hour at most.
        await session.execute(
            update(WorkloadTrust)
            .where(WorkloadTrust.name == short["name"])
            .values(token_ttl_seconds=7200)
        )
    before = utcnow()
    capped = await world.admitted(world.token(), trust="short")
    assert capped["expires_in"] == 3600
    async with world.server.runtime.read_sessionmaker() as session:
        expires = await session.scalar(
            select(func.max(ServiceToken.expires_at)).where(
                ServiceToken.workload_trust_id.is_not(None)
            )
        )
    assert expires is not None
    assert before + timedelta(seconds=3600) <= expires <= utcnow() + timedelta(seconds=3600)


async def test_deleting_a_trust_ends_its_tokens_at_once(world: World) -> None:
    trust = await world.trust()
    other = await world.trust("other", conditions={"ref": "refs/heads/*"})
    tokens = [(await world.admitted(world.token()))["access_token"] for _ in range(2)]
    kept = (await world.admitted(world.token(), trust="other"))["access_token"]
    secrets = f"/environments/{world.prod['id']}/secrets"
    for token in (*tokens, kept):
        robot = bearer_api(world, token)
        for _ in range(2):  # the second is admitted from the access cache
            await robot.call("GET", secrets, status=200)
    deleted = await world.alice.call("DELETE", f"{world.trusts()}/{trust['id']}", status=200)
    assert deleted["tokens_deleted"] == 2
    for token in tokens:
        refused = await bearer_api(world, token).call("GET", secrets, status=401)
        assert refused["error_code"] == "invalid_token"
        await bearer_api(world, token).call("GET", f"/environments/{world.prod['id']}", 401)
    await bearer_api(world, kept).call("GET", secrets, status=200)
    await world.refused(world.token(), "no_trust", trust="deploy")
    async with world.server.runtime.read_sessionmaker() as session:
        left = await session.scalars(select(ServiceToken.workload_trust_id))
        assert set(left) == {_uuid(other)}


async def test_long_expired_tokens_of_the_trust_are_pruned_at_its_next_exchange(
    world: World,
) -> None:
    await world.trust()
    for _ in range(3):
        await world.admitted(world.token())
    async with world.server.runtime.sessionmaker() as session, session.begin():
        ids = list(await session.scalars(select(ServiceToken.id).order_by(ServiceToken.id)))
        ages = [timedelta(days=2), timedelta(hours=23), timedelta(0)]
        for token_id, age in zip(ids, ages, strict=True):
            await session.execute(
                update(ServiceToken)
                .where(ServiceToken.id == token_id)
                .values(expires_at=utcnow() - age)
            )
    await world.admitted(world.token())
    async with world.server.runtime.read_sessionmaker() as session:
        left = set(await session.scalars(select(ServiceToken.id)))
    assert ids[0] not in left and {ids[1], ids[2]} <= left and len(left) == 3


async def test_exchanges_are_audited_without_the_token(world: World) -> None:
    await world.trust()
    good = world.token()
    data = await world.admitted(good)
    wrong_ref = world.token(ref="refs/heads/dev", sub="repo:acme/app:ref:refs/heads/dev")
    await world.refused(wrong_ref, "conditions")
    forged = world.issuer.mint(
        world.issuer.github_claims(aud=AUD, sub="repo:evil/app"),
        key=world.issuer.unpublished_key(),
    )
    await world.refused(forged, "unknown_key")
    async with world.server.runtime.read_sessionmaker() as session:
        events = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        token_id = await session.scalar(
            select(ServiceToken.id).where(ServiceToken.workload_trust_id.is_not(None))
        )
    exchanges = [e for e in events if e.action == "token.exchange"]
    assert [(e.outcome, e.actor_type) for e in exchanges] == [
        ("success", "service_token"),
        ("failure", "anonymous"),
        ("failure", "anonymous"),
    ]
    success, mismatched, unverified = exchanges
    assert success.actor_id == token_id and success.resource_id == str(token_id)
    assert success.details == {
        "trust": "deploy",
        "issuer": world.issuer.url,
        "subject": MAIN["sub"],
        "role": "viewer",
    }
    assert success.environment_id == _uuid(world.prod)
    assert mismatched.details == {
        "reason": "conditions",
        "issuer": world.issuer.url,
        "subject": "repo:acme/app:ref:refs/heads/dev",  # the signature held
    }
    assert mismatched.environment_id == _uuid(world.prod)
    assert unverified.details == {"reason": "unknown_key", "issuer": world.issuer.url}
    for event in events:
        row = " ".join(str(getattr(event, column.key)) for column in AuditEvent.__table__.c)
        for secret in (good, wrong_ref, forged, data["access_token"]):
            assert secret not in row


async def test_an_unreachable_issuer_is_a_502_and_audited(world: World) -> None:
    with serve_oidc_issuer() as gone:
        url = gone.url
        token = gone.mint(gone.github_claims(aud=AUD))
    await world.trust(issuer=url)
    answer = await world.exchange(token)
    assert answer.status_code == 502, answer.text
    assert answer.json()["error_code"] == "identity_provider_error"
    assert "could not reach" in answer.json()["error"]
    (event,) = await _events(world, "token.exchange")
    assert (event.outcome, event.details) == (
        "failure",
        {"reason": "issuer_unavailable", "issuer": url},
    )


@pytest.mark.parametrize("auth_overrides", [{"rate_limit_oidc_token": "3/minute"}])
async def test_the_exchange_is_rate_limited_per_address(world: World) -> None:
    await world.trust()
    statuses = [(await world.exchange(world.token())).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.server.app, client=("127.0.0.2", 50000)),
        base_url="http://127.0.0.1:8080",
    )
    async with other:
        body = {"token": world.token(), "environment_id": world.prod["id"]}
        assert (await other.post(EXCHANGE, json=body)).status_code == 200


async def _events(world: World, *actions: str, outcome: str | None = None) -> list[AuditEvent]:
    async with world.server.runtime.read_sessionmaker() as session:
        query = select(AuditEvent).where(AuditEvent.action.in_(actions))
        if outcome is not None:
            query = query.where(AuditEvent.outcome == outcome)
        return list(await session.scalars(query.order_by(AuditEvent.id)))


# The command line, against this server (its surface does not depend on the database)

SERVER = "http://127.0.0.1:8080"
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CI job's environment: no login, no KAVACH_TOKEN, the context in variables."""
    for name in list(os.environ):
        if name.startswith(("KAVACH_", "ACTIONS_", "GITHUB_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    for name, value in {
        "KAVACH_HOME": str(home),
        "KAVACH_CREDENTIAL_STORE": "file",
        "KAVACH_SERVER": SERVER,
        "KAVACH_ORG": "acme",
        "KAVACH_GROUP": "web",
        "KAVACH_ENV": "prod",
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    return home


async def _cli(world: World, *args: str) -> tuple[Result, list[tuple[str, str]]]:
    bridge = Recorder(world.server, asyncio.get_running_loop())
    runtime = Runtime(
        transport=bridge, stdout_is_terminal=lambda: False, stdin_is_terminal=lambda: False
    )
    return await run_cli(*args, runtime=runtime), bridge.sent


@ON_SQLITE
async def test_in_github_actions_the_cli_signs_in_with_the_jobs_token(
    world: World, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.trust(audience=SERVER)  # what the CLI asks GitHub for by default
    with serve_actions_id_tokens(world.issuer) as actions:
        for name, value in actions.environ().items():
            monkeypatch.setenv(name, value)
        result, sent = await _cli(world, "secret", "get", "API_KEY")
        assert (result.exit_code, result.stdout) == (0, "prod-key"), result.output
        assert sent == [
            ("POST", "/auth/oidc-token"),
            ("GET", f"/environments/{world.prod['id']}/secrets"),
        ]
        assert actions.audiences == [SERVER]
        assert not (cli_env / "credentials.json").exists()  # in memory only

        actions.claims = {"sub": "repo:acme/app:ref:refs/heads/dev"}
        refused, _ = await _cli(world, "secret", "get", "API_KEY")
        assert refused.exit_code == ExitCode.AUTH, refused.output
        assert refused.stderr == (
            f"Error: {SERVER} refused the workload's OIDC token: the token matches no trust "
            'of this environment: trust "deploy": claim "sub" is '
            '"repo:acme/app:ref:refs/heads/dev", which does not match '
            '"repo:acme/app:ref:refs/heads/main" (oidc_token_refused)\n'
        )

        monkeypatch.setenv("KAVACH_OIDC_AUDIENCE", AUD)
        monkeypatch.setenv("KAVACH_OIDC_TRUST", "ci")
        actions.claims = {}
        await world.trust("ci", env=world.dev)
        result, sent = await _cli(world, "secret", "get", "API_KEY", "--env", "dev")
        assert (result.exit_code, result.stdout) == (0, "dev-key"), result.output
        assert actions.audiences[-1] == AUD

        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-jobs")
        refused, _ = await _cli(world, "secret", "get", "API_KEY", "--env", "dev")
        assert refused.exit_code == ExitCode.AUTH, refused.output
        assert "GitHub Actions' ID token endpoint refused a token (HTTP 401)" in refused.stderr
        assert "not-the-jobs" not in refused.output


@ON_SQLITE
async def test_a_token_file_is_read_at_each_run(
    world: World, cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.trust()
    projected = tmp_path / "token"
    projected.write_text(world.token() + "\n")
    monkeypatch.setenv("KAVACH_OIDC_TOKEN_FILE", str(projected))
    result, sent = await _cli(world, "secret", "get", "API_KEY")
    assert (result.exit_code, result.stdout) == (0, "prod-key"), result.output
    assert sent[0] == ("POST", "/auth/oidc-token")

    projected.write_text(world.token(sub="system:serviceaccount:default:other"))  # rotated
    refused, _ = await _cli(world, "secret", "get", "API_KEY")
    assert refused.exit_code == ExitCode.AUTH, refused.output
    assert 'claim "sub" is "system:serviceaccount:default:other"' in refused.stderr

    other = tmp_path / "other-token"
    other.write_text(world.token())
    by_option, _ = await _cli(world, "--oidc-token-file", str(other), "secret", "get", "API_KEY")
    assert (by_option.exit_code, by_option.stdout) == (0, "prod-key"), by_option.output

    projected.unlink()
    missing, sent = await _cli(world, "secret", "get", "API_KEY")
    assert missing.exit_code == ExitCode.AUTH, missing.output
    assert f"cannot read the OIDC token file {projected}" in missing.stderr
    assert sent == []

    monkeypatch.delenv("KAVACH_OIDC_TOKEN_FILE")
    monkeypatch.setenv("KAVACH_OIDC_TOKEN", world.token())
    result, _ = await _cli(world, "secret", "get", "API_KEY")
    assert (result.exit_code, result.stdout) == (0, "prod-key"), result.output


@ON_SQLITE
async def test_a_stored_login_or_kavach_token_wins_over_github_actions(
    world: World, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.trust(audience=SERVER)
    with serve_actions_id_tokens(world.issuer) as actions:
        for name, value in actions.environ().items():
            monkeypatch.setenv(name, value)
        alice = world.alice.headers["Authorization"].removeprefix("Bearer ")
        monkeypatch.setenv("KAVACH_TOKEN", alice)
        result, sent = await _cli(world, "secret", "get", "API_KEY")
        assert result.exit_code == 0, result.output
        assert ("POST", "/auth/oidc-token") not in sent and actions.audiences == []

        monkeypatch.delenv("KAVACH_TOKEN")
        tokens = await login(world.server, "alice")
        CredentialStore(cli_env).save(SERVER, Credentials.from_token_response(tokens))
        result, sent = await _cli(world, "secret", "get", "API_KEY")
        assert result.exit_code == 0, result.output
        assert ("POST", "/auth/oidc-token") not in sent and actions.audiences == []

        # A token asked for by name is used even then.
        monkeypatch.setenv("KAVACH_OIDC_TOKEN", world.token(aud=SERVER))
        result, sent = await _cli(world, "secret", "get", "API_KEY")
        assert result.exit_code == 0, result.output
        assert sent[0] == ("POST", "/auth/oidc-token")


@ON_SQLITE
async def test_trust_commands(world: World, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", world.alice.headers["Authorization"].removeprefix("Bearer "))
    made, _ = await _cli(
        world,
        "trust",
        "create",
        "deploy",
        "--issuer",
        world.issuer.url,
        "--condition",
        "repository=acme/app",
        "-c",
        "ref=refs/heads/main",
        "--role",
        "editor",
        "--ttl",
        "10m",
    )
    assert made.exit_code == 0, made.output
    assert made.stdout == (
        "Created trust 'deploy' for environment acme/web/prod: tokens of "
        f"{world.issuer.url} for {SERVER} sign in as editor.\n"
    )
    listed, _ = await _cli(world, "trust", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        "Name\tIssuer\tAudience\tConditions\tRole\tToken life",
        f"deploy\t{world.issuer.url}\t{SERVER}\tref=refs/heads/main, repository=acme/app\t"
        "editor\t10m",
    ]
    as_json, _ = await _cli(world, "trust", "list", "--json")
    (item,) = json.loads(as_json.stdout)["items"]
    assert (item["token_ttl_seconds"], item["role"]) == (600, "editor")

    none, sent = await _cli(world, "trust", "create", "open", "--issuer", world.issuer.url)
    assert none.exit_code == ExitCode.LOCAL, none.output
    assert "give at least one --condition CLAIM=PATTERN" in none.stderr
    assert sent == []
    bad, _ = await _cli(
        world, "trust", "create", "bad", "--issuer", world.issuer.url, "-c", "bad claim=x"
    )
    assert bad.exit_code == ExitCode.SERVER, bad.output
    assert "claim names are 1-64 characters" in bad.stderr

    unconfirmed, _ = await _cli(world, "trust", "delete", "deploy")
    assert unconfirmed.exit_code == ExitCode.LOCAL, unconfirmed.output
    deleted, _ = await _cli(world, "trust", "delete", "deploy", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == (
        "Deleted trust 'deploy' of environment acme/web/prod; 0 token(s) it issued ended.\n"
    )
    gone, _ = await _cli(world, "trust", "delete", "deploy", "--yes")
    assert gone.exit_code == ExitCode.SERVER, gone.output
    assert "no workload trust named 'deploy' in environment acme/web/prod" in gone.stderr
