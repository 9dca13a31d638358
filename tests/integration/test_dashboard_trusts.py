"""An environment's workload identities on the dashboard: listed, made, deleted, refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from tests.conftest import InProcessServer
from tests.fakes.oidc_issuer import OidcIssuer, serve_oidc_issuer
from tests.integration.test_dashboard import person
from tests.integration.test_resources import Api

AUD = "https://kavach.test"
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with serve_oidc_issuer() as served:
        yield served


@pytest.fixture
async def env(server: InProcessServer) -> dict[str, Any]:
    """Alice's acme/web/prod, and where its trusts are, on the API and on the dashboard."""
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    prod = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return {
        "alice": alice,
        "browser": browser,
        "env": prod,
        "api": f"/environments/{prod['id']}/workload-trusts",
        "page": f"/ui/environments/{prod['id']}/trusts",
    }


def _form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "deploy",
        "issuer": GITHUB,
        "audience": AUD,
        "claim": ["repository", "ref", ""],
        "pattern": ["acme/app", "refs/heads/*", ""],
        "role": "editor",
        "ttl": "30",
        **fields,
    }


async def _listed(env: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await env["alice"].call("GET", env["api"], status=200))["items"]
    return items


async def _events(server: InProcessServer, action: str) -> list[AuditEvent]:
    async with server.runtime.read_sessionmaker() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list(await session.scalars(query.order_by(AuditEvent.id)))


async def test_a_trust_is_made_listed_and_deleted_from_the_page(
    server: InProcessServer, env: dict[str, Any]
) -> None:
    browser = env["browser"]
    empty = await browser.get(env["page"])
    assert empty.status_code == 200, empty.text
    assert 'aria-current="page">Workload identities</a>' in empty.text
    assert "No trusts" in empty.text

    made = await browser.post(env["page"], _form())
    assert made.status_code == 200, made.text
    assert made.headers["HX-Refresh"] == "true"
    assert "Trust <strong>deploy</strong> created." in made.text
    (trust,) = await _listed(env)  # the API's listing: the same trust
    assert trust["conditions"] == {"repository": "acme/app", "ref": "refs/heads/*"}
    assert (trust["role"], trust["token_ttl_seconds"], trust["issuer"]) == ("editor", 1800, GITHUB)
    (event,) = await _events(server, "trust.create")
    assert (event.actor_label, event.details["trust"]) == ("alice", "deploy")

    listed = (await browser.get(env["page"])).text
    assert f"<code>{GITHUB}</code>" in listed
    assert "<code>repository</code> = <code>acme/app</code>" in listed
    assert "30 min" in listed
    assert f'hx-post="trusts/{trust["id"]}/delete"' in listed

    gone = await browser.post(f"{env['page']}/{trust['id']}/delete", {})
    assert gone.status_code == 200, gone.text
    assert "Trust <strong>deploy</strong> deleted" in gone.text
    assert await _listed(env) == []
    (deleted,) = await _events(server, "trust.delete")
    assert deleted.details["tokens_deleted"] == 0
    again = await browser.post(f"{env['page']}/{trust['id']}/delete", {})
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"claim": ["", ""], "pattern": ["", ""]}, "conditions: at least one condition"),
        ({"issuer": "https://issuer.example/?x=1"}, "issuer: must be the issuer&#39;s URL"),
        ({"name": "Deploy!"}, "name: names are 1–63 characters"),  # noqa: RUF001
        ({"claim": ["repository", "repository"]}, "claim repository is given twice"),
        ({"claim": ["", "ref"]}, "without its claim&#39;s name"),
        ({"ttl": "120"}, "token_ttl_seconds: must be at most 3600"),
        ({"role": "owner"}, "role: must be one of"),
    ],
)
async def test_a_refused_trust_is_explained_in_words_and_the_form_kept(
    server: InProcessServer, env: dict[str, Any], fields: dict[str, Any], said: str
) -> None:
    answer = await env["browser"].post(env["page"], _form(audience="https://kept.test", **fields))
    assert answer.status_code == 422, answer.text
    assert "Not created: " in answer.text
    assert said in answer.text
    assert 'value="https://kept.test"' in answer.text  # the form is kept
    assert await _listed(env) == []


async def test_a_name_taken_is_a_conflict_said_in_words(
    server: InProcessServer, env: dict[str, Any]
) -> None:
    assert (await env["browser"].post(env["page"], _form())).status_code == 200
    taken = await env["browser"].post(env["page"], _form(audience="https://other.test"))
    assert taken.status_code == 409, taken.text
    assert "already exists" in taken.text
    assert [t["audience"] for t in await _listed(env)] == [AUD]


@pytest.mark.parametrize("settings_overrides", [{"sync_allow_private_targets": False}])
async def test_where_private_targets_are_not_allowed_the_issuer_must_be_https(
    server: InProcessServer, env: dict[str, Any]
) -> None:
    answer = await env["browser"].post(env["page"], _form(issuer="http://issuer.example"))
    assert answer.status_code == 422, answer.text
    assert "Not created: issuer: must be an https URL" in answer.text
    assert await _listed(env) == []


async def test_deleting_a_trust_ends_the_tokens_it_issued(
    server: InProcessServer, env: dict[str, Any], issuer: OidcIssuer
) -> None:
    body = {
        "name": "ci",
        "issuer": issuer.url,
        "audience": AUD,
        "conditions": {"sub": "repo:acme/app:ref:refs/heads/main"},
    }
    trust = await env["alice"].call("POST", env["api"], body, status=201)
    exchanged = await server.client.post(
        "/api/v1/auth/oidc-token",
        json={
            "token": issuer.mint(issuer.github_claims(aud=AUD)),
            "environment_id": env["env"]["id"],
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    workload = Api(server, exchanged.json()["data"]["access_token"])
    await workload.call("GET", f"/environments/{env['env']['id']}/secrets", status=200)

    listed = (await env["browser"].get(env["page"])).text
    assert "The 1 token in force through it will stop working at once." in listed
    gone = await env["browser"].post(f"{env['page']}/{trust['id']}/delete", {})
    assert gone.status_code == 200, gone.text
    assert "with the 1 token it issued: none of them works any more" in gone.text
    await workload.call("GET", f"/environments/{env['env']['id']}/secrets", status=401)


async def test_only_admins_see_and_manage_trusts(
    server: InProcessServer, env: dict[str, Any]
) -> None:
    trust = await env["alice"].call(
        "POST",
        env["api"],
        {"name": "kept", "issuer": GITHUB, "audience": AUD, "conditions": {"repository": "a/b"}},
        status=201,
    )
    _, bob = await person(server, "bob")
    await env["alice"].call(
        "POST", f"/environments/{env['env']['id']}/members", {"user": "bob", "role": "editor"}
    )
    env_page = await bob.get(f"/ui/environments/{env['env']['id']}/")
    assert env_page.status_code == 200
    assert "Workload identities" not in env_page.text
    assert "/trusts" not in env_page.text
    assert (await bob.get(env["page"])).status_code == 403
    assert (await bob.post(env["page"], _form(name="mine"))).status_code == 403
    assert (await bob.post(f"{env['page']}/{trust['id']}/delete", {})).status_code == 403
    assert [t["name"] for t in await _listed(env)] == ["kept"]
    assert await _events(server, "trust.delete") == []
    # An admin sees the tab; without the CSRF header the browser's cookie changes nothing.
    admin_page = await env["browser"].get(f"/ui/environments/{env['env']['id']}/")
    assert 'href="/ui/environments/' in admin_page.text and "/trusts" in admin_page.text
    forged = await env["browser"].post(f"{env['page']}/{trust['id']}/delete", {}, csrf=False)
    assert forged.status_code == 403
    assert [t["name"] for t in await _listed(env)] == ["kept"]
