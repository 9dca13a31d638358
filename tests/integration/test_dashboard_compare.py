"""Comparing a secret group's environments: the matrix, who sees which columns, the audit."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from kavach.server.dashboard import compare as compare_page
from kavach.server.errors import Forbidden
from kavach.server.gate import AccessGate, Admission, Ticket
from tests.conftest import InProcessServer
from tests.integration.test_dashboard import person

XSS = "<img src=x onerror=alert(1)>"
# Every value is distinctive, so finding one in a page is finding a leak.
VALUES = {
    "dev": {"API_KEY": "val-dev-key-1f", "DB_URL": "val-db-same-2e", "ONLY_DEV": "val-only-3d"},
    "prod": {"API_KEY": "val-key-4c", "DB_URL": "val-db-same-2e", "SHARED": "val-shared-5b"},
    "staging": {"API_KEY": "val-key-4c", "DB_URL": "val-db-same-2e", "SHARED": "val-shared-5b"},
}


@pytest.fixture
async def group(server: InProcessServer) -> dict[str, Any]:
    """Alice's acme/payments: dev, prod and staging, each with secrets (see VALUES)."""
    alice, browser = await person(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    made = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, status=201
    )
    envs = {}
    for name, values in VALUES.items():
        env = await alice.call(
            "POST", f"/secret-groups/{made['id']}/environments", {"name": name}, status=201
        )
        change = {"message": "first", "set": {**values, "HTML": XSS}}
        await alice.call("POST", f"/environments/{env['id']}/secrets/versions", change, status=201)
        envs[name] = env
    url = f"/ui/secret-groups/{made['id']}/compare"
    return {"alice": alice, "browser": browser, "group": made, "envs": envs, "url": url}


def _main(html: str) -> str:
    return html.split("<main", 1)[1]


def _columns(html: str) -> list[str]:
    return re.findall(r'<th scope="col"><a href="/ui/environments/[^"]+/">([^<]+)</a></th>', html)


def _row(html: str, name: str) -> list[str] | None:
    """The texts of a name's row: its status, then one cell per compared environment."""
    found = re.search(rf'<tr><th scope="row"><code>{re.escape(name)}</code></th>(.*?)</tr>', html)
    if found is None:
        return None
    return re.findall(r"<td[^>]*>([^<]*)</td>", found.group(1))


def _no_value_in(html: str) -> None:
    for values in VALUES.values():
        for value in values.values():
            assert value not in html
    assert XSS not in html


async def _compare_reads(server: InProcessServer) -> list[AuditEvent]:
    async with server.runtime.read_sessionmaker() as session:
        query = select(AuditEvent).where(AuditEvent.action == "secret.read")
        events = await session.scalars(query.order_by(AuditEvent.id))
        return [event for event in events if event.details.get("what") == "compare"]


async def test_the_matrix_marks_missing_and_differing_values_and_shows_none(
    server: InProcessServer, group: dict[str, Any]
) -> None:
    answer = await group["browser"].get(group["url"])
    assert answer.status_code == 200, answer.text
    html = answer.text
    _no_value_in(html)
    assert _columns(html) == ["dev", "prod", "staging"]
    # prod and staging agree (A, the commonest value); dev differs from them (B).
    assert _row(html, "API_KEY") == ["differ", "B", "A", "A"]
    assert _row(html, "DB_URL") == ["same", "A", "A", "A"]
    assert _row(html, "ONLY_DEV") == ["missing in 2", "A", "missing", "missing"]
    assert _row(html, "SHARED") == ["missing in 1", "missing", "A", "A"]
    assert _row(html, "HTML") == ["same", "A", "A", "A"]
    assert "5 names: 2 set alike everywhere, 1 with different values, 2 missing somewhere" in html

    only = await group["browser"].get(f"{group['url']}?only=differences")
    assert _row(only.text, "DB_URL") is None and _row(only.text, "HTML") is None
    assert _row(only.text, "API_KEY") == ["differ", "B", "A", "A"]
    assert _row(only.text, "SHARED") is not None


async def test_a_comparison_is_audited_as_a_read_of_each_environment(
    server: InProcessServer, group: dict[str, Any]
) -> None:
    assert await _compare_reads(server) == []
    envs = group["envs"]
    picked = f"{group['url']}?env={envs['prod']['id']}&env={envs['dev']['id']}"
    answer = await group["browser"].get(picked)
    assert _columns(answer.text) == ["dev", "prod"]  # in the listing's order
    events = await _compare_reads(server)
    assert sorted(e.resource_id or "" for e in events) == sorted(
        [envs["dev"]["id"], envs["prod"]["id"]]
    )
    assert {(e.outcome, e.actor_label, e.resource_type) for e in events} == {
        ("success", "alice", "environment")
    }
    for event in events:
        _no_value_in(str(event.details))
        assert set(event.details) == {"version_id", "what"}


async def test_an_environment_the_caller_cannot_read_is_no_column(
    server: InProcessServer, group: dict[str, Any]
) -> None:
    _, browser = await person(server, "bob")
    envs = group["envs"]
    await group["alice"].call(
        "POST", f"/environments/{envs['prod']['id']}/members", {"user": "bob", "role": "viewer"}
    )
    # Bob sees the group for prod's sake, and may compare what he may read: prod alone.
    page = await browser.get(f"{group['url']}?env={envs['dev']['id']}&env={envs['prod']['id']}")
    assert page.status_code == 200, page.text
    assert _columns(page.text) == ["prod"]
    assert _row(page.text, "ONLY_DEV") is None
    assert _row(page.text, "API_KEY") == ["same", "A"]
    for hidden in ("dev", "staging"):
        assert envs[hidden]["id"] not in page.text
        assert f"> {hidden}</label>" not in page.text
    _no_value_in(page.text)
    reads = await _compare_reads(server)
    assert [e.resource_id for e in reads] == [envs["prod"]["id"]]
    # Someone with no role in the group at all sees no such page.
    _, carol = await person(server, "carol")
    assert (await carol.get(group["url"])).status_code == 404


async def test_environments_the_gate_refuses_or_beyond_the_cap_are_named_as_left_out(
    server: InProcessServer, group: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = group["envs"]
    frozen = uuid.UUID(envs["dev"]["id"])
    admit = AccessGate.admit_provisionally

    async def frozen_dev(gate: AccessGate, ticket: Ticket) -> Admission:
        # As a rule of the gate's would (a frozen environment, say): dev may not be read.
        if ticket.environment_id == frozen:
            raise Forbidden("dev is frozen")
        return await admit(gate, ticket)

    monkeypatch.setattr(AccessGate, "admit_provisionally", frozen_dev)
    monkeypatch.setattr(compare_page, "MAX_COMPARED", 2)
    page = await group["browser"].get(group["url"])
    assert page.status_code == 200, page.text
    assert _columns(page.text) == ["prod"]
    assert "<strong>dev</strong> (you may not read its secrets)" in page.text
    assert "<strong>staging</strong> (at most 2 are compared at once)" in page.text
    _no_value_in(page.text)
    reads = await _compare_reads(server)
    assert [e.resource_id for e in reads] == [envs["prod"]["id"]]


async def test_the_group_page_links_to_the_comparison_and_names_are_escaped(
    server: InProcessServer, group: dict[str, Any]
) -> None:
    browser = group["browser"]
    group_page = await browser.get(f"/ui/secret-groups/{group['group']['id']}")
    assert f'href="{group["url"]}"' in group_page.text
    org_page = await browser.get(f"/ui/organizations/{group['group']['organization_id']}")
    assert "/compare" not in _main(org_page.text)
    empty = await group["alice"].call(
        "POST",
        f"/organizations/{group['group']['organization_id']}/secret-groups",
        {"name": "empty"},
        status=201,
    )
    none = await browser.get(f"/ui/secret-groups/{empty['id']}/compare")
    assert none.status_code == 200
    assert "You may read no environment of this secret group." in none.text
