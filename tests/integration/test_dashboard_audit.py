"""The dashboard's audit trail: filtered by who, what and when, paged, refused, verified."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from kavach.server.audit.models import AuditEvent
from tests.conftest import InProcessServer
from tests.integration.test_dashboard import XSS, person
from tests.integration.test_resources import Api

SECRET_VALUE = "s3cr3t-never-on-the-audit-page"
# A row of the events' table: when, who (its text), action.
ROW = re.compile(
    r'<tr><td><time datetime="[^"]+">[^<]*</time></td>\s*<td>(.*?)</td>\s*'
    r'<td><a href="[^"]*">([^<]+)</a>',
    re.S,
)


@pytest.fixture
async def trail(server: InProcessServer) -> dict[str, Any]:
    """Alice's tree; bob (an editor of prod) commits and reads; a token named ci reads."""
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    secrets = f"/environments/{env['id']}/secrets"
    change = {"message": f"first {XSS}", "set": {"API_KEY": SECRET_VALUE}}
    await alice.call("POST", f"{secrets}/versions", change, status=201)
    bob, _ = await person(server, "bob")
    grant = {"user": "bob", "role": "editor"}
    await alice.call("POST", f"/environments/{env['id']}/members", grant, status=200)
    await bob.call("POST", f"{secrets}/versions", {"message": "m", "set": {"B": "2"}}, status=201)
    await bob.call("GET", secrets, status=200)
    made = await alice.call(
        "POST", f"/environments/{env['id']}/tokens", {"name": "ci", "role": "viewer"}, status=201
    )
    await Api(server, made["token"]).call("GET", secrets, status=200)
    return {"alice": alice, "browser": browser, "org": org, "group": group, "env": env}


def _rows(page: str) -> list[tuple[str, str]]:
    """The (who, action) of each event the page lists, in its order."""
    return [(re.sub(r"<[^>]+>", "", who).strip(), action) for who, action in ROW.findall(page)]


def _older(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)">Older</a>', page)
    return html.unescape(found.group(1)) if found else None


async def _api_events(trail: dict[str, Any], **filters: str) -> list[dict[str, Any]]:
    query = urlencode({"organization_id": trail["org"]["id"], "limit": 1000, **filters})
    found: list[dict[str, Any]] = (await trail["alice"].call("GET", f"/audit?{query}"))["items"]
    return found


async def test_the_trail_narrows_by_who_what_and_when(trail: dict[str, Any]) -> None:
    browser, org = trail["browser"], trail["org"]
    url = f"/ui/organizations/{org['id']}/audit"
    everything = await browser.get(url)
    assert everything.status_code == 200
    rows = _rows(everything.text)
    assert len(rows) == len(await _api_events(trail))
    assert rows[0] == ("ci (service token)", "secret.read")
    assert ("bob", "secret.commit") in rows and rows[-1] == ("alice", "organization.create")
    assert "payments / prod" in everything.text  # where, below the organization
    assert "set: API_KEY" in everything.text  # the commit's details, summarized
    assert SECRET_VALUE not in everything.text
    assert XSS not in everything.text
    assert "Verify chain" in everything.text
    assert f'href="{url}?actor=bob"' in everything.text  # a row's actor narrows the listing

    blank = await browser.get(f"{url}?actor=&action=+&since=&before=")  # a form's empty fields
    assert _rows(blank.text) == rows
    bobs = await browser.get(f"{url}?actor=+bob")
    assert _rows(bobs.text) == [("bob", "secret.read"), ("bob", "secret.commit")]
    assert 'value="bob"' in bobs.text  # the form shows the filter
    robot = await browser.get(f"{url}?actor=ci")
    assert _rows(robot.text) == [("ci (service token)", "secret.read")]
    under = _rows((await browser.get(f"{url}?action=secret.")).text)
    assert [action for _, action in under] == ["secret.read"] * 2 + ["secret.commit"] * 2
    both = await browser.get(f"{url}?{urlencode({'actor': 'bob', 'action': 'secret.commit'})}")
    assert _rows(both.text) == [("bob", "secret.commit")]
    nothing = await browser.get(f"{url}?action=organization.delete")
    assert _rows(nothing.text) == [] and "No event matches these filters" in nothing.text

    # When: the page and the API split the listing at the same instant.
    middle = (await _api_events(trail))[3]["occurred_at"]
    for name in ("since", "before"):
        split = await browser.get(f"{url}?{urlencode({name: middle})}")
        assert len(_rows(split.text)) == len(await _api_events(trail, **{name: middle})) > 0
    later = await browser.get(f"{url}?since={middle[:19]}")  # as the form sends it
    assert f'value="{middle[:19]}"' in later.text


async def test_the_group_and_environment_pages_show_what_is_in_them(
    trail: dict[str, Any],
) -> None:
    browser = trail["browser"]
    group_page = await browser.get(f"/ui/secret-groups/{trail['group']['id']}/audit")
    assert group_page.status_code == 200
    listed = _rows(group_page.text)
    assert listed[-1] == ("alice", "secret_group.create")
    assert "organization.create" not in {action for _, action in listed}
    assert "Verify chain" not in group_page.text  # chains are the organization's

    env_url = f"/ui/environments/{trail['env']['id']}/audit"
    env_page = await browser.get(f"{env_url}?actor=alice")
    assert env_page.status_code == 200
    assert f'<a href="{env_url}" aria-current="page">Audit</a>' in env_page.text
    assert [action for _, action in _rows(env_page.text)] == [
        "token.create",
        "member.grant",
        "secret.commit",
        "environment.create",
    ]
    assert "payments / prod" not in env_page.text  # the page's own place goes without saying


async def test_paging_keeps_the_filters(trail: dict[str, Any]) -> None:
    alice, browser, env = trail["alice"], trail["browser"], trail["env"]
    for _ in range(50):
        await alice.call("GET", f"/environments/{env['id']}/secrets", status=200)
    wanted = await _api_events(trail, action="secret.read", actor="alice")
    assert len(wanted) == 50
    url = f"/ui/environments/{env['id']}/audit?action=secret.&actor=alice"
    pages = []
    while url:
        answer = await browser.get(url)
        assert answer.status_code == 200
        pages.append(_rows(answer.text))
        url = _older(answer.text) or ""
        assert not url or ("action=secret." in url and "actor=alice" in url)
    assert [len(rows) for rows in pages] == [50, 1]
    assert {row for rows in pages for row in rows} == {
        ("alice", "secret.read"),
        ("alice", "secret.commit"),
    }


async def test_a_viewer_is_refused_and_offered_no_audit_tab(
    server: InProcessServer, trail: dict[str, Any]
) -> None:
    alice, org, env = trail["alice"], trail["org"], trail["env"]
    admin_env_page = await trail["browser"].get(f"/ui/environments/{env['id']}/")
    assert f'href="/ui/environments/{env["id"]}/audit"' in admin_env_page.text

    _, carol = await person(server, "carol")
    await alice.call(
        "POST", f"/organizations/{org['id']}/members", {"user": "carol", "role": "viewer"}
    )
    env_page = await carol.get(f"/ui/environments/{env['id']}/")
    assert env_page.status_code == 200
    assert "/audit" not in env_page.text
    for refused in (
        f"/ui/environments/{env['id']}/audit",
        f"/ui/secret-groups/{trail['group']['id']}/audit",
        f"/ui/organizations/{org['id']}/audit?actor=bob",
        f"/ui/organizations/{org['id']}/audit/verify",
    ):
        answer = await carol.get(refused)
        assert answer.status_code == 403, refused
        assert "forbidden" in answer.text and "secret.commit" not in answer.text

    _, dave = await person(server, "dave")
    assert (await dave.get(f"/ui/organizations/{org['id']}/audit")).status_code == 404


async def test_verification_reports_intact_then_the_tampered_event(
    server: InProcessServer, trail: dict[str, Any]
) -> None:
    browser, org = trail["browser"], trail["org"]
    verify = f"/ui/organizations/{org['id']}/audit/verify"
    events = len(await _api_events(trail))
    intact = await browser.get(verify)
    assert intact.status_code == 200
    assert f"The chain is intact: {events} events verified" in intact.text

    victim = (await _api_events(trail, action="secret.commit", actor="bob"))[0]
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(AuditEvent).where(AuditEvent.id == victim["id"]).values(details={"set": []})
        )
    broken = await browser.get(verify)
    assert broken.status_code == 200
    assert f"The chain is broken at event #{victim['seq']} (id {victim['id']})" in broken.text
    assert "<strong>modified</strong>" in broken.text
    assert f"{victim['seq'] - 1} events before it verified" in broken.text

    # An event taken out of the chain says so on its row.
    async with server.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == victim["id"])
            .values(chain=None, chain_seq=None, hash=None, prev_hash=None)
        )
    page = await browser.get(f"/ui/organizations/{org['id']}/audit?actor=bob&action=secret.commit")
    assert '<span class="failed">off chain</span>' in page.text


async def test_bad_filters_are_explained_on_the_page(trail: dict[str, Any]) -> None:
    browser, org = trail["browser"], trail["org"]
    url = f"/ui/organizations/{org['id']}/audit"
    for query, words in (
        ("action=Secret", "action: must be an action such as secret.read"),
        ("actor=a%00b", "actor: must not contain control characters"),
        ("since=yesterday", "since: must be a date and time"),
        ("since=2024-05-02T00:00&before=2024-05-01T00:00", "before: must be later than since"),
    ):
        answer = await browser.get(f"{url}?{query}")
        assert answer.status_code == 422, query
        assert f"Not filtered: {words}" in answer.text
        assert _rows(answer.text) == []
    kept = await browser.get(f"{url}?action=Secret&actor={XSS}")
    assert 'value="Secret"' in kept.text and XSS not in kept.text
    stale = await browser.get(f"{url}?cursor=not-a-cursor")
    assert stale.status_code == 422
