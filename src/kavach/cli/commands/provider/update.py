"""`kavach provider update github|gcp|azure`: change only the settings and credentials given.

A true partial update: the request carries just the options given. Changing where the
stored credentials go (GitHub's API URL, GCP's project or endpoint, Azure's vault or
authority) needs those credentials again in the same update.
"""

from __future__ import annotations

import typer

from kavach.cli import actions, providers_api
from kavach.cli.app import App
from kavach.cli.commands.provider import options as opts
from kavach.cli.errors import ApiError, CliError
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, command_group
from kavach.cli.resources import Object, expect_object
from kavach.cli.sensitive import read_key_file, read_secret
from kavach.cli.target import resolve_target

app = command_group(
    help="Change a provider's settings or credentials: only the options given are sent.",
    no_args_is_help=True,
)


def _nothing_given(config: Object, credentials: Object) -> None:
    """Fail (before any request) when an update was given nothing to change."""
    if not config and not credentials:
        raise CliError("nothing to update: give at least one option (`--help` lists them)")


def _update(
    cli: App, names: opts.TargetNames, provider: str, config: Object, credentials: Object
) -> None:
    _nothing_given(config, credentials)
    target = resolve_target(cli, *names)
    body: Object = {}
    if config:
        body["config"] = config
    if credentials:
        body["credentials"] = credentials
    try:
        updated = expect_object(cli.client.patch(providers_api.path(target, provider), body))
    except ApiError as exc:
        bound, flags = opts.BOUND.get(provider, (set(), ""))
        moved = sorted(bound & config.keys())
        if exc.status == 422 and moved and not credentials:
            hint = (
                f"{exc.message} (changing {', '.join(moved)} needs the credentials again: "
                f"add {flags})"
            )
            raise ApiError(exc.status, exc.error_code, hint, exc.data) from exc
        raise providers_api.not_configured_hint(exc, provider) from exc
    changed = ", ".join([*config, *credentials])
    actions.say(cli, updated, f"Updated {provider} for {target.label}: {changed}.")


@app.command("github", context_settings=opts.EXTRA)
def github(
    ctx: typer.Context,
    owner: opts.OwnerChange = None,
    repository: opts.RepositoryChange = None,
    environment: opts.Environment = None,
    api_url: opts.ApiUrl = None,
    token: opts.Token = None,
    token_stdin: opts.TokenStdin = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Change the GitHub target or token; only the options given are sent."""
    cli = opts.start(ctx, json)
    secret = read_secret(cli, opts.TOKEN, token, token_stdin, required=False)
    config = opts.github_config(owner, repository, environment, api_url)
    _update(cli, (org, group, env), "github", config, opts.given(token=secret))


@app.command("gcp", context_settings=opts.EXTRA)
def gcp(
    ctx: typer.Context,
    key_file: opts.KeyFileChange = None,
    project_id: opts.ProjectIdChange = None,
    location: opts.Location = None,
    prefix: opts.GcpPrefix = None,
    label: opts.LabelsChange = None,
    disable_older_versions: opts.DisableOlderChange = None,
    api_endpoint: opts.ApiEndpoint = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Change the GCP target or key file; only the options given are sent."""
    cli = opts.start(ctx, json)
    labels = opts.labels(label)
    config = opts.gcp_config(
        project_id, location, prefix, labels, disable_older_versions, api_endpoint
    )
    credentials = read_key_file(cli, key_file) if key_file is not None else {}
    _update(cli, (org, group, env), "gcp", config, credentials)


@app.command("azure", context_settings=opts.EXTRA)
def azure(
    ctx: typer.Context,
    tenant_id: opts.TenantIdChange = None,
    client_id: opts.ClientIdChange = None,
    vault_url: opts.VaultUrlChange = None,
    prefix: opts.AzurePrefix = None,
    authority_host: opts.AuthorityHost = None,
    client_secret: opts.ClientSecret = None,
    client_secret_stdin: opts.ClientSecretStdin = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Change the vault or the service principal; only the options given are sent."""
    cli = opts.start(ctx, json)
    secret = read_secret(
        cli, opts.CLIENT_SECRET, client_secret, client_secret_stdin, required=False
    )
    config = opts.azure_config(vault_url, prefix, authority_host)
    credentials = opts.azure_credentials(tenant_id, client_id, secret)
    _update(cli, (org, group, env), "azure", config, credentials)
