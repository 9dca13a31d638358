"""`kavach provider configure github|gcp|azure`: a new sync target and its credentials.

Credentials come from stdin (`--token-stdin`, `--client-secret-stdin`, `--key-file -`), a
hidden prompt on a terminal, or an argument (with a warning); they are never printed, logged
or saved locally.
"""

from __future__ import annotations

import typer

from kavach.cli import actions, providers_api, render
from kavach.cli.app import App
from kavach.cli.commands.provider import options as opts
from kavach.cli.errors import ApiError, CliError
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, command_group
from kavach.cli.resources import Object, expect_object
from kavach.cli.sensitive import read_key_file, read_secret
from kavach.cli.target import resolve_target

app = command_group(
    help="Configure a sync target for the environment (needs admin).", no_args_is_help=True
)


def _configure(
    cli: App, names: opts.TargetNames, provider: str, config: Object, credentials: Object
) -> None:
    target = resolve_target(cli, *names)
    body = {"provider": provider, "config": config, "credentials": credentials}
    try:
        created = expect_object(cli.client.post(providers_api.collection(target), body))
    except ApiError as exc:
        if exc.error_code == "already_exists":
            hint = (
                f"{provider} is already configured for {target.label}; change it with "
                f"`kavach provider update {provider}` (or delete it first)"
            )
            raise ApiError(exc.status, exc.error_code, hint, exc.data) from exc
        raise
    line = (
        f"Configured {provider} ({providers_api.NAMES.get(provider, provider)}) for "
        f"{target.label}: {providers_api.destination(created)}."
    )
    actions.say(cli, created, line)
    if not cli.json:
        render.note(cli, f"Check it with `kavach provider test {provider}`.")


@app.command("github", context_settings=opts.EXTRA)
def github(
    ctx: typer.Context,
    owner: opts.Owner,
    repository: opts.Repository,
    environment: opts.Environment = None,
    api_url: opts.ApiUrl = None,
    token: opts.Token = None,
    token_stdin: opts.TokenStdin = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Sync to GitHub Actions secrets of a repository or of one of its environments."""
    cli = opts.start(ctx, json)
    secret = read_secret(cli, opts.TOKEN, token, token_stdin, required=True)
    config = opts.github_config(owner, repository, environment, api_url)
    _configure(cli, (org, group, env), "github", config, {"token": secret})


@app.command("gcp", context_settings=opts.EXTRA)
def gcp(
    ctx: typer.Context,
    key_file: opts.KeyFile,
    project_id: opts.ProjectId = None,
    location: opts.Location = None,
    prefix: opts.GcpPrefix = None,
    label: opts.Labels = None,
    disable_older_versions: opts.DisableOlder = False,
    api_endpoint: opts.ApiEndpoint = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Sync to GCP Secret Manager with a service account's key file."""
    cli = opts.start(ctx, json)
    labels = opts.labels(label)
    key = read_key_file(cli, key_file)
    project = project_id or key.get("project_id")
    if not isinstance(project, str) or not project:
        raise CliError("the key file names no project: pass --project-id")
    # The flag left off is not sent, like any option not given.
    disable = True if disable_older_versions else None
    config = opts.gcp_config(project, location, prefix, labels, disable, api_endpoint)
    _configure(cli, (org, group, env), "gcp", config, key)


@app.command("azure", context_settings=opts.EXTRA)
def azure(
    ctx: typer.Context,
    tenant_id: opts.TenantId,
    client_id: opts.ClientId,
    vault_url: opts.VaultUrl,
    prefix: opts.AzurePrefix = None,
    authority_host: opts.AuthorityHost = None,
    client_secret: opts.ClientSecret = None,
    client_secret_stdin: opts.ClientSecretStdin = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Sync to Azure Key Vault as a service principal."""
    cli = opts.start(ctx, json)
    secret = read_secret(cli, opts.CLIENT_SECRET, client_secret, client_secret_stdin, required=True)
    config = opts.azure_config(vault_url, prefix, authority_host)
    credentials = opts.azure_credentials(tenant_id, client_id, secret)
    _configure(cli, (org, group, env), "azure", config, credentials)
