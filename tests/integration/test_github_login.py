"""GitHub as identity provider, through the real app against the fake GitHub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from kavach.server.audit.models import AuditEvent
from kavach.server.iam import service as iam_service
from kavach.server.iam.models import User
from tests.conftest import InProcessServer
from tests.fakes.github import FakeGitHubState, create_fake_github, private_email_user
from tests.integration.helpers import bearer

GITHUB = "http://github.test"
_GITHUB = {
    "github_client_id": "Iv1.fake0client0id",
    "github_url": GITHUB,
    "github_api_url": f"{GITHUB}/api/v3",
}


@pytest.fixture
def auth_overrides() -> dict[str, object]:
    """Configure GitHub login pointing at the fake."""
    return {**_GITHUB, "github_allowed_logins": "Octocat,hidden-hubber"}


@pytest.fixture
async def github(server: InProcessServer) -> AsyncIterator[FakeGitHubState]:
    """Route the server's outbound HTTP to a fake GitHub Enterprise Server."""
    state = FakeGitHubState(api_prefix="/api/v3", default_outcomes=("pending", "slow_down"))
    original = server.runtime.http
    server.runtime.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_fake_github(state)), base_url=GITHUB
    )
    yield state
    await server.runtime.http.aclose()
    server.runtime.http = original


async def _start(server: InProcessServer) -> dict[str, object]:
    response = await server.client.post("/api/v1/auth/device/code", json={})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def _poll(server: InProcessServer, code: object) -> httpx.Response:
    return await server.client.post("/api/v1/auth/device/token", json={"device_code": code})


async def test_pending_slow_down_then_success_creates_the_user(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    data = await _start(server)
    assert data["verification_uri"] == f"{GITHUB}/login/device"
    assert data["verification_uri_complete"] is None
    code = data["device_code"]
    assert (await _poll(server, code)).json()["error_code"] == "authorization_pending"
    slow = (await _poll(server, code)).json()
    assert slow["error_code"] == "slow_down"
    github.script(str(code), "success")
    answer = await _poll(server, code)
    assert answer.status_code == 200, answer.text
    user = answer.json()["data"]["user"]
    assert (user["login"], user["provider"], user["email"]) == (
        "octocat",
        "github",
        "octocat@github.com",
    )
    me = await server.client.get(
        "/api/v1/auth/me", headers=bearer(answer.json()["data"]["access_token"])
    )
    assert me.json()["data"]["name"] == "The Octocat"
    sent = github.requests_to("/login/device/code")[0]
    assert sent.form["scope"] == "read:user user:email"


async def test_private_email_is_read_from_user_emails(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    github.user = private_email_user()
    data = await _start(server)
    github.script(str(data["device_code"]), "success")
    answer = await _poll(server, data["device_code"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["user"]["email"] is not None
    assert github.requests_to("/user/emails")


async def test_second_login_updates_the_same_user(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    for name in ("The Octocat", "Mona Lisa Octocat"):
        github.user.name = name
        data = await _start(server)
        github.script(str(data["device_code"]), "success")
        assert (await _poll(server, data["device_code"])).status_code == 200
    async with server.runtime.sessionmaker() as session:
        users = (await session.scalars(select(User))).all()
    assert [(u.login, u.name) for u in users] == [("octocat", "Mona Lisa Octocat")]


@pytest.mark.parametrize(
    ("outcome", "code"), [("denied", "access_denied"), ("expired", "expired_token")]
)
async def test_denied_and_expired_are_reported_and_audited(
    server: InProcessServer, github: FakeGitHubState, outcome: str, code: str
) -> None:
    data = await _start(server)
    github.script(str(data["device_code"]), outcome)  # type: ignore[arg-type]
    answer = await _poll(server, data["device_code"])
    assert (answer.status_code, answer.json()["error_code"]) == (400, code)
    async with server.runtime.sessionmaker() as session:
        failure = await session.scalar(select(AuditEvent).where(AuditEvent.outcome == "failure"))
    assert failure is not None
    assert failure.details == {"reason": code, "identity_provider": "github"}


async def test_github_outage_is_a_502_without_secrets(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    data = await _start(server)
    github.script(str(data["device_code"]), "success")
    github.fail_api("/user", 500, times=5)
    answer = await _poll(server, data["device_code"])
    assert (answer.status_code, answer.json()["error_code"]) == (502, "identity_provider_error")
    assert "gho_" not in answer.text


async def test_local_page_is_off_in_github_mode(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    assert (await server.client.get("/device")).status_code == 404
    info = (await server.client.get("/api/v1/info")).json()["data"]
    assert info["identity_provider"] == "github"


async def _login(server: InProcessServer, github: FakeGitHubState) -> httpx.Response:
    data = await _start(server)
    github.script(str(data["device_code"]), "success")
    return await _poll(server, data["device_code"])


async def _users(server: InProcessServer) -> list[str]:
    async with server.runtime.sessionmaker() as session:
        return list((await session.scalars(select(User.login))).all())


@pytest.mark.parametrize("auth_overrides", [_GITHUB])
async def test_without_an_allow_list_nobody_new_signs_in(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    refused = await _login(server, github)
    assert (refused.status_code, refused.json()["error_code"]) == (400, "account_not_allowed")
    assert "octocat" in refused.json()["error"] and "gho_" not in refused.text
    assert await _users(server) == []
    async with server.runtime.sessionmaker() as session:
        failure = await session.scalar(select(AuditEvent).where(AuditEvent.outcome == "failure"))
    assert failure is not None
    assert failure.details == {
        "reason": "account_not_allowed",
        "identity_provider": "github",
        "login": "octocat",
    }
    # Someone who already signed in before keeps signing in.
    async with server.runtime.sessionmaker() as session, session.begin():
        await iam_service.upsert_user(
            session,
            identity=iam_service.Identity(
                provider="github", provider_id=str(github.user.id), login="octocat"
            ),
        )
    assert (await _login(server, github)).status_code == 200
    assert github.requests_to("/login/device/code")[-1].form["scope"] == "read:user user:email"


@pytest.mark.parametrize("auth_overrides", [{**_GITHUB, "github_allowed_logins": "someone"}])
async def test_a_login_outside_the_allow_list_is_refused_even_when_known(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    async with server.runtime.sessionmaker() as session, session.begin():
        await iam_service.upsert_user(
            session,
            identity=iam_service.Identity(
                provider="github", provider_id=str(github.user.id), login="octocat"
            ),
        )
    refused = await _login(server, github)
    assert refused.json()["error_code"] == "account_not_allowed"


@pytest.mark.parametrize("auth_overrides", [{**_GITHUB, "github_allowed_orgs": "kavach-team"}])
async def test_active_members_of_an_allowed_org_sign_in_and_nobody_else(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    github.user.orgs = {"Kavach-Team": "active", "other": "active"}
    admitted = await _login(server, github)
    assert admitted.status_code == 200, admitted.text
    assert github.requests_to("/login/device/code")[-1].form["scope"] == (
        "read:user user:email read:org"
    )
    assert github.requests_to("/user/memberships/orgs/kavach-team")

    # An invitation not yet accepted, another organization, or an organization that blocks
    # the app admit nobody; a member who left is refused at their next login.
    for orgs, restricted in (
        ({"Kavach-Team": "pending"}, set()),
        ({"other": "active"}, set()),
        ({"Kavach-Team": "active"}, {"Kavach-Team"}),
        ({}, set()),
    ):
        github.user.orgs, github.user.restricted_orgs = orgs, restricted  # type: ignore[assignment]
        refused = await _login(server, github)
        assert refused.json()["error_code"] == "account_not_allowed", (orgs, restricted)
    assert await _users(server) == ["octocat"]


@pytest.mark.parametrize("auth_overrides", [{**_GITHUB, "github_allowed_orgs": "kavach-team"}])
async def test_a_membership_check_github_fails_is_a_502_not_an_admission(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    github.user.orgs = {"kavach-team": "active"}
    github.fail_api("/user/memberships/orgs", 500, times=5)
    failed = await _login(server, github)
    assert (failed.status_code, failed.json()["error_code"]) == (502, "identity_provider_error")
    assert await _users(server) == []


async def test_invites_by_a_verified_address_or_the_login_apply_at_first_sign_in(
    server: InProcessServer, github: FakeGitHubState
) -> None:
    data = await _start(server)
    github.script(str(data["device_code"]), "success")
    octocat = bearer((await _poll(server, data["device_code"])).json()["data"]["access_token"])

    async def call(method: str, path: str, body: object = None) -> httpx.Response:
        return await server.client.request(method, f"/api/v1{path}", json=body, headers=octocat)

    org = (await call("POST", "/organizations/", {"name": "acme"})).json()["data"]
    members = f"/organizations/{org['id']}/members"
    # hidden-hubber's addresses: old@ (verified), unverified@ (not), hubber@ (primary).
    for invitee, role in (
        ({"email": "OLD@example.com"}, "editor"),
        ({"email": "unverified@example.com"}, "admin"),
        ({"user": "Hidden-Hubber"}, "viewer"),
    ):
        assert (await call("POST", members, {**invitee, "role": role})).status_code == 202

    github.user = private_email_user()
    data = await _start(server)
    github.script(str(data["device_code"]), "success")
    assert (await _poll(server, data["device_code"])).status_code == 200

    listed = (await call("GET", members)).json()["data"]["items"]
    held = {b["user"]["login"]: b["role"] for b in listed}
    assert held == {"octocat": "owner", "hidden-hubber": "editor"}  # the strongest of two
    left = (await call("GET", f"{members}/pending")).json()["data"]["items"]
    assert [(i["email"], i["role"]) for i in left] == [("unverified@example.com", "admin")]
