"""`kavach provider list/show/delete/test`: an environment's configured sync targets."""

from __future__ import annotations

from typing import Annotated

import typer

from kavach.cli import actions, providers_api, render
from kavach.cli.app import get_app
from kavach.cli.errors import ApiError
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, YesFlag, command_group
from kavach.cli.resources import expect_object, list_all
from kavach.cli.target import resolve_target

app = command_group()

ProviderArgument = Annotated[
    str,
    typer.Argument(help="github, gcp or azure.", metavar="PROVIDER", show_default=False),
]
COLUMNS = [
    ("provider", "Provider"),
    ("destination", "Syncs to"),
    ("credential_fields", "Credentials (never shown)"),
    ("updated_at", "Updated"),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the environment's providers and where each syncs to."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    rows = list_all(cli.client, providers_api.collection(target))
    shown = [
        {**row, "destination": providers_api.destination(row)}
        for row in actions.human_rows(rows, "updated_at")
    ]
    render.output(
        cli,
        render.listing(rows),
        lambda: render.table(
            cli,
            shown,
            COLUMNS,
            title=f"Providers of {target.label}",
            empty=(
                f"No providers for {target.label}; add one with "
                "`kavach provider configure github|gcp|azure`."
            ),
        ),
    )


@app.command()
def show(
    ctx: typer.Context,
    provider: ProviderArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show one provider's settings (its credentials are never shown)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    try:
        data = expect_object(cli.client.get(providers_api.path(target, provider)))
    except ApiError as exc:
        raise providers_api.not_configured_hint(exc, provider) from exc
    title = f"{provider} for {target.label}"
    render.output(cli, data, lambda: providers_api.show(cli, data, title=title))


@app.command()
def delete(
    ctx: typer.Context,
    provider: ProviderArgument,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Remove a provider and its stored credentials (what it synced stays on the target)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    actions.confirm(cli, f"remove the {provider} provider of {target.label}", yes=yes)
    try:
        data = cli.client.delete(providers_api.path(target, provider))
    except ApiError as exc:
        raise providers_api.not_configured_hint(exc, provider) from exc
    line = (
        f"Removed the {provider} provider of {target.label}; "
        "secrets it synced are still on the target."
    )
    actions.say(cli, data, line)


@app.command("test")
def check(
    ctx: typer.Context,
    provider: ProviderArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Check the provider's credentials and target without writing anything (exit 4 if bad)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    try:
        data = expect_object(cli.client.post(f"{providers_api.path(target, provider)}/test"))
    except ApiError as exc:
        raise providers_api.not_configured_hint(exc, provider) from exc
    actions.say(cli, data, f"{provider} works: Kavach can reach {data.get('target')}.")
