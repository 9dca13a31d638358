"""`kavach audit list|verify` against a fake of the audit routes beside the fake API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kavach.cli.app import Runtime

from .conftest import FakeClock, Invoke, table_header, table_rows, use_context
from .fake_api import Call, FakeApi, envelope, failure
from .fake_iam import Failure, Node, page_of

pytestmark = pytest.mark.usefixtures("logged_in")

SCOPE_PARAMS = {
    "organization_id": "organization",
    "secret_group_id": "secret_group",
    "environment_id": "environment",
}


def _event(event_id: int, action: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "occurred_at": f"2026-01-0{event_id}T10:00:00Z",
        "actor_type": "user",
        "actor_id": "u-1",
        "actor_label": "alice",
        "action": action,
        "outcome": "success",
        "resource_type": "environment",
        "resource_id": "env-3",
        "details": {},
        "seq": event_id,
        "chain_status": "chained",
        **extra,
    }


@dataclass
class FakeAudit:
    """The audit routes: the events of a scope (admin and above), and a chain report."""

    api: FakeApi
    events: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def runtime(self, clock: FakeClock) -> Runtime:
        return Runtime(
            transport=httpx.MockTransport(self.handle),
            sleep=clock.sleep,
            clock=clock.monotonic,
            stdin_is_terminal=lambda: False,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/api/v1/audit"):
            return self.api.handle(request)
        params = dict(request.url.params)
        auth = request.headers.get("Authorization")
        self.api.calls.append(Call(request.method, path, auth, None, params))
        denied = self.api._authorized(auth)
        if denied is not None:
            return denied
        named = [(p, kind) for p, kind in SCOPE_PARAMS.items() if p in params]
        if len(named) != 1:
            return failure(422, "validation_failed", "give exactly one scope")
        param, kind = named[0]
        node = self.api.iam.nodes.get(params[param])
        try:
            if node is None or node.kind != kind:
                raise Failure(404, "not_found", f"{kind} not found")
            self.api.iam.need(node, "admin", "audit.read")
        except Failure as exc:
            return failure(exc.status, exc.code, exc.message)
        if path == "/api/v1/audit/verify":
            return httpx.Response(200, json=envelope(self.report))
        try:
            return httpx.Response(200, json=envelope(page_of(self.events, params)))
        except Failure as exc:
            return failure(exc.status, exc.code, exc.message)


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give tables room for every column on one line."""
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def tree(api: FakeApi, home: Path) -> dict[str, Node]:
    """acme/web/prod, alice owns acme, and acme is active."""
    use_context(home, "acme")
    org = api.iam.org("acme")
    group = api.iam.group(org, "web")
    return {"org": org, "group": group, "env": api.iam.env(group, "prod")}


@pytest.fixture
def audit(api: FakeApi) -> FakeAudit:
    return FakeAudit(
        api,
        events=[
            _event(3, "secret.read", details={"version_id": "abcd1234", "what": "all"}),
            _event(2, "secret.commit", actor_type="service_token", actor_label="ci"),
            _event(
                1,
                "environment.create",
                resource_type=None,
                resource_id=None,
                seq=None,
                chain_status="legacy",
            ),
        ],
        report={
            "organization_id": "org-1",
            "intact": True,
            "events": 3,
            "legacy_events": 0,
            "head_seq": 3,
            "head_hash": "ab" * 32,
            "broken": None,
        },
    )


def _audit_requests(api: FakeApi) -> list[tuple[str, dict[str, str]]]:
    return [(path, params) for _, path, params, _ in api.requests() if path.startswith("/audit")]


def test_list_shows_the_active_organizations_events(
    api: FakeApi, audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    result = invoke(["audit", "list"], runtime=audit.runtime(clock))

    assert result.exit_code == 0, result.output
    assert _audit_requests(api) == [("/audit", {"organization_id": tree["org"].id, "limit": "50"})]
    assert table_header(result.stdout) == [
        "ID",
        "When",
        "Actor",
        "Action",
        "Resource",
        "Outcome",
        "Chain",
        "Details",
    ]
    rows = table_rows(result.stdout)
    assert [row[:4] for row in rows] == [
        ["3", "2026-01-03T10:00:00+00:00", "alice", "secret.read"],
        ["2", "2026-01-02T10:00:00+00:00", "ci (service_token)", "secret.commit"],
        ["1", "2026-01-01T10:00:00+00:00", "alice", "environment.create"],
    ]
    assert rows[0][4] == "environment env-3" and rows[2][4] == "-"
    assert [row[6] for row in rows] == ["#3", "#2", "before chaining"]
    assert "Audit events of organization acme" in result.stderr


def test_list_marks_an_event_that_is_not_on_its_chain(
    audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    audit.events.insert(0, _event(4, "member.grant", seq=None, chain_status="unchained"))
    result = invoke(["audit", "list"], runtime=audit.runtime(clock))

    assert result.exit_code == 0, result.output
    newest = table_rows(result.stdout)[0]
    assert (newest[0], newest[6]) == ("4", "NOT CHAINED")


def test_list_picks_the_most_specific_scope_and_pages(
    api: FakeApi, audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    runtime = audit.runtime(clock)
    assert invoke(["audit", "list", "--group", "web"], runtime=runtime).exit_code == 0
    result = invoke(
        ["audit", "list", "--group", "web", "--env", "prod", "-n", "2"], runtime=runtime
    )
    assert result.exit_code == 0, result.output
    assert "Older events: run the same command with --cursor 2." in result.stderr
    older = invoke(
        ["audit", "list", "--group", "web", "--env", "prod", "--cursor", "2"], runtime=runtime
    )
    assert older.exit_code == 0, older.output
    assert [row[0] for row in table_rows(older.stdout)] == ["1"]
    assert _audit_requests(api) == [
        ("/audit", {"secret_group_id": tree["group"].id, "limit": "50"}),
        ("/audit", {"environment_id": tree["env"].id, "limit": "2"}),
        ("/audit", {"environment_id": tree["env"].id, "limit": "50", "cursor": "2"}),
    ]


def test_list_as_json_prints_the_page(
    audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    result = invoke(["audit", "list", "--json", "-n", "1"], runtime=audit.runtime(clock))

    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert page == {"items": [audit.events[0]], "next": "1"}


def test_list_without_a_role_is_refused(
    api: FakeApi, audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    api.iam.org("other", role="viewer")
    result = invoke(["audit", "list", "--org", "other"], runtime=audit.runtime(clock))

    assert result.exit_code == 3
    assert "Error: you may not audit.read on this organization (forbidden)" in result.stderr


def test_verify_intact_exits_zero(
    api: FakeApi, audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    result = invoke(["audit", "verify"], runtime=audit.runtime(clock))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "The audit trail of organization acme is intact: 3 events verified, the last is #3"
    )
    assert _audit_requests(api) == [("/audit/verify", {"organization_id": tree["org"].id})]


def test_verify_names_the_broken_event_and_fails(
    audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    audit.report.update(
        intact=False,
        events=1,
        broken={
            "seq": 2,
            "event_id": 17,
            "reason": "modified",
            "message": "event #2 (id 17) was changed after it was recorded",
        },
    )
    result = invoke(["audit", "verify", "--org", "acme"], runtime=audit.runtime(clock))

    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "Error: the audit trail of organization acme is broken: event #2 (id 17) was changed "
        "after it was recorded (modified) (audit_chain_broken)"
    )

    as_json = invoke(["audit", "verify", "--json"], runtime=audit.runtime(clock))
    assert as_json.exit_code == 4
    assert json.loads(as_json.stdout)["broken"]["event_id"] == 17


def test_verify_of_an_unseen_organization_is_not_found(
    audit: FakeAudit, invoke: Invoke, clock: FakeClock, tree: dict[str, Node]
) -> None:
    result = invoke(["audit", "verify", "--org", "ghost"], runtime=audit.runtime(clock))

    assert result.exit_code == 4
    assert "organization 'ghost' not found" in result.stderr


def test_verify_needs_an_organization(
    audit: FakeAudit, invoke: Invoke, clock: FakeClock, home: Path
) -> None:
    use_context(home)
    result = invoke(["audit", "verify"], runtime=audit.runtime(clock))

    assert result.exit_code == 1
    assert "no organization selected" in result.stderr
