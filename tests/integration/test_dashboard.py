"""The dashboard's pages in-process: who sees what, masked values, reveals, commits, drafts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from kavach.server.audit.models import AuditEvent
from kavach.server.auth import service as auth_service
from kavach.server.auth.browser import csrf_token
from kavach.server.auth.tokens import BROWSER_TOKEN_TYPE
from kavach.server.dashboard.pages import DASHBOARD_CSP
from kavach.server.db.base import utcnow
from kavach.server.iam.models import User
from tests.conftest import InProcessServer
from tests.integration.helpers import login
from tests.integration.test_resources import Api

XSS = "<img src=x onerror=alert(1)>"


class Browser:
    """A browser signed in to the dashboard: its session cookie and CSRF header."""

    def __init__(self, server: InProcessServer, token: str) -> None:
        self.client = httpx.AsyncClient(
            transport=server.client._transport, base_url=str(server.client.base_url)
        )
        # The gate takes a login session's signed token as the cookie, as sign-in sets it.
        self.client.cookies.set("kavach_session", token)
        key = server.runtime.keys.jwt_signing_key
        self.csrf = {"X-CSRF-Token": csrf_token(key, token), "HX-Request": "true"}

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, form: Any, *, csrf: bool = True) -> httpx.Response:
        headers = self.csrf if csrf else {"HX-Request": "true"}
        return await self.client.post(path, data=form, headers=headers)


async def person(server: InProcessServer, name: str) -> tuple[Api, Browser]:
    """Log `name` in: their API client and their browser on the dashboard."""
    token = (await login(server, name))["access_token"]
    return Api(server, token), Browser(server, token)


@pytest.fixture
async def tree(server: InProcessServer) -> dict[str, Any]:
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    change = {"message": f"first {XSS}", "set": {"API_KEY": "s3cr3t-value", "HTML": XSS}}
    version = await alice.call(
        "POST", f"/environments/{env['id']}/secrets/versions", change, status=201
    )
    return {
        "alice": alice,
        "browser": browser,
        "org": org,
        "group": group,
        "env": env,
        "version": version,
    }


async def _reads(server: InProcessServer) -> int:
    async with server.runtime.sessionmaker() as session:
        found = select(func.count()).where(AuditEvent.action == "secret.read")
        return int(await session.scalar(found) or 0)


async def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    server: InProcessServer,
) -> None:
    answer = await server.client.get("/ui/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?return_to=%2Fui%2F"
    partial = await server.client.get("/ui/", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"] == "/login?return_to=%2Fui%2F"


async def test_an_expired_session_sends_the_browser_to_sign_in_again(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    async with server.runtime.sessionmaker() as session, session.begin():
        alice = (await session.scalars(select(User).where(User.login == "alice"))).one()
        started, _refresh = await auth_service.start_login_session(
            session,
            user=alice,
            identity_provider="local",
            client_address=None,
            now=utcnow(),
            refresh_ttl=3600,
        )
    # Its cookie's token was signed for 5 minutes, an hour ago.
    expired = server.runtime.access_tokens.issue(
        user_id=alice.id,
        session_id=started.id,
        now=utcnow() - timedelta(hours=1),
        kind=BROWSER_TOKEN_TYPE,
        ttl_seconds=300,
    )
    browser = Browser(server, expired.token)
    env_page = f"/ui/environments/{tree['env']['id']}/"
    answer = await browser.client.get(env_page)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?return_to={quote(env_page, safe='')}"
    # A part of a page asked for by htmx sends the whole page there, not a fragment.
    partial = await browser.client.get(
        f"{env_page}value?name=API_KEY", headers={"HX-Request": "true"}
    )
    assert partial.headers["HX-Redirect"].startswith("/login?return_to=")
    assert "s3cr3t-value" not in partial.text


async def test_the_tree_is_navigated_and_values_stay_masked_until_revealed(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    browser = tree["browser"]
    home = await browser.get("/ui/")
    assert home.status_code == 200
    assert home.headers["content-security-policy"] == DASHBOARD_CSP
    assert f'href="/ui/organizations/{tree["org"]["id"]}"' in home.text
    assert "owner" in home.text
    org_page = await browser.get(f"/ui/organizations/{tree['org']['id']}")
    assert f'href="/ui/secret-groups/{tree["group"]["id"]}"' in org_page.text
    group_page = await browser.get(f"/ui/secret-groups/{tree['group']['id']}")
    assert f'href="/ui/environments/{tree["env"]["id"]}/"' in group_page.text
    searched = await browser.get(f"/ui/secret-groups/{tree['group']['id']}?name=nope")
    assert "prod" not in searched.text.split("<main", 1)[1]

    before = await _reads(server)
    env_page = await browser.get(f"/ui/environments/{tree['env']['id']}/")
    assert env_page.status_code == 200
    assert "API_KEY" in env_page.text
    assert "s3cr3t-value" not in env_page.text  # masked: no value is even read
    assert XSS not in env_page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in env_page.text  # the message, as text
    assert await _reads(server) == before

    value = await browser.get(f"/ui/environments/{tree['env']['id']}/value?name=API_KEY")
    assert value.status_code == 200
    assert "s3cr3t-value" in value.text
    html = await browser.get(f"/ui/environments/{tree['env']['id']}/value?name=HTML")
    assert XSS not in html.text
    assert "&lt;img" in html.text
    assert await _reads(server) == before + 2  # each reveal is a read, audited


async def test_a_draft_commits_and_a_stale_one_is_kept_with_what_changed(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    browser, env = tree["browser"], tree["env"]
    url = f"/ui/environments/{env['id']}/versions"
    draft = {
        "parent_version": tree["version"]["id"],
        "name": ["API_KEY", "NEW_ONE"],
        "action": ["unset", "set"],
        "value": ["", "fresh"],
        "message": "rotate",
    }
    refused = await browser.post(url, draft, csrf=False)
    assert refused.status_code == 403
    assert "csrf_failed" in refused.text
    reads = await _reads(server)
    review = await browser.post(
        url,
        {
            **draft,
            "name": [*draft["name"], "GONE"],
            "action": [*draft["action"], "unset"],
            "value": [*draft["value"], ""],
            "step": "review",
        },
    )
    assert review.status_code == 200 and "HX-Refresh" not in review.headers
    assert "<code>API_KEY</code>: remove" in review.text
    assert "<code>NEW_ONE</code>: add" in review.text
    assert "<code>GONE</code>: nothing to remove: not set" in review.text
    assert 'value="fresh"' in review.text  # the draft is kept, to commit as it is
    assert await _reads(server) == reads  # reviewing reads no value
    versions = await tree["alice"].call("GET", f"/environments/{env['id']}/secrets/versions")
    assert len(versions["items"]) == 1  # and commits nothing
    done = await browser.post(url, draft)
    assert done.status_code == 200, done.text
    assert done.headers["HX-Refresh"] == "true"
    latest = await tree["alice"].call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert latest["secrets"] == {"HTML": XSS, "NEW_ONE": "fresh"}

    # The same draft on the old parent: kept, with what moved meanwhile.
    stale = await browser.post(url, {**draft, "value": ["", "another"]})
    assert stale.status_code == 409
    assert "Someone committed while you edited" in stale.text
    assert 'value="another"' in stale.text
    assert "API_KEY, NEW_ONE" in stale.text

    empty = await browser.post(url, {"parent_version": "", "message": "nothing"})
    assert empty.status_code == 422
    assert "Not committed" in empty.text


async def test_a_viewer_reads_but_cannot_change_and_a_stranger_sees_nothing(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    env = tree["env"]
    _bob_api, bob = await person(server, "bob")
    await tree["alice"].call(
        "POST", f"/environments/{env['id']}/members", {"user": "bob", "role": "viewer"}, status=200
    )
    page = await bob.get(f"/ui/environments/{env['id']}/")
    assert page.status_code == 200
    assert "Change secrets" not in page.text
    assert (await bob.get(f"/ui/environments/{env['id']}/value?name=API_KEY")).status_code == 200
    form = {"name": ["X"], "action": ["set"], "value": ["1"], "message": "m"}
    refused = await bob.post(f"/ui/environments/{env['id']}/versions", form)
    assert refused.status_code == 403
    assert "forbidden" in refused.text

    _carol_api, carol = await person(server, "carol")
    hidden = await carol.get(f"/ui/environments/{env['id']}/")
    assert hidden.status_code == 404
    assert (await carol.get("/ui/")).status_code == 200


async def test_sign_out_ends_the_session(server: InProcessServer, tree: dict[str, Any]) -> None:
    browser = tree["browser"]
    out = await browser.post("/ui/sign-out", {})
    assert out.status_code == 204
    assert out.headers["HX-Redirect"] == "/login"
    again = await browser.get("/ui/")
    assert again.status_code == 303


async def test_history_compares_versions_by_name_and_rolls_back(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, env = tree["alice"], tree["browser"], tree["env"]
    second = await alice.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        {"message": "rotate", "set": {"API_KEY": "n3w"}},
        status=201,
    )
    url = f"/ui/environments/{env['id']}/history"
    listed = await browser.get(url)
    assert listed.status_code == 200
    assert "rotate" in listed.text
    assert "&lt;img src=x" in listed.text and XSS not in listed.text
    compared = await browser.get(f"{url}?from={tree['version']['id']}&to={second['id']}")
    assert "Changed: <code>API_KEY</code>" in compared.text
    assert "n3w" not in compared.text and "s3cr3t-value" not in compared.text

    rolled = await browser.post(
        f"/ui/environments/{env['id']}/rollback",
        {"version_id": tree["version"]["id"], "message": "undo the rotation"},
    )
    assert rolled.status_code == 204
    assert rolled.headers["HX-Redirect"] == url
    latest = await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert latest["secrets"]["API_KEY"] == "s3cr3t-value"
    assert latest["version"]["rollback_of"] == tree["version"]["id"]
    unsaid = await browser.post(
        f"/ui/environments/{env['id']}/rollback", {"version_id": second["id"], "message": ""}
    )
    assert unsaid.status_code == 422


async def test_access_lists_direct_and_inherited_roles_for_admins_only(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, env, group = tree["alice"], tree["env"], tree["group"]
    await login(server, "bob")
    await alice.call(
        "POST", f"/secret-groups/{group['id']}/members", {"user": "bob", "role": "editor"}
    )
    await alice.call(
        "POST", f"/environments/{env['id']}/members", {"user": "erin", "role": "viewer"}
    )  # erin never signed in: a pending invite
    page = await tree["browser"].get(f"/ui/environments/{env['id']}/access")
    assert page.status_code == 200
    assert "bob" in page.text and "payments" in page.text and "(inherited)" in page.text
    assert "Pending invites" in page.text and "erin" in page.text
    env_page = await tree["browser"].get(f"/ui/environments/{env['id']}/")
    assert f'href="/ui/environments/{env["id"]}/access"' in env_page.text

    _api, bob = await person(server, "bob")
    assert '/access"' not in (await bob.get(f"/ui/environments/{env['id']}/")).text
    assert (await bob.get(f"/ui/environments/{env['id']}/access")).status_code == 403


async def test_tokens_are_made_shown_once_and_revoked_by_admins(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    browser, env = tree["browser"], tree["env"]
    base = f"/ui/environments/{env['id']}/tokens"
    made = await browser.post(base, {"name": "ci", "role": "viewer", "days": "7"})
    assert made.status_code == 200, made.text
    secret = made.text.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert secret.startswith("kvt_")
    reader = Api(server, secret)
    read = await reader.call("GET", f"/environments/{env['id']}/secrets", status=200)
    assert read["secrets"]["API_KEY"] == "s3cr3t-value"

    listed = await browser.get(base)
    assert listed.status_code == 200
    assert "ci" in listed.text and secret not in listed.text  # never shown again
    token_id = (await tree["alice"].call("GET", f"/environments/{env['id']}/tokens"))["items"][0][
        "id"
    ]
    revoked = await browser.post(f"{base}/{token_id}/revoke", {})
    assert revoked.status_code == 204
    gone = await server.client.get(
        f"/api/v1/environments/{env['id']}/secrets", headers={"Authorization": f"Bearer {secret}"}
    )
    assert gone.status_code == 401
    bad = await browser.post(base, {"name": "no spaces allowed", "role": "viewer", "days": "7"})
    assert bad.status_code == 422
    assert "Not created" in bad.text
    taken = await browser.post(base, {"name": "ci", "role": "viewer", "days": "7"})
    assert taken.status_code == 409 and "Not created: a token named" in taken.text
    # Digits Python reads as digits but cannot make a number of: refused in words, no 500.
    for days in ("²", "9" * 5000):
        odd = await browser.post(base, {"name": "odd", "role": "viewer", "days": days})
        assert odd.status_code == 422, days[:8]
    # A search for a control character (PostgreSQL text holds no NUL) finds nothing.
    for page in ("/ui/", f"/ui/organizations/{tree['org']['id']}"):
        searched = await browser.get(f"{page}?name=%00")
        assert searched.status_code == 200, page


async def test_references_resolve_on_reveal_and_their_refusals_keep_the_draft(
    server: InProcessServer, tree: dict[str, Any]
) -> None:
    alice, browser, env = tree["alice"], tree["browser"], tree["env"]
    shared = await alice.call(
        "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "shared"}, status=201
    )
    commit = {"message": "m", "set": {"HOST": "db"}}
    await alice.call("POST", f"/environments/{shared['id']}/secrets/versions", commit, status=201)
    url = f"/ui/environments/{env['id']}/versions"
    draft = {"name": ["URL"], "action": ["set"], "value": ["pg://${shared.HOST}"], "message": "m"}
    assert (await browser.post(url, draft)).status_code == 200
    value = await browser.get(f"/ui/environments/{env['id']}/value?name=URL")
    assert (value.status_code, "pg://db" in value.text) == (200, True)

    missing = await browser.post(url, {**draft, "value": ["${shared.NOPE}"]})
    assert missing.status_code == 422
    assert "Not committed: payments/prod.URL refers to payments/shared.NOPE" in missing.text
    assert 'value="${shared.NOPE}"' in missing.text  # the draft is kept
    removal = {"name": ["HOST"], "action": ["unset"], "value": [""], "message": "m"}
    shared_url = f"/ui/environments/{shared['id']}/versions"
    refused = await browser.post(shared_url, removal)
    assert refused.status_code == 409 and "payments/prod.URL -&gt; HOST" in refused.text
    forced = {"message": "m", "unset": ["HOST"], "force": True}
    await alice.call("POST", f"/environments/{shared['id']}/secrets/versions", forced, status=201)
    broken = await browser.get(f"/ui/environments/{env['id']}/value?name=URL")
    assert broken.status_code == 409 and "payments/shared.HOST" in broken.text
