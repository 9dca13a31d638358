"""`kavach audit …`: read an organization's, group's or environment's audit trail; verify it."""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kavach.cli import render
from kavach.cli.app import App, get_app
from kavach.cli.context import resolve_env, resolve_group, resolve_org
from kavach.cli.errors import CliError, ExitCode
from kavach.cli.options import JsonFlag, OrgOption, command_group
from kavach.cli.resources import (
    PAGE_LIMIT,
    Object,
    Resource,
    expect_object,
    load_env,
    load_group,
    load_org,
    page,
)
from kavach.cli.server_extra import require_server

if TYPE_CHECKING:
    from kavach.server.audit.chain import ChainReport

app = command_group(
    help="Read and verify the audit trail (owners and admins of what you name).",
    no_args_is_help=True,
)

COLUMNS = [
    ("id", "ID"),
    ("occurred_at", "When"),
    ("actor", "Actor"),
    ("action", "Action"),
    ("resource", "Resource"),
    ("outcome", "Outcome"),
    ("chain_mark", "Chain"),
    ("details", "Details"),
]
CHAIN_COLUMNS = [
    ("chain", "Chain"),
    ("events", "Events"),
    ("legacy_events", "Before chaining"),
    ("head_seq", "Last #"),
    ("status", "Status"),
]
SCOPE_PARAMS = {
    "organization": "organization_id",
    "secret_group": "secret_group_id",
    "environment": "environment_id",
}

GroupOption = Annotated[
    str | None,
    typer.Option(
        "--group", help="A secret group: its events and its environments' (default: none)."
    ),
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="An environment, in --group or the active group (default: none)."),
]
LimitOption = Annotated[
    int,
    typer.Option("--limit", "-n", min=1, max=PAGE_LIMIT, help="How many events (newest first)."),
]
CursorOption = Annotated[
    str | None,
    typer.Option("--cursor", metavar="CURSOR", help="Show the page after this cursor (paging)."),
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Only events by this login (any login it had) or token name."),
]
ActionOption = Annotated[
    str | None,
    typer.Option(
        "--action", help="Only this action (secret.read), or those starting so (secret.)."
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", metavar="WHEN", help="Only events at or after WHEN (ISO 8601, UTC)."),
]
BeforeOption = Annotated[
    str | None,
    typer.Option("--before", metavar="WHEN", help="Only events before WHEN (ISO 8601, UTC)."),
]
LocalFlag = Annotated[
    bool,
    typer.Option(
        "--local",
        help="On the server's machine: check every chain straight from its database, using "
        "its KAVACH_* settings and keys (includes logins and other server-wide events).",
    ),
]


class ChainBroken(CliError):
    """A verified chain does not hold: an event was changed, removed or reordered."""

    exit_code = ExitCode.SERVER

    def __init__(self, message: str) -> None:
        super().__init__(message, code="audit_chain_broken")


def _scope(cli: App, org: str | None, group: str | None, env: str | None) -> Resource:
    """Return what the most specific of --env, --group, --org (or the active org) names."""
    active = cli.context
    if env is not None:
        return load_env(cli.client, resolve_env(active, org, group, env))
    if group is not None:
        return load_group(cli.client, resolve_group(active, org, group))
    return load_org(cli.client, resolve_org(active, org))


def _actor(event: Object) -> str:
    kind, label = event.get("actor_type"), event.get("actor_label")
    if not label:
        return str(kind or "-")
    return str(label) if kind == "user" else f"{label} ({kind})"


def _chain_mark(event: Object) -> str | None:
    """Show an event's place in its chain: #seq, before chaining, or NOT CHAINED (altered)."""
    status = event.get("chain_status")
    if status == "chained":
        return f"#{event.get('seq')}"
    if status == "legacy":
        return "before chaining"
    return "NOT CHAINED" if status == "unchained" else None


def _row(event: Object) -> Object:
    parts = (event.get("resource_type"), event.get("resource_id"))
    resource = " ".join(str(part) for part in parts if part)
    details = event.get("details")
    return {
        **event,
        "occurred_at": render.when(event.get("occurred_at")),
        "actor": _actor(event),
        "resource": resource,
        "chain_mark": _chain_mark(event),
        "details": jsonlib.dumps(details, sort_keys=True, ensure_ascii=False) if details else None,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    since: SinceOption = None,
    before: BeforeOption = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    json: JsonFlag = False,
) -> None:
    """List audit events, newest first: of --env, else --group, else the organization."""
    cli = get_app(ctx, json=json)
    target = _scope(cli, org, group, env)
    params: dict[str, Any] = {SCOPE_PARAMS[target.kind]: target.id, "limit": limit}
    # The server checks each filter and says in words what it refuses.
    wanted = {"actor": actor, "action": action, "since": since, "before": before}
    params.update({name: value for name, value in wanted.items() if value is not None})
    events, following = page(cli.client, "/audit", params, cursor=cursor)
    if cli.json:
        render.print_json(render.listing(events, following))
        return
    render.table(
        cli,
        [_row(event) for event in events],
        COLUMNS,
        title=f"Audit events of {target.label}",
        empty=f"No audit events for {target.label}.",
    )
    if following is not None:
        render.note(cli, f"Older events: run the same command with --cursor {following}.")


def _broken_line(where: str, broken: Object) -> str:
    return f"the audit trail of {where} is broken: {broken.get('message')} ({broken.get('reason')})"


@app.command()
def verify(
    ctx: typer.Context,
    org: OrgOption = None,
    local: LocalFlag = False,
    json: JsonFlag = False,
) -> None:
    """Recompute an organization's hash chain; exit 0 if intact, else 2 naming the first break."""
    cli = get_app(ctx, json=json)
    if local:
        _verify_local(cli)
        return
    target = load_org(cli.client, resolve_org(cli.context, org))
    report = expect_object(cli.client.get("/audit/verify", params={"organization_id": target.id}))
    broken = report.get("broken")
    if cli.json:
        render.print_json(report)
    elif not isinstance(broken, dict):
        legacy = report.get("legacy_events") or 0
        count = report.get("events")
        line = f"The audit trail of {target.label} is intact: {count} events verified"
        if report.get("head_seq") is not None:
            line += f", the last is #{report.get('head_seq')} ({report.get('head_hash')})"
        cli.out.print(line + ".", markup=False, soft_wrap=True)
        if legacy:
            render.note(cli, f"{legacy} earlier events were recorded before chaining; not covered.")
    if isinstance(broken, dict):
        raise ChainBroken(_broken_line(target.label, broken))
    if report.get("intact") is not True:
        raise ChainBroken(f"the server did not report the audit trail of {target.label} intact")


def _chain_data(report: ChainReport) -> Object:
    broken = report.broken
    return {
        "chain": report.chain,
        "intact": report.intact,
        "events": report.events,
        "legacy_events": report.legacy,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "broken": None
        if broken is None
        else {
            "seq": broken.seq,
            "event_id": broken.event_id,
            "reason": broken.reason,
            "message": broken.message,
        },
    }


def _verify_local(cli: App) -> None:
    require_server("kavach audit verify --local")
    from kavach.server.audit.offline import verify_all
    from kavach.server.errors import KavachError

    try:
        reports = [_chain_data(report) for report in verify_all()]
    except KavachError as error:
        raise CliError(error.message) from None
    render.output(
        cli,
        reports,
        lambda: render.table(
            cli,
            [{**r, "status": "intact" if r["intact"] else "BROKEN"} for r in reports],
            CHAIN_COLUMNS,
            title="Audit chains in the server's database",
        ),
    )
    broken = [r for r in reports if not r["intact"]]
    if broken:
        lines = "; ".join(_broken_line(f"chain {r['chain']}", r["broken"]) for r in broken)
        raise ChainBroken(lines)
