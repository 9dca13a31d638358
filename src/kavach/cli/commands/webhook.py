"""`kavach webhook …`: endpoints that receive an organization's or an environment's events."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import typer

from kavach.cli import actions, render
from kavach.cli.app import App, get_app
from kavach.cli.context import resolve_env, resolve_org
from kavach.cli.errors import CliError
from kavach.cli.options import JsonFlag, OrgOption, YesFlag, command_group
from kavach.cli.resources import (
    PAGE_LIMIT,
    Object,
    Resource,
    expect_object,
    list_all,
    load_env,
    load_org,
    page,
    segment,
)

HELP = (
    "Manage webhooks: HTTPS endpoints that receive signed JSON events (commits, rollbacks, "
    "syncs, members granted or revoked) of an organization (--org or the active one: "
    "everything in it) or of one environment (--env, in --group)."
)
app = command_group(help=HELP, no_args_is_help=True)

EVENTS = ("secret.commit", "secret.rollback", "secret.sync", "member.grant", "member.revoke")
# What the secret looks like: printed alone on stdout for `$(…)`, so nothing else may pass.
_SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{20,100}")
COLUMNS = [
    ("id", "ID"),
    ("where", "Scope"),
    ("url", "URL"),
    ("format", "Format"),
    ("events", "Events"),
    ("created_at", "Created"),
]
DELIVERY_COLUMNS = [
    ("id", "Delivery"),
    ("event_type", "Event"),
    ("status", "Status"),
    ("attempts", "Attempts"),
    ("response_code", "Answer"),
    ("next_attempt_at", "Next attempt"),
    ("last_error", "Last error"),
    ("created_at", "Queued"),
]

GroupOption = Annotated[
    str | None,
    typer.Option("--group", help="The secret group of --env (default: the active one)."),
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="An environment: only its events (default: the organization's)."),
]
UrlArgument = Annotated[
    str, typer.Argument(help="Where events are POSTed (https://…).", show_default=False)
]
IdArgument = Annotated[str, typer.Argument(help="The webhook's id.", show_default=False)]
EventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        help=f"Only this event type (repeatable): {', '.join(EVENTS)} (default: every type).",
        metavar="TYPE",
        show_default=False,
    ),
]
FormatOption = Annotated[
    Literal["kavach", "slack"],
    typer.Option(
        "--format",
        help='kavach: the event as JSON; slack: {"text": …}, one line for an incoming webhook.',
    ),
]
LimitOption = Annotated[
    int,
    typer.Option(
        "--limit", "-n", min=1, max=PAGE_LIMIT, help="How many deliveries (newest first)."
    ),
]


def _scope(cli: App, org: str | None, group: str | None, env: str | None) -> Resource:
    """Return the environment --env names, else the organization (--org or the active one)."""
    if env is not None:
        return load_env(cli.client, resolve_env(cli.context, org, group, env))
    if group is not None:
        raise CliError("webhooks belong to an organization or an environment: give --env too")
    return load_org(cli.client, resolve_org(cli.context, org))


def _row(hook: Object) -> Object:
    events = hook.get("events")
    return {
        **hook,
        "where": "organization" if hook.get("environment_id") is None else "environment",
        "events": ", ".join(events) if isinstance(events, list) else "all",
        "created_at": render.when(hook.get("created_at")),
    }


@app.command()
def add(
    ctx: typer.Context,
    url: UrlArgument,
    event: EventOption = None,
    format_: FormatOption = "kavach",
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Send events to URL; its signing secret is printed once, on stdout, and never again."""
    cli = get_app(ctx, json=json)
    unknown = sorted(set(event or ()) - set(EVENTS))
    if unknown:
        raise CliError(f"unknown event type {unknown[0]!r}: choose from {', '.join(EVENTS)}")
    target = _scope(cli, org, group, env)
    body: Object = {"url": url, "format": format_}
    if event:
        body["events"] = sorted(set(event))
    created = expect_object(cli.client.post(f"{target.path}/webhooks", body))
    secret = created.get("secret")
    if not isinstance(secret, str) or _SECRET.fullmatch(secret) is None:
        raise CliError("the server made the webhook but sent no valid signing secret; remove it")
    render.note(cli, f"Created webhook {created.get('id')} for {target.label}.")
    render.warn(cli, "copy the signing secret now: it will not be shown again.")
    if cli.json:
        render.print_json(created)
    else:
        typer.echo(secret)  # alone on stdout, for `$(kavach webhook add …)`


@app.command("list")
def list_(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the organization's webhooks (its environments' too), or --env's."""
    cli = get_app(ctx, json=json)
    target = _scope(cli, org, group, env)
    hooks = list_all(cli.client, f"{target.path}/webhooks")
    render.output(
        cli,
        render.listing(hooks),
        lambda: render.table(
            cli,
            [_row(hook) for hook in hooks],
            COLUMNS,
            title=f"Webhooks of {target.label}",
            empty=f"No webhooks for {target.label}.",
        ),
    )


@app.command()
def remove(
    ctx: typer.Context, webhook: IdArgument, yes: YesFlag = False, json: JsonFlag = False
) -> None:
    """Delete a webhook and its delivery log; nothing more is sent to it."""
    cli = get_app(ctx, json=json)
    actions.confirm(cli, f"remove webhook {webhook}", yes=yes)
    removed = expect_object(cli.client.delete(f"/webhooks/{segment(webhook)}"))
    actions.say(cli, removed, f"Removed webhook {webhook} ({removed.get('url')}).")


@app.command("test")
def send_test(ctx: typer.Context, webhook: IdArgument, json: JsonFlag = False) -> None:
    """Send the webhook a `ping` event; see how it went with `kavach webhook deliveries`."""
    cli = get_app(ctx, json=json)
    queued = expect_object(cli.client.post(f"/webhooks/{segment(webhook)}/test", {}))
    actions.say(cli, queued, f"Queued ping {queued.get('id')} to webhook {webhook}.")


@app.command()
def deliveries(
    ctx: typer.Context, webhook: IdArgument, limit: LimitOption = 20, json: JsonFlag = False
) -> None:
    """Show a webhook's latest deliveries: status, attempts, answer, next attempt, last error."""
    cli = get_app(ctx, json=json)
    rows, _following = page(
        cli.client, f"/webhooks/{segment(webhook)}/deliveries", {"limit": limit}
    )
    render.output(
        cli,
        render.listing(rows),
        lambda: render.table(
            cli,
            actions.human_rows(rows, "next_attempt_at", "created_at"),
            DELIVERY_COLUMNS,
            title=f"Deliveries of webhook {webhook}",
            empty=f"No deliveries yet for webhook {webhook}.",
        ),
    )
