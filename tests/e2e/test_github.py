"""`kavach login` against a server whose identity provider is a (fake) GitHub Enterprise Server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.harness import Cli, KavachServer, PendingLogin, ServerFactory
from tests.fakes.github import FakeGitHubState, Outcome, serve_fake_github

pytestmark = pytest.mark.e2e

TOKEN_PATH = "/login/oauth/access_token"
POLL_LINE = "/api/v1/auth/device/token"


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHubState, str]]:
    """Run a fake GitHub Enterprise Server on a loopback port; yield its state and URL."""
    state = FakeGitHubState(api_prefix="/api/v3", interval=1)
    state.user.orgs = {"Kavach-Team": "active"}
    with serve_fake_github(state) as url:
        yield state, url


@pytest.fixture
def github_server(start_server: ServerFactory, github: tuple[FakeGitHubState, str]) -> KavachServer:
    """Start a server that logs users in with the fake GitHub."""
    state, url = github
    return start_server(
        github_client_id=state.client_id,
        github_url=url,
        github_api_url=f"{url}/api/v3",
        github_allowed_orgs="kavach-team",
    )


def _start(
    state: FakeGitHubState,
    server: KavachServer,
    cli: Cli,
    outcomes: tuple[Outcome, ...],
) -> tuple[PendingLogin, str]:
    """Start a verbose login whose GitHub polls answer `outcomes`; return it and its device code."""
    before = set(state.device_codes)
    state.default_outcomes = outcomes
    pending = cli.start_login(server.url, "--verbose")
    (device_code,) = set(state.device_codes) - before
    return pending, device_code


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_github_device_flow_success_slow_down_denied_and_expired(
    github_server: KavachServer,
    github: tuple[FakeGitHubState, str],
    make_cli: Callable[[str], Cli],
) -> None:
    state, github_url = github
    octocat, denied_user, late_user = make_cli("octocat"), make_cli("denied"), make_cli("late")
    # The three logins run side by side, each with its own script of GitHub answers.
    success, success_code = _start(
        state, github_server, octocat, ("pending", "slow_down", "success")
    )
    denied, denied_code = _start(state, github_server, denied_user, ("pending", "denied"))
    expired, expired_code = _start(state, github_server, late_user, ("expired",))
    assert success.url == f"{github_url}/login/device"

    denied_result = denied.wait()
    expired_result = expired.wait()
    success_result = success.wait()

    # --verbose adds the traceback; the last line is still the one-line error.
    assert denied_result.code == 3, denied_result
    assert denied_result.stderr.splitlines()[-1].startswith("Error: the login was denied")
    assert expired_result.code == 3, expired_result
    assert expired_result.stderr.splitlines()[-1].startswith("Error: the code expired")
    assert not denied_user.credentials_file.exists()
    assert not late_user.credentials_file.exists()

    assert success_result.code == 0, success_result
    assert f"Logged in as octocat on {github_server.url}" in success_result.stdout
    polls = [r for r in state.requests if r.path == TOKEN_PATH]
    per_code = {
        code: len([r for r in polls if r.form.get("device_code") == code])
        for code in (success_code, denied_code, expired_code)
    }
    assert per_code == {success_code: 3, denied_code: 2, expired_code: 1}
    # The CLI waited the interval GitHub asked for after slow_down (1 s, then 1 + 5 s).
    sent = [at for at, line in success.stderr_lines() if line.endswith(POLL_LINE)]
    assert len(sent) == 3, success.stderr.text()
    first_gap, second_gap = sent[1] - sent[0], sent[2] - sent[1]
    assert second_gap > 5, (first_gap, second_gap)
    assert second_gap > first_gap + 3, (first_gap, second_gap)
    # GitHub Enterprise Server: the API lives under /api/v3 and was called with the token;
    # the allow-list's organization was checked with the read:org scope the login asked for.
    api_calls = [r for r in state.requests if r.path.startswith("/api/v3/")]
    assert [r.path for r in api_calls] == [
        "/api/v3/user",
        "/api/v3/user/emails",  # the verified addresses, which invites by e-mail match
        "/api/v3/user/memberships/orgs/kavach-team",
    ]
    assert state.requests_to("/login/device/code")[0].form["scope"].split()[-1] == "read:org"
    assert all(r.had_authorization for r in api_calls)

    status = octocat.run_json("status", "--json")
    assert status["user"]["login"] == "octocat"
    assert status["user"]["provider"] == "github"
    assert status["user"]["email"] == "octocat@github.com"
    assert octocat.run_json("info", "--json")["identity_provider"] == "github"

    github_token = next(iter(state.tokens))
    secrets = [success_code, denied_code, expired_code, github_token]
    secrets += octocat.tokens(github_server.url)
    assert github_server.unclean_exit(github_server.stop()) is None
    logged = github_server.stderr() + github_server.stdout()
    for secret in secrets:
        assert secret not in logged
    for result in (success_result, denied_result, expired_result):
        for secret in secrets[:4]:
            assert secret not in result.stdout + result.stderr
