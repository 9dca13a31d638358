"""The dashboard in Chromium: an owner's, an editor's and a viewer's journeys, drafts in two
tabs, escaped values, its policy, sign-out, and axe on every page."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.harness import (
    SignInSite,
    account,
    assert_accessible,
    fetch,
    inject_inline_script,
    page_cookies,
    screenshot,
    sign_in,
)
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions

# Both databases; each module's tests share one server per database (the `site` fixture).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("backend", ["sqlite", "postgresql"], scope="module"),
]

XSS = '<img src=x onerror="document.title=`pwned`">'
_names = itertools.count()


@pytest.fixture(scope="module")
def site_settings() -> dict[str, object]:
    """Sign-in by a code approved from a signed-in session, beside the OpenID provider."""
    return {"enable_local_idp": True, "device_poll_interval_seconds": 1}


def _api(page: Page, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the API from the page's own script, as the signed-in person, with the CSRF token."""
    csrf = page_cookies(page)["kavach_csrf"]
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    payload = "" if body is None else json.dumps(body)
    answer = page.evaluate(
        """async ([path, method, headers, payload]) => {
          const response = await fetch(path, {method, headers, body: payload || undefined});
          return {status: response.status, body: await response.json()};
        }""",
        [f"/api/v1{path}", method, headers, payload],
    )
    assert 200 <= answer["status"] < 300, answer
    return answer["body"]["data"]


def _tree(page: Page) -> dict[str, Any]:
    """Make an organization, group and environment of the page's person, with secrets."""
    suffix = next(_names)
    org = _api(page, "POST", "/organizations/", {"name": f"acme{suffix}"})
    group = _api(page, "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"})
    env = _api(page, "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"})
    change = {"message": f"first {XSS}", "set": {"API_KEY": "s3cr3t", "HTML": XSS}}
    _api(page, "POST", f"/environments/{env['id']}/secrets/versions", change)
    return {"org": org, "group": group, "env": env}


def test_an_owner_navigates_reveals_and_commits(site: SignInSite, context: BrowserContext) -> None:
    page = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(page)
    page.reload()
    assert_accessible(page, context="organizations")
    screenshot(page, "dashboard-organizations")

    page.get_by_role("link", name=tree["org"]["name"]).click()
    page.get_by_role("link", name="payments").click()
    assert_accessible(page, context="a secret group")
    page.get_by_role("link", name="prod").click()
    expect(page.get_by_role("heading", name="prod", exact=True)).to_be_visible()
    assert "s3cr3t" not in page.content()
    assert_accessible(page, context="an environment")
    screenshot(page, "dashboard-environment", full_page=True)

    page.get_by_role("button", name="Reveal API_KEY").click()
    expect(page.get_by_text("s3cr3t", exact=True)).to_be_visible()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page.get_by_role("button", name="Copy the value of API_KEY").click()
    expect(page.get_by_role("button", name="Copy the value of API_KEY")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "s3cr3t"
    page.get_by_role("button", name="Reveal HTML").click()
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()  # shown as text
    assert page.title() != "pwned"  # ...and never run, here or in the commit message
    assert not inject_inline_script(page).ran

    page.get_by_label("Name 1").fill("NEW_SECRET")
    page.get_by_label("Value 1").fill("fresh")
    page.get_by_label("Commit message").fill("add a secret")
    page.get_by_role("button", name="Review changes").click()
    expect(page.get_by_role("region", name="What this commit does")).to_contain_text(
        "NEW_SECRET: add"
    )
    expect(page.get_by_label("Value 1")).to_have_value("fresh")
    with page.expect_navigation():
        page.get_by_role("button", name="Commit").click()
    expect(page.get_by_role("button", name="Reveal NEW_SECRET")).to_be_visible()

    page.get_by_role("link", name="History").click()
    expect(page.get_by_text("add a secret")).to_be_visible()
    assert_accessible(page, context="history")
    page.get_by_role("link", name="with the one before").first.click()
    expect(page.get_by_text("Added: NEW_SECRET")).to_be_visible()
    screenshot(page, "dashboard-history")

    page.goto(f"{site.url}/ui/environments/{tree['env']['id']}/tokens")
    screenshot(page, "dashboard-tokens")  # before a token's secret is on the page
    page.get_by_label("Name").fill("deploy")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#new-token")).to_contain_text("kvt_")
    assert_accessible(page, context="service tokens")


def test_a_viewer_reads_without_the_means_to_change(
    site: SignInSite, context: BrowserContext, chromium: Any
) -> None:
    owner = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(owner)
    _api(
        owner,
        "POST",
        f"/environments/{tree['env']['id']}/members",
        {"user": "carol", "role": "viewer"},
    )
    with chromium.new_context() as other:
        viewer = sign_in(
            other, site, login="carol", return_to=f"/ui/environments/{tree['env']['id']}/"
        )
        expect(viewer.get_by_role("heading", name="prod", exact=True)).to_be_visible()
        assert viewer.get_by_role("heading", name="Change secrets").count() == 0
        assert viewer.get_by_role("link", name="Access").count() == 0
        viewer.get_by_role("button", name="Reveal API_KEY").click()
        expect(viewer.get_by_text("s3cr3t", exact=True)).to_be_visible()
        # Asked anyway, the server refuses: the page only hid what the gate forbids.
        csrf = page_cookies(viewer)["kavach_csrf"]
        refused = fetch(
            viewer,
            f"/ui/environments/{tree['env']['id']}/versions",
            method="POST",
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status == 403


def test_two_tabs_editing_keep_the_stale_draft(site: SignInSite, context: BrowserContext) -> None:
    first = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(first)
    url = f"{site.url}/ui/environments/{tree['env']['id']}/"
    first.goto(url)
    second = context.new_page()
    second.goto(url)
    for tab, value in ((first, "one"), (second, "two")):
        tab.get_by_label("Name 1").fill("SHARED")
        tab.get_by_label("Value 1").fill(value)
        tab.get_by_label("Commit message").fill(f"tab {value}")
    with first.expect_navigation():
        first.get_by_role("button", name="Commit").click()
    second.get_by_role("button", name="Commit").click()
    expect(second.get_by_role("alert")).to_contain_text("Someone committed while you edited")
    expect(second.get_by_label("Value 1")).to_have_value("two")  # the draft is kept
    assert_accessible(second, context="a stale draft")
    with second.expect_navigation():
        second.get_by_role("button", name="Commit").click()  # now on top of the new version
    second.get_by_role("button", name="Reveal SHARED").click()
    expect(second.get_by_text("two", exact=True)).to_be_visible()


def test_signing_out_ends_the_dashboard_session(site: SignInSite, context: BrowserContext) -> None:
    page = sign_in(context, site, login="bob", return_to="/ui/")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert page.url.startswith(f"{site.url}/login")
    page.goto(f"{site.url}/ui/")
    assert page.url == f"{site.url}/login?return_to=%2Fui%2F"


def test_a_code_sign_in_then_ending_a_session_from_the_account_page(
    site: SignInSite, context: BrowserContext, chromium: Any
) -> None:
    person = f"dave{next(_names)}"
    site.add_account(account(person))
    first = sign_in(context, site, login=person, return_to="/ui/")
    tree = _tree(first)
    first.goto(f"{site.url}/ui/environments/{tree['env']['id']}/")

    with chromium.new_context() as other:
        second = other.new_page()
        second.goto(f"{site.url}/login?return_to=/ui/account")
        with second.expect_navigation():
            second.get_by_role("button", name="Sign in with a code").click()
        code = second.locator("#user_code").inner_text()
        assert_accessible(second, context="a sign-in code")
        screenshot(second, "sign-in-code")
        # Approved for themselves, from where they are already signed in (as the CLI does).
        _api(first, "POST", "/auth/device/approve", {"user_code": code})
        second.wait_for_url(f"{site.url}/ui/account", timeout=15_000)
        rows = second.locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(second.get_by_text("(this browser)")).to_be_visible()
        assert_accessible(second, context="the account page")
        screenshot(second, "dashboard-account")
        with second.expect_navigation():
            second.get_by_role("button", name="End").click()
        expect(rows).to_have_count(1)

    # The first browser's session ended while a page was open: its next action goes to
    # the sign-in page, which brings it back here afterwards.
    with first.expect_navigation():
        first.get_by_role("button", name="Reveal API_KEY").click()
    assert first.url.startswith(f"{site.url}/login?return_to=")
    assert "s3cr3t" not in first.content()


def test_an_editor_commits_but_manages_neither_access_nor_tokens(
    site: SignInSite, context: BrowserContext, chromium: Any
) -> None:
    owner = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(owner)
    env_id = tree["env"]["id"]
    _api(owner, "POST", f"/environments/{env_id}/members", {"user": "bob", "role": "editor"})
    with chromium.new_context() as other:
        editor = sign_in(other, site, login="bob", return_to=f"/ui/environments/{env_id}/")
        tabs = editor.get_by_role("navigation", name="prod").get_by_role("link")
        assert tabs.all_inner_texts() == ["Secrets", "History", "Sync"]
        editor.get_by_label("Name 1").fill("FROM_EDITOR")
        editor.get_by_label("Value 1").fill("ok")
        editor.get_by_label("Commit message").fill("an editor's change")
        with editor.expect_navigation():
            editor.get_by_role("button", name="Commit").click()
        expect(editor.get_by_role("button", name="Reveal FROM_EDITOR")).to_be_visible()
        csrf = page_cookies(editor)["kavach_csrf"]
        for path in ("tokens", "access"):
            asked = fetch(editor, f"/ui/environments/{env_id}/{path}")
            assert asked.status == 403, (path, asked)
        made = fetch(
            editor,
            f"/ui/environments/{env_id}/tokens",
            method="POST",
            headers={"X-CSRF-Token": csrf},
        )
        assert made.status == 403


def test_an_owner_plans_then_runs_a_sync_to_github(
    site: SignInSite, context: BrowserContext
) -> None:
    state = FakeActionsState()
    state.add_repo("octo", "app")
    with serve_fake_github_actions(state) as url:
        page = sign_in(context, site, login="alice", return_to="/ui/")
        tree = _tree(page)
        env_id = tree["env"]["id"]
        config = {"owner": "octo", "repository": "app", "api_url": url}
        provider = {"provider": "github", "config": config, "credentials": {"token": state.token}}
        _api(page, "POST", f"/environments/{env_id}/providers/", provider)
        page.goto(f"{site.url}/ui/environments/{env_id}/sync")
        assert state.token not in page.content()

        page.get_by_role("button", name="Plan").click()
        result = page.locator("#result-github")
        expect(result).to_contain_text("API_KEY")
        expect(result).to_contain_text("create")
        assert not state.store("octo", "app", None).secrets  # a plan writes nothing

        page.get_by_role("button", name="Run sync").click()
        expect(result).to_contain_text("succeeded")
        assert state.plaintext("octo", "app", None, "API_KEY") == "s3cr3t"
        assert state.plaintext("octo", "app", None, "HTML") == XSS
        assert "s3cr3t" not in page.content()
        expect(page.locator("#runs tbody tr")).to_have_count(2)
        assert_accessible(page, context="sync")
        screenshot(page, "dashboard-sync", full_page=True)


def test_an_owner_compares_environments_and_adds_a_workload_trust(
    site: SignInSite, context: BrowserContext
) -> None:
    page = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(page)
    staging = _api(
        page, "POST", f"/secret-groups/{tree['group']['id']}/environments", {"name": "staging"}
    )
    change = {"message": "staging", "set": {"API_KEY": "other-value", "ONLY_HERE": "x"}}
    _api(page, "POST", f"/environments/{staging['id']}/secrets/versions", change)

    page.goto(f"{site.url}/ui/secret-groups/{tree['group']['id']}/")
    page.get_by_role("link", name="Compare", exact=True).click()
    matrix = page.locator("table.compare")
    expect(matrix.locator("tr", has_text="API_KEY")).to_contain_text("differ")
    expect(matrix.locator("tr", has_text="ONLY_HERE")).to_contain_text("missing in 1")
    expect(matrix.locator("tr", has_text="HTML")).to_contain_text("missing in 1")
    content = page.content()
    assert "s3cr3t" not in content and "other-value" not in content
    assert_accessible(page, context="comparing environments")
    screenshot(page, "dashboard-compare")

    page.goto(f"{site.url}/ui/environments/{tree['env']['id']}/trusts")
    page.get_by_label("Name").fill("deploy")
    page.get_by_label("Issuer").fill("https://token.actions.githubusercontent.com")
    page.get_by_label("Audience").fill(site.url)
    page.get_by_label("Claim 1").fill("sub")
    page.get_by_label("Value or pattern 1").fill("repo:acme/app:ref:refs/heads/main")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("table", name="Trusts")).to_contain_text("repo:acme/app")
    assert_accessible(page, context="workload identities")
    screenshot(page, "dashboard-trusts")


def test_an_owner_grants_revokes_groups_people_and_reads_the_audit_trail(
    site: SignInSite, context: BrowserContext, chromium: Any
) -> None:
    with chromium.new_context() as other:
        sign_in(other, site, login="bob")  # known to the server from now on
    page = sign_in(context, site, login="alice", return_to="/ui/")
    tree = _tree(page)
    _api(
        page,
        "POST",
        f"/environments/{tree['env']['id']}/members",
        {"user": "bob", "role": "viewer"},
    )
    page.goto(f"{site.url}/ui/environments/{tree['env']['id']}/access")
    members = page.get_by_role("table", name="Members")
    page.get_by_label("GitHub login or e-mail address").fill("new.hire@example.com")
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_role("table", name="Pending invites")).to_contain_text(
        "new.hire@example.com"
    )
    page.get_by_role("button", name="Revoke viewer from bob").click()
    expect(page.get_by_role("status")).to_be_visible()
    expect(members).not_to_contain_text("bob")
    assert_accessible(page, context="an environment's access")
    screenshot(page, "dashboard-access", full_page=True)

    page.goto(f"{site.url}/ui/organizations/{tree['org']['id']}/user-groups")
    page.get_by_label("Name").fill("sre")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="sre").click()
    page.get_by_label("Login of someone who has signed in").fill("bob")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("table", name="Members")).to_contain_text("bob")
    assert_accessible(page, context="a user group")

    page.goto(f"{site.url}/ui/organizations/{tree['org']['id']}/audit")
    page.get_by_label("Action").fill("member.")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    events = page.get_by_role("table", name="Events")
    expect(events).to_contain_text("member.revoke")
    assert "secret.read" not in events.inner_text()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_role("status")).to_contain_text("The chain is intact")
    assert_accessible(page, context="the audit trail")
    screenshot(page, "dashboard-audit", full_page=True)
