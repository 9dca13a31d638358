"""Regenerate the upgrade tests' databases with the code of earlier releases.

    python -m scripts.upgrade_fixtures            # every revision in RELEASES
    python -m scripts.upgrade_fixtures 0009       # one of them

For each release this checks out its commit into a temporary directory, starts that code's
server (this checkout's virtual environment, the old `src` first on PYTHONPATH) on a fresh
SQLite database and a fresh PostgreSQL database, fills every table through its API (logins,
the tree, a user group, bindings, service tokens, versions, a rollback, a GitHub provider
synced to the fake, secret reads), stops it and dumps the database as SQL into
tests/fixtures/upgrade/rNNNN/, with a manifest of what was written. The servers use the
test-only keys of tests/fixtures/upgrade/keys.json, made once and committed: never use them
anywhere else. Needs git, pg_dump and the PostgreSQL of KAVACH_TEST_POSTGRES_URL; CI does
not run it, it runs the committed dumps (tests/integration/test_upgrade.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.github_actions import FakeActionsState, serve_fake_github_actions
from tests.fakes.oidc_issuer import OidcIssuer, serve_oidc_issuer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "upgrade"
POSTGRES_ADMIN_URL = os.environ.get(
    "KAVACH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# The last commit at each revision: 0004 is the first release with every data table (its
# audit events predate the hash chain), 0009 the last before data keys moved to versions,
# 0013 the first with pending grants (invites), 0014 the first with OpenID Connect (people's
# sign-in with group mapping and linked identities, workload trusts).
RELEASES = {
    "0004": "0f11ade",
    "0009": "560b91d",
    "0013": "a217e3f",
    "0014": "80d3c41",
    "0016": "951d36b",
}
OPENID_FROM = "0014"
REFERENCES_FROM = "0016"  # references (0015) and webhooks (0016)
PROVIDER = "corp"
OWNER, REPO = "acme", "payments"


def test_keys() -> dict[str, str]:
    """Return the committed test-only keys, making them the first time."""
    path = FIXTURES / "keys.json"
    if not path.exists():
        names = ("jwt_signing_key", "secret_encryption_key", "provider_credential_key")
        made = {n: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() for n in names}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"_": "TEST ONLY, public: never use these keys", **made}))
    keys: dict[str, str] = json.loads(path.read_text())
    return {name: value for name, value in keys.items() if name != "_"}


def _run(tool: str, *args: str) -> bytes:
    """Run a tool found on PATH; return what it printed."""
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} is not installed")
    argv = [found, *args]
    return subprocess.run(argv, check=True, capture_output=True).stdout  # noqa: S603 - our argv


def _checkout(commit: str, into: Path) -> Path:
    archive = _run("git", "-C", str(ROOT), "archive", "--format=tar", commit, "src")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kavach(src: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from kavach.cli.main import run; run()", *args]
    quiet = subprocess.DEVNULL
    old_first = {**env, "PYTHONPATH": str(src)}
    return subprocess.Popen(command, env=old_first, stdout=quiet)  # noqa: S603 - our argv, no shell


@contextmanager
def old_server(src: Path, env: dict[str, str]) -> Iterator[str]:
    """Run the old code's server; yield its base URL."""
    port = _free_port()
    process = _kavach(src, env, "server", "start", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the old server did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


class Api:
    """One signed-in user of the old server."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
        self.client.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """Send a request, check its status and return the envelope's data."""
        answer = self.client.request(method, path, json=body)
        if answer.status_code != status:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()["data"]


def login(url: str, src: Path, env: dict[str, str], name: str) -> dict[str, Any]:
    """Log a user in through the device flow, approved with the old `kavach server approve`."""
    code = httpx.post(f"{url}/api/v1/auth/device/code", json={}).json()["data"]
    approve = _kavach(src, env, "server", "approve", code["user_code"], "--user", name)
    if approve.wait(timeout=60) != 0:
        raise RuntimeError("approving the login failed")
    body = {"device_code": code["device_code"]}
    answer = httpx.post(f"{url}/api/v1/auth/device/token", json=body)
    data: dict[str, Any] = answer.json()["data"]
    return data


def _commit(api: Api, env_id: str, message: str, **change: Any) -> dict[str, Any]:
    path = f"/environments/{env_id}/secrets/versions"
    made: dict[str, Any] = api.call("POST", path, {"message": message, **change}, 201)
    return made


def _secrets(api: Api, env_id: str, version_id: str) -> dict[str, str]:
    path = f"/environments/{env_id}/secrets?version={version_id}"
    found: dict[str, str] = api.call("GET", path)["secrets"]
    return found


def _versions(api: Api, env_id: str) -> list[dict[str, Any]]:
    """Return an environment's versions: a list in early releases, then a page."""
    data = api.call("GET", f"/environments/{env_id}/secrets/versions?limit=1000")
    found: list[dict[str, Any]] = data["versions"] if "versions" in data else data["items"]
    return found


def _invite(api: Api, env_id: str) -> dict[str, Any] | None:
    """Invite erin, who never signs in, where the release has invites (else None)."""
    answer = api.client.post(
        f"/environments/{env_id}/members", json={"user": "erin", "role": "viewer"}
    )
    if answer.status_code == 404:  # before invites: nobody called erin
        return None
    if answer.status_code != 202:
        raise RuntimeError(f"inviting erin: {answer.status_code} {answer.text}")
    invited: dict[str, Any] = answer.json()["data"]
    return invited


def _provider_settings(issuer: OidcIssuer) -> str:
    """KAVACH_OIDC_PROVIDERS for a release with OpenID sign-in: the test issuer."""
    provider = {
        "name": PROVIDER,
        "issuer": issuer.url,
        "client_id": "kavach",
        "client_secret": "fixture-client-secret",
        "allow_all_users": True,
        "group_map": {"platform-team": "acme/platform"},
    }
    return json.dumps([provider])


def _through_issuer(url: str, issuer: OidcIssuer, start: str, **claims: Any) -> httpx.Response:
    """Go out to the test issuer from `start` and back, as the person `claims` describe."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        out = browser.get(start)
        back = httpx.get(out.headers["location"]).headers["location"]
        nonce = issuer.authorize_requests[-1]["nonce"]
        now = int(time.time())
        id_claims = {"iss": issuer.url, "aud": "kavach", "iat": now, "exp": now + 300}
        token = issuer.mint({**id_claims, "nonce": nonce, **claims})
        issuer.on_token = lambda form: {
            "access_token": "at",
            "token_type": "Bearer",
            "id_token": token,
        }
        return browser.get(back)


def _openid(
    url: str, src: Path, env: dict[str, str], issuer: OidcIssuer, alice: Api, org: str, prod: str
) -> dict[str, Any]:
    """Fill what OpenID Connect added: trips, a mapped membership, a link, a trust, a token."""
    team = alice.call("POST", "/user-groups/", {"organization_id": org, "name": "platform"}, 201)
    frank = {
        "sub": "frank-at-corp",
        "preferred_username": "frank",
        "email": "frank@example.com",
        "email_verified": True,
        "groups": ["platform-team"],
    }
    signed_in = _through_issuer(url, issuer, f"/oidc/{PROVIDER}/login", **frank)
    if signed_in.status_code != 303:
        raise RuntimeError(f"frank's sign-in: {signed_in.status_code} {signed_in.text}")
    httpx.get(f"{url}/oidc/{PROVIDER}/login")  # a trip never finished
    code = httpx.post(f"{url}/api/v1/auth/device/code", json={}).json()["data"]
    approved = _through_issuer(
        url, issuer, f"/oidc/{PROVIDER}/login?user_code={code['user_code']}", **frank
    )
    if approved.status_code != 200:
        raise RuntimeError(f"frank's CLI login: {approved.status_code} {approved.text}")
    body = {"device_code": code["device_code"]}
    httpx.post(f"{url}/api/v1/auth/device/token", json=body).raise_for_status()
    link = ("server", "link-identity", "bob", "--provider", PROVIDER, "--subject", "bob-at-corp")
    if _kavach(src, env, *link).wait(timeout=60) != 0:
        raise RuntimeError("linking bob failed")
    trust = {
        "name": "deploy",
        "issuer": issuer.url,
        "audience": url,
        "conditions": {"repository": "acme/*"},
    }
    alice.call("POST", f"/environments/{prod}/workload-trusts", trust, 201)
    exchange = {"token": issuer.mint(issuer.github_claims(aud=url)), "environment_id": prod}
    answer = httpx.post(f"{url}/api/v1/auth/oidc-token", json=exchange)
    if answer.status_code != 200:
        raise RuntimeError(f"the exchange: {answer.status_code} {answer.text}")
    return {
        "openid": {
            "mapped_group": team["id"],
            "mapped_login": "frank",
            "linked": {"login": "bob", "subject": "bob-at-corp"},
            "trust": "deploy",
            "workload_token": answer.json()["data"]["access_token"],
        }
    }


def _references(alice: Api, group: str, org: str, dev: str) -> dict[str, Any]:
    """Fill what references and webhooks added: an environment referring to dev, a webhook."""
    app = alice.call("POST", f"/secret-groups/{group}/environments", {"name": "app"}, 201)
    _commit(alice, app["id"], "refer to dev", set={"HELLO": "${dev.GREETING}!"})
    hook = {"url": f"http://127.0.0.1:{_free_port()}/hook", "events": ["secret.commit"]}
    made = alice.call("POST", f"/organizations/{org}/webhooks", hook, 201)
    _commit(alice, dev, "heard by the webhook", set={"HEARD": "yes"})
    deadline = time.monotonic() + 30
    while not alice.call("GET", f"/webhooks/{made['id']}/deliveries")["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the webhook's delivery was never recorded")
        time.sleep(0.2)
    resolved = alice.call("GET", f"/environments/{app['id']}/secrets")["secrets"]
    return {"references": {"environment": app["id"], "secrets": resolved}, "webhook": made["id"]}


def fill(
    url: str,
    src: Path,
    env: dict[str, str],
    github_url: str,
    issuer: OidcIssuer | None = None,
    *,
    references: bool = False,
) -> dict[str, Any]:
    """Write something into every table through the API; return what was written."""
    sessions = {name: login(url, src, env, name) for name in ("alice", "bob", "carol", "dave")}
    alice = Api(url, sessions["alice"]["access_token"])
    # A refreshed session: the first refresh token is spent, the new one is kept.
    refresh = {"refresh_token": sessions["alice"]["refresh_token"]}
    refreshed = httpx.post(f"{url}/api/v1/auth/refresh", json=refresh).json()["data"]
    Api(url, sessions["dave"]["access_token"]).call("POST", "/auth/logout", {})

    org = alice.call("POST", "/organizations/", {"name": "acme"}, 201)
    group = alice.call(
        "POST", f"/organizations/{org['id']}/secret-groups", {"name": "payments"}, 201
    )
    envs = {
        name: alice.call("POST", f"/secret-groups/{group['id']}/environments", {"name": name}, 201)
        for name in ("prod", "dev", "scratch")
    }
    alice.call("DELETE", f"/environments/{envs.pop('scratch')['id']}")
    prod, dev = envs["prod"]["id"], envs["dev"]["id"]

    team = alice.call(
        "POST", "/user-groups/", {"organization_id": org["id"], "name": "backend"}, 201
    )
    alice.call("POST", f"/user-groups/{team['id']}/members", {"user": "bob"}, 201)
    viewers = {"user_group": "backend", "role": "viewer"}
    alice.call("POST", f"/secret-groups/{group['id']}/members", viewers)
    alice.call("POST", f"/environments/{prod}/members", {"user": "carol", "role": "editor"})
    invited = _invite(alice, prod)

    tokens = f"/environments/{prod}/tokens"
    ci = alice.call("POST", tokens, {"name": "ci", "role": "viewer", "expires_in": 86_400}, 201)
    old = alice.call("POST", tokens, {"name": "old", "role": "editor"}, 201)
    alice.call("DELETE", f"{tokens}/{old['id']}")

    values = {"DATABASE_URL": "postgres://db/payments", "API_KEY": "s3cr3t"}
    first = _commit(alice, prod, "first secrets", set=values)
    carol = Api(url, sessions["carol"]["access_token"])
    _commit(carol, prod, "rotate the API key", set={"API_KEY": "n3w", "TIMEOUT": "30"})
    _commit(alice, prod, "drop the timeout", unset=["TIMEOUT"])
    rollback = {"version_id": first["id"], "commit_message": "back to the first secrets"}
    alice.call("POST", f"/environments/{prod}/secrets/rollback", rollback, 201)
    _commit(alice, dev, "dev secrets", set={"GREETING": "नमस्ते, κόσμε", "EMPTY": ""})

    provider = {
        "provider": "github",
        "config": {"owner": OWNER, "repository": REPO, "api_url": github_url},
        "credentials": {"token": FakeActionsState().token},
    }
    alice.call("POST", f"/environments/{prod}/providers/", provider, 201)
    sync = alice.call("POST", f"/environments/{prod}/secrets/sync", {"provider": "github"})
    Api(url, ci["token"]).call("GET", f"/environments/{prod}/secrets")

    referring = _references(alice, group["id"], org["id"], dev) if references else {}
    listed = {name: _versions(alice, e["id"]) for name, e in envs.items()}
    versions = {
        name: [
            {**v, "secrets": _secrets(alice, env_id, v["id"])}
            for v in sorted(listed[name], key=lambda v: v["seq"])
        ]
        for name, env_id in ((n, e["id"]) for n, e in envs.items())
    }
    invites = {"invites": [invited]} if invited is not None else {}
    openid = _openid(url, src, env, issuer, alice, org["id"], prod) if issuer else {}
    return {
        **referring,
        "_": "TEST ONLY: tokens and values of a throwaway database",
        **invites,
        **openid,
        "organization": org,
        "secret_group": group,
        "environments": {name: e["id"] for name, e in envs.items()},
        "user_group": team["id"],
        "refresh_token": refreshed["refresh_token"],
        "service_token": {"id": ci["id"], "token": ci["token"]},
        "versions": versions,
        "sync_run": sync["id"],
        "synced": sorted(item["remote_name"] for item in sync["items"]),
    }


def _create_database(name: str) -> str:
    _run("psql", POSTGRES_ADMIN_URL, "-qc", f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rpartition("/")[0] + f"/{name}"


def _drop_database(name: str) -> None:
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _run("psql", POSTGRES_ADMIN_URL, "-qc", drop)


def dump_postgresql(url: str) -> str:
    """Dump as plain INSERT statements, runnable by any client (no psql meta-commands)."""
    text = _run("pg_dump", "--no-owner", "--no-privileges", "--inserts", url).decode()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("\\"))


def dump_sqlite(path: Path) -> str:
    """Dump the database file as SQL statements."""
    with closing(sqlite3.connect(path)) as connection:
        return "\n".join(connection.iterdump()) + "\n"


def _revision(sql: str) -> str:
    found = re.search(r"INSERT INTO (?:public\.)?\"?alembic_version\"? VALUES ?\('(\d+)'\)", sql)
    if found is None:
        raise RuntimeError("the dump holds no alembic revision")
    return found.group(1)


def make(revision: str, commit: str) -> None:
    """Write tests/fixtures/upgrade/r<revision>/ from the code at `commit`."""
    keys = test_keys()
    out = FIXTURES / f"r{revision}"
    out.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
    base.update({f"KAVACH_{name.upper()}": value for name, value in keys.items()})
    base.update({"KAVACH_LOG_LEVEL": "WARNING", "KAVACH_ENABLE_LOCAL_IDP": "true"})
    manifests = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = _checkout(commit, Path(tmp) / "code")
        for backend in ("sqlite", "postgresql"):
            data_dir = Path(tmp) / f"data-{backend}"
            env = {**base, "KAVACH_DATA_DIR": str(data_dir)}
            name = f"kavach_fixture_{secrets.token_hex(4)}"
            if backend == "postgresql":
                env["KAVACH_DATABASE_URL"] = _create_database(name)
            try:
                with (
                    serve_fake_github_actions(_fake()) as github,
                    serve_oidc_issuer() as issuer,
                ):
                    openid = revision >= OPENID_FROM
                    if openid:
                        env["KAVACH_OIDC_PROVIDERS"] = _provider_settings(issuer)
                    references = revision >= REFERENCES_FROM
                    if references:  # the webhook's receiver is on this machine
                        env["KAVACH_SYNC_ALLOW_PRIVATE_TARGETS"] = "true"
                    with old_server(src, env) as url:
                        manifests[backend] = fill(
                            url,
                            src,
                            env,
                            github,
                            issuer if openid else None,
                            references=references,
                        )
                if backend == "postgresql":
                    sql = dump_postgresql(env["KAVACH_DATABASE_URL"])
                else:
                    sql = dump_sqlite(data_dir / "kavach.db")
            finally:
                if backend == "postgresql":
                    _drop_database(name)
            if _revision(sql) != revision:
                raise RuntimeError(f"{commit} left revision {_revision(sql)}, not {revision}")
            (out / f"{backend}.sql").write_text(sql)
    manifest = {"commit": commit, "revision": revision, **manifests}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def _fake() -> FakeActionsState:
    state = FakeActionsState()
    state.add_repo(OWNER, REPO)
    return state


def main() -> None:
    """Regenerate the fixtures of the revisions given (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", help=f"any of {', '.join(RELEASES)}")
    revisions = parser.parse_args().revisions or list(RELEASES)
    unknown = sorted(set(revisions) - set(RELEASES))
    if unknown:
        parser.error(f"no release at revision {', '.join(unknown)}")
    for revision in revisions:
        make(revision, RELEASES[revision])
        print(f"tests/fixtures/upgrade/r{revision}/ written from {RELEASES[revision]}")


if __name__ == "__main__":
    main()
