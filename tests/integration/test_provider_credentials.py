"""Stored provider credentials stay bound to where they were configured to go.

Each provider runs against its fake (the official clients for GCP and Azure): moving a
credential-bound field needs the complete credential set, stored secrets are never merged into
an update that moves them, and nothing reaches the new host. After the provider-credential key
changes, re-entering the complete set works and a partial update says what it lacks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kavach.server.crypto.envelope import seal
from kavach.server.providers.models import ProviderConfig
from tests.conftest import InProcessServer
from tests.fakes.azure import FakeAzure, serve_fake_azure
from tests.fakes.gcp import FakeGCPState, new_service_account, serve_fake_gcp
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions
from tests.integration.test_resources import Api, user

OWNER, REPO, OTHER_REPO, PROJECT = "octo", "app", "payroll", "kavach-test"


async def environment(server: InProcessServer) -> tuple[Api, str]:
    """Log alice in and create acme/web/prod; return her API and the providers' base path."""
    alice = await user(server, "alice")
    org = await alice.call("POST", "/organizations/", {"name": "acme"}, status=201)
    group = await alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "web"}, status=201
    )
    env = await alice.call(
        "POST", f"/secret-groups/{group['id']}/environments", {"name": "prod"}, status=201
    )
    return alice, f"/environments/{env['id']}/providers"


def refused(answer: dict[str, Any], *missing: str) -> None:
    """Check a 422 credentials_required answer naming exactly the missing fields."""
    assert answer["error_code"] == "credentials_required", answer
    assert answer["data"] == {"missing": sorted(missing)}


@pytest.fixture
def two_githubs() -> Iterator[tuple[FakeActionsState, str, FakeActionsState, str]]:
    """Two fake GitHubs: the configured one (with two repositories) and an attacker's."""
    home, elsewhere = FakeActionsState(), FakeActionsState(tokens={})
    home.add_repo(OWNER, REPO)
    home.add_repo(OWNER, OTHER_REPO)
    with serve_fake_github_actions(home) as home_url, serve_fake_github_actions(elsewhere) as url:
        yield home, home_url, elsewhere, url


async def test_github_token_cannot_be_moved_to_another_host_or_repository(
    server: InProcessServer, two_githubs: tuple[FakeActionsState, str, FakeActionsState, str]
) -> None:
    home, home_url, elsewhere, elsewhere_url = two_githubs
    alice, base = await environment(server)
    config = {"owner": OWNER, "repository": REPO, "api_url": home_url}
    body = {"provider": "github", "config": config, "credentials": {"token": home.token}}
    await alice.call("POST", f"{base}/", body, status=201)
    for move in ({"api_url": elsewhere_url}, {"repository": OTHER_REPO}, {"environment": "x"}):
        none_or_empty: tuple[dict[str, str] | None, ...] = (None, {})
        for credentials in none_or_empty:
            answer = await alice.call(
                "PATCH",
                f"{base}/github",
                {"config": move, "credentials": credentials},
                status=422,
            )
            refused(answer, "token")
            assert home.token not in json.dumps(answer)
    await alice.call("POST", f"{base}/github/test", status=200)
    assert elsewhere.requests == []
    assert not [r for r in home.requests if f"/{OTHER_REPO}/" in r.path]
    # With the complete set (here: the token) the move is the caller's own decision.
    moved = {"config": {"repository": OTHER_REPO}, "credentials": {"token": home.token}}
    await alice.call("PATCH", f"{base}/github", moved, status=200)
    await alice.call("POST", f"{base}/github/test", status=200)


@pytest.fixture
def two_gcps() -> Iterator[tuple[FakeGCPState, str, FakeGCPState, str]]:
    """Two fake GCPs: the configured one and an attacker's."""
    home, elsewhere = FakeGCPState(), FakeGCPState()
    with serve_fake_gcp(home) as home_url, serve_fake_gcp(elsewhere) as elsewhere_url:
        yield home, home_url, elsewhere, elsewhere_url


async def test_gcp_key_is_not_merged_into_an_update_that_moves_it(
    server: InProcessServer, two_gcps: tuple[FakeGCPState, str, FakeGCPState, str]
) -> None:
    home, home_url, elsewhere, elsewhere_url = two_gcps
    alice, base = await environment(server)
    key = new_service_account(home, home_url, project_id=PROJECT)
    config = {"project_id": PROJECT, "api_endpoint": home_url}
    await alice.call(
        "POST", f"{base}/", {"provider": "gcp", "config": config, "credentials": key}, status=201
    )
    one_field = {"client_email": key["client_email"]}
    attacks: list[dict[str, Any]] = [
        {"config": {"api_endpoint": elsewhere_url}, "credentials": one_field},
        {"config": {"project_id": "attacker-project"}, "credentials": one_field},
        {"config": {"location": "europe-west1"}, "credentials": one_field},
        {"credentials": {"token_uri": f"{elsewhere_url}/token"}},
        {"credentials": {"universe_domain": "attacker.example"}},
    ]
    for attack in attacks:
        answer = await alice.call("PATCH", f"{base}/gcp", attack, status=422)
        missing = {"type", "client_email", "private_key"} - set(attack["credentials"])
        refused(answer, *missing)
        assert "PRIVATE KEY" not in json.dumps(answer)
    await alice.call("POST", f"{base}/gcp/test", status=200)
    assert elsewhere.requests == []
    assert home.requests  # the test did reach the configured endpoint
    # A partial update that moves nothing still merges (a new client_email, same key).
    shown = await alice.call("PATCH", f"{base}/gcp", {"credentials": one_field}, status=200)
    assert shown["config"].items() >= config.items()


@pytest.fixture
def two_azures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeAzure, FakeAzure]]:
    """Two fake Azures (vault and Entra each), both trusted, as a public CA would make them."""
    with serve_fake_azure() as home, serve_fake_azure() as elsewhere:
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text(
            Path(home.ca_file).read_text() + Path(elsewhere.ca_file).read_text(), encoding="utf-8"
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        yield home, elsewhere


def azure_body(fake: FakeAzure) -> dict[str, Any]:
    """Return the configuration of a provider for the fake, with its right credentials."""
    state = fake.state
    return {
        "provider": "azure",
        "config": {"vault_url": fake.vault_url, "authority_host": fake.authority_host},
        "credentials": {
            "tenant_id": state.tenant_id,
            "client_id": state.client_id,
            "client_secret": state.client_secret,
        },
    }


async def test_azure_client_secret_is_not_sent_to_a_host_an_admin_picks(
    server: InProcessServer, two_azures: tuple[FakeAzure, FakeAzure]
) -> None:
    home, elsewhere = two_azures
    alice, base = await environment(server)
    await alice.call("POST", f"{base}/", azure_body(home), status=201)
    tenant = {"tenant_id": home.state.tenant_id}
    attacks: list[dict[str, Any]] = [
        {"config": {"vault_url": elsewhere.vault_url}, "credentials": tenant},
        {"config": {"authority_host": elsewhere.authority_host}, "credentials": tenant},
        {"credentials": {"tenant_id": "attacker-tenant"}},
    ]
    for attack in attacks:
        answer = await alice.call("PATCH", f"{base}/azure", attack, status=422)
        refused(answer, *({"client_id", "client_secret", "tenant_id"} - set(attack["credentials"])))
        assert home.state.client_secret not in json.dumps(answer)
    await alice.call("POST", f"{base}/azure/test", status=200)
    assert elsewhere.state.requests == []
    # Rotating the client secret alone still works: nothing moves.
    rotated = {"credentials": {"client_secret": home.state.client_secret}}
    await alice.call("PATCH", f"{base}/azure", rotated, status=200)


async def test_credentials_can_be_entered_again_after_the_key_changed(
    server: InProcessServer, two_azures: tuple[FakeAzure, FakeAzure]
) -> None:
    home, _ = two_azures
    alice, base = await environment(server)
    body = azure_body(home)
    await alice.call("POST", f"{base}/", body, status=201)
    # What a replaced KAVACH_PROVIDER_CREDENTIAL_KEY leaves: credentials sealed under another key.
    async with server.runtime.sessionmaker() as session, session.begin():
        record = await session.scalar(select(ProviderConfig))
        assert record is not None
        record.credentials_encrypted = seal(bytes(32), b"{}", b"another key's data")
    unreadable = await alice.call("POST", f"{base}/azure/test", status=503)
    assert unreadable["error_code"] == "credentials_unreadable"
    partial = {"credentials": {"client_secret": home.state.client_secret}}
    answer = await alice.call("PATCH", f"{base}/azure", partial, status=422)
    refused(answer, "client_id", "tenant_id")
    assert "decrypt" in answer["error"]
    # A config change that needs no credentials still goes through.
    await alice.call("PATCH", f"{base}/azure", {"config": {"prefix": "kv-"}}, status=200)
    await alice.call("PATCH", f"{base}/azure", {"credentials": body["credentials"]}, status=200)
    await alice.call("POST", f"{base}/azure/test", status=200)
