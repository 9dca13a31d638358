"""`kavach login` approved by signing in at a real OpenID provider, and linking identities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Cli, ServerFactory
from tests.oidc.browser import sign_in
from tests.oidc.provider import OidcProvider, ProviderAccount, new_signing_key

# SQLite only: the server's side of sign-in runs on both databases in
# tests/integration/test_oidc_sign_in.py; this is the real CLI and server process.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]

SECRET = "e2e-client-secret"
ALICE = ProviderAccount(
    login="alice",
    sub="sub-alice",
    email="alice@example.com",
    name="Alice",
    preferred_username="alice",
)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        running.start(tmp_path, [], [ALICE], [new_signing_key("e2e")])
        yield running


def test_a_cli_login_is_approved_at_the_provider(
    start_server: ServerFactory, cli: Cli, provider: OidcProvider
) -> None:
    settings = {
        "name": "corp",
        "issuer": provider.issuer,
        "client_id": "kavach",
        "client_secret": SECRET,
        "allowed_email_domains": ["example.com"],
    }
    server = start_server(oidc_providers=json.dumps([settings]))
    callback = f"{server.url}/oidc/corp/callback"
    provider.restart(
        clients=[{"client_id": "kavach", "client_secret": SECRET, "redirect_uris": [callback]}]
    )

    pending = cli.start_login(server.url)
    assert pending.url == f"{server.url}/oidc/corp/login?user_code={pending.code}"
    with httpx.Client(timeout=10) as browser:
        out = browser.get(pending.url)
        assert out.status_code == 303, out.text
        back = sign_in(browser, out.headers["location"], login="alice")
        assert back.startswith(callback)
        approved = browser.get(back)
    assert approved.status_code == 200, approved.text
    assert pending.code in approved.text
    result = pending.wait()
    assert result.code == 0, result
    assert "Sign in to approve the login at:" in result.stderr
    assert result.stdout.strip() == f"Logged in as alice on {server.url}"

    status = cli.run_json("status", "--json")
    assert status["user"]["provider"] == "oidc:corp"
    assert cli.run_json("info", "--json")["identity_provider"] == "oidc"

    linked = server.admin("link-identity", "alice", "--provider", "corp", "--subject", "laptop")
    assert linked.code == 0, linked
    assert linked.stdout.strip() == "corp subject laptop now signs in as alice."
    again = server.admin("link-identity", "alice", "--provider", "corp", "--subject", "laptop")
    assert again.code != 0
    assert "already signs in as 'alice'" in again.stderr
    unknown = server.admin("link-identity", "alice", "--provider", "nope", "--subject", "x")
    assert unknown.code != 0
    assert "no OpenID provider named 'nope' (configured: corp)" in unknown.stderr
