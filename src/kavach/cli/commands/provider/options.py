"""Options and helpers the `provider configure` and `provider update` commands share.

Options that `configure` requires are declared twice: `Owner` (required) for `configure`,
`OwnerChange` (optional) for `update`, which sends only what was given.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli.app import App, get_app
from kavach.cli.errors import CliError
from kavach.cli.resources import Object
from kavach.cli.sensitive import Secret

TOKEN = Secret("--token", "GitHub token")
CLIENT_SECRET = Secret("--client-secret", "Azure client secret")
# Config fields that decide where the stored credentials are sent (the server asks for the
# credentials again when one changes), with the options that give those credentials.
BOUND = {
    "github": ({"api_url"}, "--token-stdin"),
    "gcp": ({"api_endpoint", "project_id"}, "--key-file"),
    "azure": (
        {"vault_url", "authority_host"},
        "--tenant-id, --client-id and --client-secret-stdin",
    ),
}
# Stray arguments are collected (not refused by Click, which would repeat them in its error)
# and refused by no_stray() without echoing them: one may be a credential typed without its
# option.
EXTRA = {"allow_extra_args": True}
# --org, --group and --env: which environment's provider a command works on.
TargetNames = tuple[str | None, str | None, str | None]


def _opt(name: str, help: str, metavar: str | None = None) -> Any:
    return typer.Option(name, help=help, metavar=metavar, show_default=False)


# GitHub
OWNER = "The repository's owner (user or organization)."
REPOSITORY = "The repository's name."
Owner = Annotated[str, _opt("--owner", OWNER)]
OwnerChange = Annotated[str | None, _opt("--owner", OWNER)]
Repository = Annotated[str, _opt("--repository", REPOSITORY)]
RepositoryChange = Annotated[str | None, _opt("--repository", REPOSITORY)]
Environment = Annotated[
    str | None,
    _opt("--environment", "A deployment environment of the repository (default: none)."),
]
ApiUrl = Annotated[
    str | None,
    _opt(
        "--api-url", "GitHub Enterprise Server's API, e.g. https://ghe.example.com/api/v3.", "URL"
    ),
]
Token = Annotated[str | None, _opt("--token", "The token (prefer --token-stdin).", "TOKEN")]
TokenStdin = Annotated[
    bool, _opt("--token-stdin", "Read the token from stdin (on a terminal: asked, hidden).")
]
# GCP
KeyFile = Annotated[
    str, _opt("--key-file", "The service account's JSON key file (`-`: stdin).", "FILE")
]
KeyFileChange = Annotated[str | None, _opt("--key-file", "A new key file (`-`: stdin).", "FILE")]
ProjectId = Annotated[
    str | None, _opt("--project-id", "The project's id or number (default: the key file's).")
]
ProjectIdChange = Annotated[str | None, _opt("--project-id", "The project's id or number.")]
Location = Annotated[
    str | None, _opt("--location", "A location for regional secrets (default: global ones).")
]
GcpPrefix = Annotated[str | None, _opt("--prefix", "Put this before every secret's name.")]
Labels = Annotated[
    list[str] | None,
    _opt("--label", "A label for the secrets Kavach creates; repeat for more.", "KEY=VALUE"),
]
LabelsChange = Annotated[
    list[str] | None,
    _opt("--label", "Replace the labels with these; repeat for more.", "KEY=VALUE"),
]
DISABLE = "Disable the older versions after each write."
DisableOlder = Annotated[bool, _opt("--disable-older-versions", DISABLE)]
DisableOlderChange = Annotated[
    bool | None, _opt("--disable-older-versions/--keep-older-versions", DISABLE)
]
ApiEndpoint = Annotated[
    str | None, _opt("--api-endpoint", "Another Secret Manager endpoint (host or URL).")
]
# Azure
TENANT = "The service principal's tenant (directory) id."
CLIENT = "The service principal's application (client) id."
VAULT = "The vault's URL, e.g. https://my-vault.vault.azure.net."
TenantId = Annotated[str, _opt("--tenant-id", TENANT)]
TenantIdChange = Annotated[str | None, _opt("--tenant-id", TENANT)]
ClientId = Annotated[str, _opt("--client-id", CLIENT)]
ClientIdChange = Annotated[str | None, _opt("--client-id", CLIENT)]
VaultUrl = Annotated[str, _opt("--vault-url", VAULT, "URL")]
VaultUrlChange = Annotated[str | None, _opt("--vault-url", VAULT, "URL")]
AzurePrefix = Annotated[
    str | None, _opt("--prefix", "Put this before every secret's name (letters, digits, -).")
]
AuthorityHost = Annotated[
    str | None,
    _opt("--authority-host", "Another cloud's Entra authority (login.microsoftonline.us).", "URL"),
]
ClientSecret = Annotated[
    str | None, _opt("--client-secret", "The client secret (prefer --client-secret-stdin).", "S")
]
ClientSecretStdin = Annotated[
    bool,
    _opt("--client-secret-stdin", "Read the client secret from stdin (on a terminal: asked)."),
]


def start(ctx: typer.Context, json: bool) -> App:
    """Return the App for a command, after refusing the arguments it does not take."""
    cli = get_app(ctx, json=json)
    no_stray(ctx.args)
    return cli


def no_stray(stray: list[str]) -> None:
    """Refuse arguments a command does not take, without repeating them."""
    if stray:
        raise CliError(
            f"unexpected argument(s) ({len(stray)}, not shown: one may be a credential); "
            "options take the form --name VALUE, credentials come in with --…-stdin"
        )


def labels(items: list[str] | None) -> dict[str, str] | None:
    """Return `--label KEY=VALUE` options as a mapping (None when none was given)."""
    if items is None:
        return None
    found: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CliError(f"--label {item!r} is not KEY=VALUE")
        found[key] = value
    return found


def given(**fields: Any) -> Object:
    """Return the fields that were given (not None): what a request sends."""
    return {key: value for key, value in fields.items() if value is not None}


def github_config(
    owner: str | None, repository: str | None, environment: str | None, api_url: str | None
) -> Object:
    """Return the GitHub settings that were given."""
    return given(owner=owner, repository=repository, environment=environment, api_url=api_url)


def gcp_config(
    project_id: str | None,
    location: str | None,
    prefix: str | None,
    labels: dict[str, str] | None,
    disable_older_versions: bool | None,
    api_endpoint: str | None,
) -> Object:
    """Return the GCP settings that were given."""
    return given(
        project_id=project_id,
        location=location,
        prefix=prefix,
        labels=labels,
        disable_older_versions=disable_older_versions,
        api_endpoint=api_endpoint,
    )


def azure_config(vault_url: str | None, prefix: str | None, authority_host: str | None) -> Object:
    """Return the Azure settings that were given."""
    return given(vault_url=vault_url, prefix=prefix, authority_host=authority_host)


def azure_credentials(
    tenant_id: str | None, client_id: str | None, client_secret: str | None
) -> Object:
    """Return the Azure service principal's credentials that were given."""
    return given(tenant_id=tenant_id, client_id=client_id, client_secret=client_secret)
