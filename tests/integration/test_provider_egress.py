"""Where providers may connect: no non-public address unless allowed, no redirect, no echo.

The fakes listen on loopback, which is exactly what a server that refuses private targets
must not reach: such a server refuses them when they are configured, and again when a
provider connects (a name that resolved elsewhere at configure time). The real resolver
answers for `localhost`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kavach.server.app import create_app
from kavach.server.settings import Mode
from tests.conftest import InProcessServer, make_settings, random_keys, truncate_all
from tests.fakes.azure import FakeAzure, make_tls_files, serve_fake_azure
from tests.fakes.gcp import FakeGCPState, new_service_account, serve_fake_gcp
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions
from tests.fakes.stub import Stub, serve_stub
from tests.integration.test_provider_credentials import azure_body, environment

OWNER, REPO, PROJECT = "octo", "app", "kavach-test"
MARKER = "internal-service-says-hunter2"


@pytest.fixture
async def strict_server(
    tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[InProcessServer]:
    """A server that refuses private targets (the production default), on either backend."""
    settings = make_settings(tmp_path / "data", database_url)
    settings.sync_allow_private_targets = False
    mode = getattr(request, "param", None)
    if mode is not None:  # production proper: the default must be the refusal
        settings.mode, settings.sync_allow_private_targets = mode, None
        settings.auth.enable_local_idp = True
    app = create_app(settings, keys=random_keys())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")
        in_process = InProcessServer(app=app, client=client)
        await truncate_all(in_process.runtime)
        async with client:
            yield in_process


@pytest.fixture
def github() -> Iterator[tuple[FakeActionsState, str]]:
    """A fake GitHub on a loopback port."""
    state = FakeActionsState()
    state.add_repo(OWNER, REPO)
    with serve_fake_github_actions(state) as url:
        yield state, url


@pytest.fixture
def gcp() -> Iterator[tuple[FakeGCPState, str]]:
    """A fake GCP on a loopback port."""
    state = FakeGCPState()
    with serve_fake_gcp(state) as url:
        yield state, url


@pytest.fixture
def tls(tmp_path: Path) -> Any:
    """A CA and a certificate for 127.0.0.1, for HTTPS stubs."""
    directory = tmp_path / "tls"
    directory.mkdir()
    return make_tls_files(directory)


@pytest.fixture
def azure(tls: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    """A fake Azure on a loopback port; its CA and the stubs' are trusted."""
    with serve_fake_azure() as fake:
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text(Path(fake.ca_file).read_text() + tls.ca_file.read_text())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        yield fake


def github_body(url: str, token: str) -> dict[str, Any]:
    """Return a GitHub configuration for the repository at `url`."""
    config = {"owner": OWNER, "repository": REPO, "api_url": url}
    return {"provider": "github", "config": config, "credentials": {"token": token}}


def gcp_body(state: FakeGCPState, url: str, endpoint: str | None = None) -> dict[str, Any]:
    """Return a GCP configuration whose key the fake at `url` trusts."""
    key = new_service_account(state, url, project_id=PROJECT)
    config = {"project_id": PROJECT, "api_endpoint": endpoint or url}
    return {"provider": "gcp", "config": config, "credentials": key}


def not_allowed(answer: dict[str, Any]) -> None:
    """Check a 422 target_not_allowed answer."""
    assert answer["error_code"] == "target_not_allowed", answer
    assert "KAVACH_SYNC_ALLOW_PRIVATE_TARGETS" in answer["error"]


async def test_private_targets_are_refused_when_configured(
    strict_server: InProcessServer,
    github: tuple[FakeActionsState, str],
    gcp: tuple[FakeGCPState, str],
    azure: FakeAzure,
) -> None:
    state, url = github
    alice, base = await environment(strict_server)
    port = url.rsplit(":", 1)[1]
    for api_url in (
        url,
        f"http://localhost:{port}",
        f"http://[::1]:{port}",
        "https://169.254.169.254",
        "https://[::ffff:169.254.169.254]",
        "https://10.0.0.1",
        "https://100.64.0.1",
        "https://0.0.0.0",
    ):
        answer = await alice.call("POST", f"{base}/", github_body(api_url, "t"), status=422)
        not_allowed(answer)
    await alice.call("POST", f"{base}/", gcp_body(*gcp), status=422)
    await alice.call("POST", f"{base}/", azure_body(azure), status=422)
    assert state.requests == [] and gcp[0].requests == [] and azure.state.requests == []


async def test_a_target_that_turns_private_is_refused_when_connecting(
    strict_server: InProcessServer,
    github: tuple[FakeActionsState, str],
    gcp: tuple[FakeGCPState, str],
    azure: FakeAzure,
) -> None:
    state, url = github
    alice, base = await environment(strict_server)
    settings = strict_server.runtime.settings
    # Configured while the names resolved to public addresses, as far as this server knew.
    settings.sync_allow_private_targets = True
    localhost = url.replace("127.0.0.1", "localhost")
    await alice.call("POST", f"{base}/", github_body(localhost, state.token), status=201)
    await alice.call("POST", f"{base}/", gcp_body(*gcp), status=201)
    await alice.call("POST", f"{base}/", azure_body(azure), status=201)
    settings.sync_allow_private_targets = False
    for provider in ("github", "gcp", "azure"):
        not_allowed(await alice.call("POST", f"{base}/{provider}/test", status=422))
    env_id = base.split("/")[2]
    await alice.call(
        "POST", f"/environments/{env_id}/secrets/versions", {"message": "m", "set": {"A": "1"}}
    )
    sync = {"provider": "github"}
    not_allowed(await alice.call("POST", f"/environments/{env_id}/secrets/sync", sync, status=422))
    assert state.requests == [] and gcp[0].requests == [] and azure.state.requests == []


@pytest.mark.parametrize("strict_server", [Mode.PRODUCTION], indirect=True)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # production refuses SQLite
async def test_production_refuses_private_targets_by_default(
    strict_server: InProcessServer, github: tuple[FakeActionsState, str]
) -> None:
    state, url = github
    alice, base = await environment(strict_server)
    port = url.rsplit(":", 1)[1]
    for api_url in (url, "https://169.254.169.254", f"http://localhost:{port}"):
        answer = await alice.call("POST", f"{base}/", github_body(api_url, "t"), status=422)
        not_allowed(answer)
    strict_server.runtime.settings.sync_allow_private_targets = True  # a GitHub Enterprise here
    await alice.call("POST", f"{base}/", github_body(url, state.token), status=201)
    await alice.call("POST", f"{base}/github/test", status=200)


async def test_redirects_are_not_followed(
    server: InProcessServer,
    github: tuple[FakeActionsState, str],
    gcp: tuple[FakeGCPState, str],
    azure: FakeAzure,
    tls: Any,
) -> None:
    alice, base = await environment(server)
    to_github = Stub(307, {"Location": github[1]})
    to_gcp = Stub(307, {"Location": gcp[1]})
    to_azure = Stub(307, {"Location": azure.vault_url})
    with (
        serve_stub(to_github) as github_stub,
        serve_stub(to_gcp) as gcp_stub,
        serve_stub(to_azure, tls) as azure_stub,
    ):
        await alice.call("POST", f"{base}/", github_body(github_stub, github[0].token))
        await alice.call("POST", f"{base}/", gcp_body(*gcp, endpoint=gcp_stub))
        body = azure_body(azure)
        body["config"]["vault_url"] = azure_stub
        await alice.call("POST", f"{base}/", body, status=201)
        for provider in ("github", "gcp", "azure"):
            answer = await alice.call("POST", f"{base}/{provider}/test", status=502)
            assert "307" in answer["error"], answer
    assert to_github.requests and to_gcp.requests and to_azure.requests
    assert github[0].requests == [] and gcp[0].requests == [] and azure.state.requests == []


async def test_a_remote_error_body_is_not_repeated(
    server: InProcessServer, tls: Any, azure: FakeAzure
) -> None:
    alice, base = await environment(server)
    answers = {
        "github": {"message": MARKER},
        "gcp": {"error": {"code": 400, "message": MARKER, "status": "FAILED_PRECONDITION"}},
        "azure": {"error": {"code": "BadParameter", "message": MARKER}},
    }
    stubs = {name: Stub(400, body=json.dumps(body).encode()) for name, body in answers.items()}
    gcp_state = FakeGCPState()
    with (
        serve_stub(stubs["github"]) as github_stub,
        serve_stub(stubs["gcp"]) as gcp_stub,
        serve_stub(stubs["azure"], tls) as azure_stub,
    ):
        await alice.call("POST", f"{base}/", github_body(github_stub, "t"), status=201)
        await alice.call("POST", f"{base}/", gcp_body(gcp_state, gcp_stub), status=201)
        body = azure_body(azure)
        body["config"]["vault_url"] = azure_stub
        await alice.call("POST", f"{base}/", body, status=201)
        errors = {
            name: await alice.call("POST", f"{base}/{name}/test", status=502) for name in stubs
        }
    assert all(stub.requests for stub in stubs.values())
    for name, answer in errors.items():
        assert "400" in answer["error"], answer
        assert MARKER not in json.dumps(answer), name
    assert "FAILED_PRECONDITION" in errors["gcp"]["error"]
    assert "BadParameter" in errors["azure"]["error"]
