"""Sync end to end: the real CLI and server against fakes of GitHub Actions, GCP and Azure.

The three fakes run as real servers on loopback ports; the Kavach server talks to them with
its real provider code (the official GCP and Azure clients included). Everything is driven
through `kavach provider …` and `kavach secret sync …`; the fakes' state and recorded requests
say what reached each target.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    CLI_TIMEOUT,
    Cli,
    CliResult,
    KavachServer,
    ServerFactory,
    kavach_command,
    stored_literally,
)
from tests.fakes.azure import FakeAzure, serve_fake_azure
from tests.fakes.gcp import FakeGCPState, new_service_account, serve_fake_gcp
from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions

pytestmark = pytest.mark.e2e

OWNER, REPO, PROJECT = "octo", "app", "kavach-test"
GCP_PREFIX, AZURE_PREFIX = "kv_", "kv-"
RETRY_BUDGET = 3  # KAVACH_SYNC_MAX_ATTEMPTS for these servers
# Values every target must hold byte for byte.
SECRETS = {
    "DB_URL": "postgres://app:p@ss w0rd@db.internal:5432/app?sslmode=require",
    "MULTILINE": "-----BEGIN KEY-----\nline two\n\tindented\n-----END KEY-----\n",
    "QUOTES": "it's \"double\", 'single' and `back` quoted \\ with a backslash",
    "DOLLARS": "$HOME ${PATH} $(whoami) $$ %s %%",
    "UNICODE": "पासवर्ड — ключ — 🔑 — café",
    "EMPTY": "",
    "app.port": "8080",
    "TO_REMOVE": "soon gone",
}
GCP_WRITES = {
    "secrets.create",
    "secrets.addVersion",
    "secrets.patch",
    "secrets.delete",
    "secrets.versions.disable",
    "secrets.versions.enable",
    "secrets.versions.destroy",
}


def _ok(result: CliResult) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    return result.stdout


def kavach(cli: Cli, *args: str, stdin: str | None = None) -> CliResult:
    """Run `kavach *args` as `cli`'s user, with `stdin` piped in (closed when None)."""
    done = subprocess.run(
        [*kavach_command(), *args],
        env=cli.env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def sync(cli: Cli, provider: str, *flags: str) -> tuple[CliResult, dict[str, Any] | None]:
    """Run `secret sync -p PROVIDER --json FLAGS`; return the result and the run it printed."""
    result = kavach(cli, "secret", "sync", "-p", provider, "--json", *flags)
    assert "Traceback" not in result.stderr, result
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def items(run: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Return name -> (action, status) of a run's items."""
    assert run is not None
    return {item["name"]: (item["action"], item["status"]) for item in run["items"]}


def changes(run: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Return name -> (action, status) of the items that were not unchanged."""
    return {name: done for name, done in items(run).items() if done[0] != "unchanged"}


def each(targets: list[Target], check: Callable[[Target], None]) -> None:
    """Run `check` on every target at once (their syncs are independent); re-raise failures."""
    with ThreadPoolExecutor(len(targets)) as pool:
        for future in [pool.submit(check, target) for target in targets]:
            future.result()


@dataclass
class Target:
    """One fake target, seen the same way whatever the provider."""

    provider: str
    remote: Callable[[str], str]  # Kavach name -> remote name
    read: Callable[[str], str | None]  # remote name -> value now (None: absent)
    seed: Callable[[str, str], None]  # create a secret outside Kavach
    writes: Callable[[], int]  # how many write requests the fake has seen
    fail: Callable[..., None]  # fail(status, remote name, times=, retry_after=)
    clear: Callable[[], None]  # forget scripted faults
    violations: Callable[[], list[str]]

    def values(self, names: dict[str, str]) -> dict[str, str | None]:
        return {name: self.read(self.remote(name)) for name in names}


@dataclass
class Fakes:
    github_url: str
    github: FakeActionsState
    gcp_url: str
    gcp: FakeGCPState
    azure: FakeAzure


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """Run the three fakes on loopback ports."""
    github = FakeActionsState()
    github.add_repo(OWNER, REPO)
    gcp = FakeGCPState()
    with (
        serve_fake_github_actions(github) as github_url,
        serve_fake_gcp(gcp) as gcp_url,
        serve_fake_azure() as azure,
    ):
        yield Fakes(github_url, github, gcp_url, gcp, azure)


def _github_target(state: FakeActionsState) -> Target:
    def read(name: str) -> str | None:
        try:
            return state.plaintext(OWNER, REPO, None, name)
        except KeyError:
            return None

    def fail(status: int, name: str, *, times: int = 1, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after else None
        state.fail(status, method="PUT", secret=name, times=times, headers=headers)

    return Target(
        "github",
        lambda name: re.sub(r"[^A-Z0-9_]", "_", name.upper()),
        read,
        lambda name, value: state.seed(OWNER, REPO, None, name, value),
        lambda: sum(r.method in ("PUT", "DELETE") for r in state.requests),
        fail,
        state.faults.clear,
        lambda: state.violations,
    )


def _gcp_target(state: FakeGCPState) -> Target:
    def seed(name: str, value: str) -> None:
        state.seed(PROJECT, name, value)

    def fail(status: int, name: str, *, times: int = 1, retry_after: str | None = None) -> None:
        state.fail(status, secret=name, times=times, retry_after=retry_after)

    return Target(
        "gcp",
        lambda name: GCP_PREFIX + name.replace(".", "_"),
        lambda name: state.latest_value(PROJECT, name),
        seed,
        lambda: sum(r.operation in GCP_WRITES for r in state.requests),
        fail,
        state.faults.clear,
        lambda: state.violations,
    )


def _azure_target(azure: FakeAzure) -> Target:
    state = azure.state

    def fail(status: int, name: str, *, times: int = 1, retry_after: str | None = None) -> None:
        state.fail(status, secret=name, method="PUT", times=times, retry_after=retry_after)

    def writes() -> int:
        return sum(
            r.method in ("PUT", "DELETE") or r.path.endswith("/recover") for r in state.requests
        )

    return Target(
        "azure",
        lambda name: AZURE_PREFIX + name.replace("_", "-").replace(".", "-").lower(),
        state.value,
        lambda name, value: state.add_secret(name, value),
        writes,
        fail,
        state.faults.clear,
        lambda: state.violations,
    )


def _log_in_and_build(server: KavachServer, cli: Cli, secrets_file: Path) -> None:
    """Log alice in, create acme/web/prod (active) and push SECRETS as its first version."""
    login = cli.start_login(server.url)
    server.approve(login.code, "alice")
    assert login.wait().code == 0
    for args in (
        ("org", "create", "acme"),
        ("org", "activate", "acme"),
        ("group", "create", "web"),
        ("group", "activate", "web"),
        ("env", "create", "prod"),
        ("env", "activate", "prod"),
    ):
        _ok(cli.run(*args))
    secrets_file.write_text(json.dumps(stored_literally(SECRETS)), encoding="utf-8")
    _ok(cli.run("secret", "push", "-f", str(secrets_file), "-m", "initial", "--yes"))


def _configure_all(cli: Cli, fakes: Fakes, tmp_path: Path) -> dict[str, str]:
    """Configure the three providers through the CLI; return the credentials used."""
    token = fakes.github.token
    _ok(
        kavach(
            cli,
            *("provider", "configure", "github", "--owner", OWNER, "--repository", REPO),
            *("--api-url", fakes.github_url, "--token-stdin"),
            stdin=token + "\n",
        )
    )
    key = new_service_account(fakes.gcp, fakes.gcp_url)
    key_file = tmp_path / "gcp-key.json"
    key_file.touch(mode=0o600)
    key_file.write_text(json.dumps(key), encoding="utf-8")
    assert key_file.stat().st_mode & 0o777 == 0o600
    configured = kavach(
        cli,
        *("provider", "configure", "gcp", "--key-file", str(key_file)),
        *("--api-endpoint", fakes.gcp_url, "--prefix", GCP_PREFIX, "--label", "team=web"),
    )
    _ok(configured)
    assert "Warning" not in configured.stderr  # a private key file draws no warning
    azure = fakes.azure
    client_secret = azure.state.client_secret
    _ok(
        kavach(
            cli,
            *("provider", "configure", "azure", "--tenant-id", azure.state.tenant_id),
            *("--client-id", azure.state.client_id, "--vault-url", azure.vault_url),
            *("--authority-host", azure.authority_host, "--prefix", AZURE_PREFIX),
            "--client-secret-stdin",
            stdin=client_secret,
        )
    )
    # The private key's body, not its PEM armour.
    private = key["private_key"].splitlines()[1]
    return {"token": token, "client_secret": client_secret, "private_key": private}


def _commit(cli: Cli, message: str, values: dict[str, str], *, replace: bool = False) -> None:
    """Push `values` as a new version (on top of the latest, or replacing it)."""
    source = cli.home.parent / "push.json"
    source.write_text(json.dumps(stored_literally(values)), encoding="utf-8")
    flags = ("--replace",) if replace else ()
    _ok(cli.run("secret", "push", "-f", str(source), "-m", message, "--yes", *flags))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sync_to_github_gcp_and_azure(
    start_server: ServerFactory,
    cli: Cli,
    fakes: Fakes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server inherits this process's environment (bar KAVACH_*): the official Azure client
    # must trust the CA that signed the fake vault's certificate.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fakes.azure.ca_file)
    server = start_server(sync_max_attempts=RETRY_BUDGET)
    _log_in_and_build(server, cli, tmp_path / "secrets.json")
    credentials = _configure_all(cli, fakes, tmp_path)
    targets = [_github_target(fakes.github), _gcp_target(fakes.gcp), _azure_target(fakes.azure)]
    listed = json.loads(_ok(cli.run("provider", "list", "--json")))
    assert [p["provider"] for p in listed["items"]] == ["azure", "gcp", "github"]

    expected_targets = {
        "github": f"github:127.0.0.1:{fakes.github_url.rsplit(':', 1)[1]}/{OWNER}/{REPO}",
        "gcp": f"gcp:{PROJECT}",
        "azure": f"azure:{fakes.azure.vault_url.removeprefix('https://')}/{AZURE_PREFIX}",
    }
    for target in targets:
        tested = _ok(cli.run("provider", "test", target.provider))
        where = expected_targets[target.provider]
        assert tested == f"{target.provider} works: Kavach can reach {where}.\n"
        target.seed(target.remote("HANDMADE"), "made by hand")

    # 1. A dry run plans every secret as a create and writes nothing.
    def dry_run(target: Target) -> None:
        before = target.writes()
        result, plan = sync(cli, target.provider, "--dry-run")
        _ok(result)
        assert plan is not None and plan["status"] == "planned"
        assert {i["name"]: i["remote_name"] for i in plan["items"]} == {
            name: target.remote(name) for name in SECRETS
        }
        assert set(items(plan).values()) == {("create", "planned")}
        assert target.writes() == before
        assert target.values(SECRETS) == dict.fromkeys(SECRETS)

    each(targets, dry_run)

    # 2. The sync writes every value exactly, under the target's names.
    def first_sync(target: Target) -> None:
        result, run = sync(cli, target.provider, "--yes")
        _ok(result)
        assert run is not None and run["status"] == "succeeded"
        assert set(items(run).values()) == {("create", "succeeded")}
        assert target.values(SECRETS) == SECRETS
        assert result.stderr == f"Syncing {len(SECRETS)} secret(s) to {run['target']}…\n"

    each(targets, first_sync)

    # 3. A second sync finds nothing to write and sends no write.
    def second_sync(target: Target) -> None:
        before = target.writes()
        result = kavach(cli, "secret", "sync", "-p", target.provider, "--yes")
        assert _ok(result).endswith(
            f"Nothing to sync: {expected_targets[target.provider]} is up to date.\n"
        )
        assert target.writes() == before

    each(targets, second_sync)

    # 4. One change and one removal: the change is written, the removed secret stays on the
    #    target until --prune, which deletes it alone (not what was made by hand).
    rotated = {**SECRETS, "DB_URL": "postgres://app:rotated@db.internal/app"}
    del rotated["TO_REMOVE"]
    _commit(cli, "rotate", rotated, replace=True)

    def change_then_prune(target: Target) -> None:
        result, run = sync(cli, target.provider, "--yes")
        _ok(result)
        assert changes(run) == {"DB_URL": ("update", "succeeded")}
        assert target.read(target.remote("DB_URL")) == "postgres://app:rotated@db.internal/app"
        assert target.read(target.remote("TO_REMOVE")) == "soon gone"

        result, run = sync(cli, target.provider, "--yes", "--prune")
        _ok(result)
        assert changes(run) == {"TO_REMOVE": ("delete", "succeeded")}
        assert target.read(target.remote("TO_REMOVE")) is None
        assert target.read(target.remote("HANDMADE")) == "made by hand"

    each(targets, change_then_prune)

    # 5. A secret someone else made under the same name is refused, then adopted.
    for target in targets:
        target.seed(target.remote("SHARED"), "theirs")
    _commit(cli, "shared", {"SHARED": "ours"})

    def refuse_then_adopt(target: Target) -> None:
        refused = kavach(cli, "secret", "sync", "-p", target.provider, "--yes")
        assert refused.code == 4, refused
        assert refused.stderr.endswith(
            "Error: nothing synced: 1 refused (SHARED): they exist on the target but Kavach did "
            "not write them; --adopt takes them over\n"
        )
        assert "unmanaged" in refused.stdout and "SHARED" in refused.stdout
        assert target.read(target.remote("SHARED")) == "theirs"
        result, run = sync(cli, target.provider, "--yes", "--adopt")
        _ok(result)
        assert changes(run) == {"SHARED": ("update", "succeeded")}
        assert target.read(target.remote("SHARED")) == "ours"

    each(targets, refuse_then_adopt)

    # 6. A write the target keeps refusing makes the run partial (exit 2) with its error;
    #    once the fault is gone, a re-run completes it.
    _commit(cli, "flaky", {"FLAKY": "first", "APP_MODE": "live"})
    github, gcp, azure = targets
    github.fail(500, github.remote("FLAKY"), times=RETRY_BUDGET + 5)  # retried, in vain
    gcp.fail(403, gcp.remote("FLAKY"), times=10)  # not retried
    azure.fail(403, azure.remote("FLAKY"), times=10)

    def fail_then_complete(target: Target) -> None:
        result, run = sync(cli, target.provider, "--yes")
        assert result.code == 4, result
        assert run is not None and run["status"] == "partial"
        flaky = next(i for i in run["items"] if i["name"] == "FLAKY")
        assert flaky["status"] == "failed"
        assert flaky["attempts"] == (RETRY_BUDGET if target is github else 1)
        assert flaky["error"]
        assert changes(run) == {
            "APP_MODE": ("create", "succeeded"),
            "FLAKY": ("create", "failed"),
        }
        assert target.read(target.remote("FLAKY")) is None
        assert json.loads(result.stderr.splitlines()[-1]) == {  # --json: the error as JSON
            "error": f"sync to {run['target']} only partly succeeded: 1 failed (FLAKY): run the "
            "sync again to retry",
            "error_code": "sync_incomplete",
        }
        target.clear()
        result, run = sync(cli, target.provider, "--yes")
        _ok(result)
        assert changes(run) == {"FLAKY": ("create", "succeeded")}
        assert target.read(target.remote("FLAKY")) == "first"

    each(targets, fail_then_complete)

    # The human report of the partial run is still there to read.
    runs = json.loads(_ok(cli.run("secret", "sync-runs", "--json", "--limit", "200")))["items"]
    partial = next(r for r in runs if r["provider"] == "gcp" and r["status"] == "partial")
    shown = _ok(cli.run("secret", "sync-run", partial["id"][:8]))
    assert "Status: partial" in shown and "FLAKY" in shown and "failed" in shown

    # 7. A 429 with Retry-After: 1 is waited out and retried.
    _commit(cli, "limited", {"RATE": "limited"})

    def rate_limited(target: Target) -> None:
        target.fail(429, target.remote("RATE"), retry_after="1")
        started = time.monotonic()
        result, run = sync(cli, target.provider, "--yes")
        _ok(result)
        assert run is not None
        rate = next(i for i in run["items"] if i["name"] == "RATE")
        assert (rate["status"], rate["attempts"]) == ("succeeded", 2)
        assert time.monotonic() - started >= 1.0
        assert target.read(target.remote("RATE")) == "limited"

    each(targets, rate_limited)

    # No request broke the targets' API descriptions, and no credential or value leaked.
    for target in targets:
        assert target.violations() == [], target.provider
    logs = server.stderr() + server.stdout()
    home = b"".join(p.read_bytes() for p in cli.home.rglob("*") if p.is_file())
    for secret in (*credentials.values(), SECRETS["DB_URL"], SECRETS["UNICODE"]):
        assert secret not in logs
        assert secret.encode() not in home


@pytest.fixture
def github() -> Iterator[tuple[FakeActionsState, str]]:
    """Run the GitHub Actions fake alone."""
    state = FakeActionsState()
    state.add_repo(OWNER, REPO)
    with serve_fake_github_actions(state) as url:
        yield state, url


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_core_sync_flow_and_one_sync_per_target(
    start_server: ServerFactory,
    cli: Cli,
    github: tuple[FakeActionsState, str],
    tmp_path: Path,
) -> None:
    state, url = github
    target = _github_target(state)
    server = start_server()
    _log_in_and_build(server, cli, tmp_path / "secrets.json")
    configure = ("provider", "configure", "github", "--owner", OWNER, "--repository", REPO)
    _ok(kavach(cli, *configure, "--api-url", url, "--token-stdin", stdin=state.token))

    # A partial update changes the token alone; a bad one fails the test, a good one passes.
    _ok(kavach(cli, "provider", "update", "github", "--token-stdin", stdin="ghp_wrong"))
    failed = cli.run("provider", "test", "github")
    assert failed.code == 4, failed
    assert failed.stderr.startswith("Error: ") and "(provider_error)" in failed.stderr
    assert "ghp_wrong" not in failed.stderr
    _ok(kavach(cli, "provider", "update", "github", "--token-stdin", stdin=state.token))
    shown = json.loads(_ok(cli.run("provider", "show", "github", "--json")))
    assert shown["config"] == {"owner": OWNER, "repository": REPO, "api_url": url}
    _ok(cli.run("provider", "test", "github"))

    result, run = sync(cli, "github", "--yes")
    _ok(result)
    assert run is not None and run["status"] == "succeeded"
    assert target.values(SECRETS) == SECRETS

    # While one sync of the target is running, another is turned away with a clear message.
    _commit(cli, "rotate", {"DB_URL": "rotated"})
    state.slow(3.0, method="PUT")
    seen = len(state.requests)
    first = subprocess.Popen(
        [*kavach_command(), "secret", "sync", "-p", "github", "--yes"],
        env=cli.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        # Its write has reached GitHub (and is held there): it holds the target's lock now.
        while not any(r.method == "PUT" for r in state.requests[seen:]):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = kavach(cli, "secret", "sync", "-p", "github", "--yes")
        out, err = first.communicate(timeout=CLI_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.code == 4, second
    assert second.stderr == (
        "Error: another sync to the same github target is running, so this one did not start "
        "and wrote nothing; try again when it has ended (sync_in_progress)\n"
    )
    assert first.returncode == 0, err
    assert "succeeded: 1 written" in out
    assert target.read("DB_URL") == "rotated"

    # Removing the provider leaves what it synced in place.
    _ok(cli.run("provider", "delete", "github", "--yes"))
    assert json.loads(_ok(cli.run("provider", "list", "--json"))) == {"items": [], "next": None}
    assert target.read("DB_URL") == "rotated"
