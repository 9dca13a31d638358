"""`kavach provider …`: exact requests, partial updates, and credentials that never leak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Invoke, table_rows, use_context
from .fake_api import FakeApi
from .fake_iam import Node

pytestmark = pytest.mark.usefixtures("logged_in")

TOKEN = "ghp_Sup3rSecretToken0123456789abcdefABCD"
CLIENT_SECRET = "azure~client~Secret~0123456789"
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----\n"
)
KEY = {
    "type": "service_account",
    "project_id": "kavach-test",
    "private_key_id": "abc123",
    "private_key": PRIVATE_KEY,
    "client_email": "sync@kavach-test.iam.gserviceaccount.com",
    "client_id": "1234567890",
    "token_uri": "https://oauth2.googleapis.com/token",
}
GITHUB = ["provider", "configure", "github", "--owner", "octo", "--repository", "app"]
AZURE = [
    *("provider", "configure", "azure", "--tenant-id", "tenant-1", "--client-id", "client-1"),
    *("--vault-url", "https://vault.example.net"),
]


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    """acme/web/prod, owned by alice and active."""
    use_context(home, "acme", "web", "prod")
    return api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(KEY), encoding="utf-8")
    path.chmod(0o600)
    return path


def writes(api: FakeApi) -> list[tuple[str, str, Any]]:
    """Return (method, path, body) of every request that is not a GET."""
    return [(m, p, b) for m, p, _, b in api.requests() if m != "GET"]


def home_files(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file())


def assert_hidden(result: Any, home: Path, *secrets: str) -> None:
    """Insist no secret reached stdout, stderr or any file under KAVACH_HOME."""
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
        assert secret.encode() not in home_files(home)


# ---- configure ---------------------------------------------------------------------------


def test_configure_github_with_the_token_on_stdin(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    args = ["--verbose", *GITHUB, "--environment", "production", "--token-stdin"]
    result = invoke(args, input=TOKEN + "\n")

    assert result.exit_code == 0, result.output
    assert writes(api) == [
        (
            "POST",
            f"/environments/{prod.id}/providers/",
            {
                "provider": "github",
                "config": {"owner": "octo", "repository": "app", "environment": "production"},
                "credentials": {"token": TOKEN},  # the newline echo added is not part of it
            },
        )
    ]
    assert result.stdout == (
        "Configured github (GitHub Actions) for environment acme/web/prod: "
        "octo/app, environment production.\n"
    )
    assert "Check it with `kavach provider test github`." in result.stderr
    assert "Warning" not in result.stderr
    assert_hidden(result, home, TOKEN)


def test_configure_github_asks_for_the_token_on_a_terminal(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    result = invoke(
        [*GITHUB, "--api-url", "https://ghe.example.com/api/v3"], input=TOKEN + "\n", terminal=True
    )

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("GitHub token:")  # the hidden prompt is on stderr
    assert writes(api)[0][2] == {
        "provider": "github",
        "config": {
            "owner": "octo",
            "repository": "app",
            "api_url": "https://ghe.example.com/api/v3",
        },
        "credentials": {"token": TOKEN},
    }
    assert_hidden(result, home, TOKEN)


def test_token_stdin_on_a_terminal_is_asked_hidden(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    result = invoke([*GITHUB, "--token-stdin"], input=TOKEN + "\n", terminal=True)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("GitHub token:")
    assert writes(api)[0][2]["credentials"] == {"token": TOKEN}
    assert_hidden(result, home, TOKEN)


def test_configure_github_without_a_token_or_a_terminal_fails_before_any_request(
    api: FakeApi, invoke: Invoke, prod: Node
) -> None:
    result = invoke(GITHUB)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the GitHub token is needed: pipe it in with --token-stdin "
        "(stdin is not a terminal to ask on)\n"
    )
    assert api.requests() == []


def test_a_token_argument_works_with_a_warning_that_never_shows_it(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    result = invoke([*GITHUB, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert writes(api)[0][2]["credentials"] == {"token": TOKEN}
    assert result.stderr.startswith(
        "Warning: a GitHub token given as an argument can be seen by other local users and "
        "stays in your shell history; prefer --token-stdin\n"
    )
    assert_hidden(result, home, TOKEN)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--token", TOKEN, "--token-stdin"], TOKEN, "give --token or --token-stdin, not both"),
        (["--token-stdin"], "\n", "--token-stdin: stdin held no GitHub token"),
        (["--token", " "], None, "--token is empty"),
    ],
)
def test_token_mistakes_are_refused_without_echoing_it(
    api: FakeApi, invoke: Invoke, prod: Node, args: list[str], stdin: str | None, message: str
) -> None:
    result = invoke([*GITHUB, *args], input=stdin)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert TOKEN not in result.output
    assert api.requests() == []


def test_configure_gcp_from_a_key_file(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node, key_file: Path
) -> None:
    result = invoke(
        [
            *("provider", "configure", "gcp", "--key-file", str(key_file)),
            *("--location", "europe-west1", "--prefix", "web_"),
            *("--label", "team=payments", "--label", "tier=prod", "--disable-older-versions"),
        ]
    )

    assert result.exit_code == 0, result.output
    assert writes(api) == [
        (
            "POST",
            f"/environments/{prod.id}/providers/",
            {
                "provider": "gcp",
                "config": {
                    "project_id": "kavach-test",  # from the key file
                    "location": "europe-west1",
                    "prefix": "web_",
                    "labels": {"team": "payments", "tier": "prod"},
                    "disable_older_versions": True,
                },
                "credentials": KEY,
            },
        )
    ]
    assert "project kavach-test, location europe-west1, prefix web_" in result.stdout
    assert result.stderr == "Check it with `kavach provider test gcp`.\n"
    assert_hidden(result, home, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw")


def test_configure_gcp_reads_the_key_file_from_stdin(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    args = ["provider", "configure", "gcp", "--key-file", "-", "--project-id", "other-project"]
    result = invoke(args, input=json.dumps(KEY))
    assert result.exit_code == 0, result.output
    body = writes(api)[0][2]
    assert body["config"] == {"project_id": "other-project"}
    assert body["credentials"] == KEY
    assert_hidden(result, home, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json " + PRIVATE_KEY, "is not JSON (a service-account key file)"),
        (json.dumps([PRIVATE_KEY]), "is not a JSON object (a service-account key file)"),
        (json.dumps({**KEY, "type": "authorized_user"}), "is not a service-account key file"),
    ],
)
def test_a_bad_key_file_is_refused_without_quoting_it(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "key.json"
    path.write_text(content, encoding="utf-8")
    path.chmod(0o600)
    result = invoke(["provider", "configure", "gcp", "--key-file", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path} {message}")
    assert "MIIEvQ" not in result.output
    assert api.requests() == []


def test_a_key_file_others_can_read_gets_a_warning(
    api: FakeApi, invoke: Invoke, prod: Node, key_file: Path
) -> None:
    key_file.chmod(0o644)
    result = invoke(["provider", "configure", "gcp", "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    assert f"Warning: {key_file} can be read by other users (chmod 600 {key_file})" in (
        result.stderr
    )


def test_configure_azure_with_the_client_secret_on_stdin(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    result = invoke([*AZURE, "--prefix", "web-", "--client-secret-stdin"], input=CLIENT_SECRET)

    assert result.exit_code == 0, result.output
    assert writes(api) == [
        (
            "POST",
            f"/environments/{prod.id}/providers/",
            {
                "provider": "azure",
                "config": {"vault_url": "https://vault.example.net", "prefix": "web-"},
                "credentials": {
                    "tenant_id": "tenant-1",
                    "client_id": "client-1",
                    "client_secret": CLIENT_SECRET,
                },
            },
        )
    ]
    assert_hidden(result, home, CLIENT_SECRET)


def test_configuring_twice_points_at_update(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    api.sync.configure(prod, "github", {"owner": "octo", "repository": "app"}, {"token": "t"})
    result = invoke([*GITHUB, "--token-stdin"], input=TOKEN)
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: github is already configured for environment acme/web/prod; change it with "
        "`kavach provider update github` (or delete it first) (already_exists)\n"
    )


def test_an_editor_may_not_configure(api: FakeApi, invoke: Invoke, home: Path) -> None:
    use_context(home, "acme", "web", "prod")
    api.iam.env(api.iam.group(api.iam.org("acme", role="editor"), "web"), "prod")
    result = invoke([*GITHUB, "--token-stdin"], input=TOKEN)
    assert result.exit_code == 3
    assert TOKEN not in result.output


# ---- update ------------------------------------------------------------------------------


@pytest.fixture
def configured(api: FakeApi, prod: Node) -> Node:
    """github, gcp and azure configured on acme/web/prod."""
    api.sync.configure(prod, "github", {"owner": "octo", "repository": "app"}, {"token": "old"})
    api.sync.configure(prod, "gcp", {"project_id": "kavach-test"}, dict(KEY))
    api.sync.configure(
        prod,
        "azure",
        {"vault_url": "https://vault.example.net"},
        {"tenant_id": "t", "client_id": "c", "client_secret": "old"},
    )
    return prod


@pytest.mark.parametrize(
    ("args", "stdin", "body"),
    [
        (["github", "--owner", "octo-org"], None, {"config": {"owner": "octo-org"}}),
        (["github", "--token-stdin"], TOKEN + "\n", {"credentials": {"token": TOKEN}}),
        (
            ["github", "--api-url", "https://ghe.example.com/api/v3", "--token-stdin"],
            TOKEN,
            {
                "config": {"api_url": "https://ghe.example.com/api/v3"},
                "credentials": {"token": TOKEN},
            },
        ),
        (
            ["gcp", "--label", "team=web", "--keep-older-versions"],
            None,
            {"config": {"labels": {"team": "web"}, "disable_older_versions": False}},
        ),
        (["gcp", "--key-file", "-"], json.dumps(KEY), {"credentials": KEY}),
        (["azure", "--prefix", "api-"], None, {"config": {"prefix": "api-"}}),
        (
            ["azure", "--tenant-id", "t2", "--client-secret-stdin"],
            CLIENT_SECRET,
            {"credentials": {"tenant_id": "t2", "client_secret": CLIENT_SECRET}},
        ),
    ],
)
def test_update_sends_only_what_was_given(
    api: FakeApi,
    invoke: Invoke,
    home: Path,
    configured: Node,
    args: list[str],
    stdin: str | None,
    body: dict[str, Any],
) -> None:
    result = invoke(["provider", "update", *args], input=stdin)

    assert result.exit_code == 0, result.output
    assert writes(api) == [("PATCH", f"/environments/{configured.id}/providers/{args[0]}", body)]
    fields = ", ".join([*body.get("config", {}), *body.get("credentials", {})])
    assert result.stdout == f"Updated {args[0]} for environment acme/web/prod: {fields}.\n"
    assert_hidden(result, home, TOKEN, CLIENT_SECRET, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw")


def test_update_keeps_what_was_not_given(api: FakeApi, invoke: Invoke, configured: Node) -> None:
    assert invoke(["provider", "update", "github", "--repository", "web"]).exit_code == 0
    stored = api.sync.providers[configured.id]["github"]
    assert stored.config == {"owner": "octo", "repository": "web"}
    assert stored.credentials == {"token": "old"}


def test_update_with_nothing_sends_nothing(api: FakeApi, invoke: Invoke, configured: Node) -> None:
    result = invoke(["provider", "update", "azure"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nothing to update: give at least one option (`--help` lists them)\n"
    )
    assert api.requests() == []


def test_moving_the_credentials_elsewhere_asks_for_them_again(
    api: FakeApi, invoke: Invoke, configured: Node
) -> None:
    result = invoke(["provider", "update", "azure", "--vault-url", "https://evil.example.net"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: changing vault_url redirects the stored credentials; send the credentials again "
        "in the same update (changing vault_url needs the credentials again: add --tenant-id, "
        "--client-id and --client-secret-stdin) (validation_failed)\n"
    )
    assert api.sync.providers[configured.id]["azure"].config == {
        "vault_url": "https://vault.example.net"
    }


def test_update_of_a_provider_not_configured(api: FakeApi, invoke: Invoke, prod: Node) -> None:
    result = invoke(["provider", "update", "github", "--owner", "x"])
    assert result.exit_code == 4
    assert result.stderr == (
        "Error: provider 'github' is not configured for this environment; configure it with "
        "`kavach provider configure github` (not_found)\n"
    )


# ---- list, show, delete, test --------------------------------------------------------------


def test_list_as_a_table_and_as_json(api: FakeApi, invoke: Invoke, configured: Node) -> None:
    result = invoke(["provider", "list"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert [row[0] for row in rows if row[0]] == ["azure", "gcp", "github"]
    assert "project kavach-test" in result.stdout
    assert api.requests() == [
        ("GET", "/organizations/by-name/acme/secret-groups/web/environments/prod", {}, None),
        ("GET", f"/environments/{configured.id}/providers/", {"limit": "1000"}, None),
    ]
    listed = json.loads(invoke(["provider", "list", "--json"]).stdout)
    assert listed["next"] is None
    assert [p["provider"] for p in listed["items"]] == ["azure", "gcp", "github"]
    assert "old" not in json.dumps(listed) and PRIVATE_KEY not in json.dumps(listed)


def test_list_when_there_are_none(invoke: Invoke, prod: Node) -> None:
    result = invoke(["provider", "list"])
    assert result.exit_code == 0
    assert " ".join(result.stderr.split()) == (
        "No providers for environment acme/web/prod; add one with "
        "`kavach provider configure github|gcp|azure`."
    )


def test_show_names_the_stored_credentials_but_never_shows_them(
    api: FakeApi, invoke: Invoke, configured: Node
) -> None:
    result = invoke(["provider", "show", "github"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:4] == [
        "Provider: github",
        "owner: octo",
        "repository: app",
        "Credentials: stored, never shown (token)",
    ]
    assert api.requests()[-1][:2] == ("GET", f"/environments/{configured.id}/providers/github")
    shown = json.loads(invoke(["provider", "show", "github", "--json"]).stdout)
    assert shown["config"] == {"owner": "octo", "repository": "app"}


def test_show_a_provider_not_configured(invoke: Invoke, prod: Node) -> None:
    result = invoke(["provider", "show", "azure"])
    assert result.exit_code == 4
    assert "configure it with `kavach provider configure azure`" in result.stderr


def test_delete_needs_yes_without_a_terminal(
    api: FakeApi, invoke: Invoke, configured: Node
) -> None:
    refused = invoke(["provider", "delete", "gcp"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: not confirmed: pass --yes to remove the gcp provider of environment "
        "acme/web/prod (stdin is not a terminal)\n"
    )
    assert writes(api) == []

    done = invoke(["provider", "delete", "gcp", "--yes"])
    assert done.exit_code == 0, done.output
    assert writes(api) == [("DELETE", f"/environments/{configured.id}/providers/gcp", None)]
    assert done.stdout == (
        "Removed the gcp provider of environment acme/web/prod; secrets it synced are still "
        "on the target.\n"
    )
    assert "gcp" not in api.sync.providers[configured.id]


@pytest.mark.parametrize(("answer", "code", "deleted"), [("y\n", 0, True), ("n\n", 1, False)])
def test_delete_asks_on_a_terminal(
    api: FakeApi, invoke: Invoke, configured: Node, answer: str, code: int, deleted: bool
) -> None:
    result = invoke(["provider", "delete", "azure"], input=answer, terminal=True)
    assert result.exit_code == code
    assert "Remove the azure provider of environment acme/web/prod? [y/N]: " in result.stderr
    assert ("azure" not in api.sync.providers[configured.id]) is deleted


def test_test_reports_the_target_or_the_failure(
    api: FakeApi, invoke: Invoke, configured: Node
) -> None:
    good = invoke(["provider", "test", "github"])
    assert good.exit_code == 0, good.output
    assert good.stdout == "github works: Kavach can reach github:octo/app.\n"
    assert writes(api) == [("POST", f"/environments/{configured.id}/providers/github/test", None)]

    api.sync.test_error = "GitHub refused the token (401 Bad credentials)"
    bad = invoke(["provider", "test", "github"])
    assert bad.exit_code == 4
    assert bad.stderr == "Error: GitHub refused the token (401 Bad credentials) (provider_error)\n"
    as_json = invoke(["provider", "test", "gcp", "--json"])
    assert as_json.exit_code == 4


@pytest.mark.parametrize("command", ["configure", "update"])
def test_a_stray_argument_is_refused_without_echoing_it(
    api: FakeApi, invoke: Invoke, prod: Node, command: str
) -> None:
    """A token typed without its option must not come back in the error."""
    result = invoke(["provider", command, "github", "--owner", "octo", "--repository", "a", TOKEN])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: unexpected argument(s) (1, not shown: one may be a credential); options take "
        "the form --name VALUE, credentials come in with --…-stdin\n"
    )
    assert TOKEN not in result.output
    assert api.requests() == []


def test_the_client_secret_is_asked_hidden_on_a_terminal(
    api: FakeApi, invoke: Invoke, home: Path, prod: Node
) -> None:
    result = invoke(AZURE, input=CLIENT_SECRET + "\n", terminal=True)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Azure client secret:")
    assert writes(api)[0][2]["credentials"]["client_secret"] == CLIENT_SECRET
    assert_hidden(result, home, CLIENT_SECRET)
