"""A CI job runs `kavach run` with no login and no KAVACH_TOKEN: its OIDC token signs it in.

The real server process fetches the test issuer's keys; the real CLI asks the fake GitHub
Actions endpoint for the job's token, or reads a projected token file. The server's side
of every case runs on both databases in tests/integration/test_workload_identity.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Cli, KavachServer, clean_environ, run_kavach
from tests.fakes.actions_id_token import serve_actions_id_tokens
from tests.fakes.oidc_issuer import serve_oidc_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]

SHOW = "import os; print(os.environ['DATABASE_URL'], 'KAVACH_OIDC_TOKEN' in os.environ)"
DB_URL = "postgres://app:s3cret@db.internal/app"


def _call(server: KavachServer, token: str, path: str, body: dict[str, Any]) -> Any:
    answer = httpx.post(
        f"{server.url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


def test_kavach_run_in_a_ci_job_signs_in_with_the_jobs_oidc_token(
    server: KavachServer, cli: Cli, tmp_path: Path
) -> None:
    login = cli.start_login(server.url)
    server.approve(login.code, "alice")
    assert login.wait().code == 0
    # Made through the API (a process per command would be most of this test's time).
    alice, _refresh = cli.tokens(server.url)
    org = _call(server, alice, "/organizations/", {"name": "acme"})
    group = _call(server, alice, f"/organizations/{org['id']}/secret-groups", {"name": "web"})
    env = _call(server, alice, f"/secret-groups/{group['id']}/environments", {"name": "prod"})
    first = {"message": "first", "set": {"DATABASE_URL": DB_URL}}
    _call(server, alice, f"/environments/{env['id']}/secrets/versions", first)

    with serve_oidc_issuer() as issuer, serve_actions_id_tokens(issuer) as actions:
        made = cli.run(
            *("trust", "create", "deploy", "--issuer", issuer.url, "-c", "sub=repo:acme/*"),
            *("--org", "acme", "--group", "web", "--env", "prod"),
            server=server.url,
        )
        assert made.code == 0, made
        job_home = tmp_path / "job" / ".kavach"
        job = clean_environ(
            KAVACH_SERVER=server.url,
            KAVACH_HOME=str(job_home),
            KAVACH_CREDENTIAL_STORE="file",
            KAVACH_ORG="acme",
            KAVACH_GROUP="web",
            KAVACH_ENV="prod",
        )
        ran = run_kavach(["run", "--", sys.executable, "-c", SHOW], {**job, **actions.environ()})
        assert (ran.code, ran.stdout) == (0, f"{DB_URL} False\n"), ran
        assert actions.audiences == [server.url]
        assert not (job_home / "credentials.json").exists()

        projected = tmp_path / "token"
        projected.write_text(issuer.mint(issuer.github_claims(aud=server.url)))
        pod = {**job, "KAVACH_OIDC_TOKEN_FILE": str(projected)}
        ran = run_kavach(["run", "--", sys.executable, "-c", SHOW], pod)
        assert (ran.code, ran.stdout) == (0, f"{DB_URL} False\n"), ran

        projected.write_text(issuer.mint(issuer.github_claims(aud=server.url, sub="repo:x/y")))
        refused = run_kavach(["run", "--", sys.executable, "-c", SHOW], pod)
        assert refused.code == 3, refused
        assert "refused the workload's OIDC token" in refused.stderr
        assert refused.stdout == ""
