"""`kavach secret sync/sync-runs/sync-run`: push a version to a provider, and read past runs.

A sync first asks the server for the plan (a dry run), shows it and asks before writing; the
real run is pinned to the planned version, so a commit landing meanwhile is not synced
unseen. The server answers once every write is done (or given up on after its retries).
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from kavach.cli import actions, providers_api, render, secrets_api, sync_view
from kavach.cli.app import App, get_app
from kavach.cli.errors import ApiError, CliError, ExitCode, NotFound
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    VersionOption,
    YesFlag,
    command_group,
)
from kavach.cli.resources import PAGE_LIMIT, Object, expect_object, page, pages, segment
from kavach.cli.target import Target, resolve_target

app = command_group()
PANEL = "Sync"
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RUN_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{3,35}")
RUNS_MAX = PAGE_LIMIT  # the server's largest page of runs

ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--provider", "-p", help="Where to sync: github, gcp or azure.", metavar="PROVIDER"
    ),
]
StatusFlag = Annotated[
    bool,
    typer.Option(
        "--status",
        help="Say whether each provider's target holds what the environment resolves to now "
        "(out of date after a new version, or a change to a secret it refers to); writes "
        "nothing. Exit 0 when all are up to date, else 1.",
    ),
]
STATUS_COLUMNS = [
    ("provider", "Provider"),
    ("state", "State"),
    ("reason", "Why"),
    ("last", "Last sync"),
]
DryRunFlag = Annotated[
    bool, typer.Option("--dry-run", help="Only show the plan; write nothing (exits 0).")
]
PruneFlag = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Also delete what Kavach synced before and the version no longer holds "
        "(never what others created).",
    ),
]
AdoptFlag = Annotated[
    bool,
    typer.Option(
        "--adopt", help="Take over target secrets of the same name that Kavach did not create."
    ),
]
LimitOption = Annotated[
    int, typer.Option("--limit", "-n", min=1, max=RUNS_MAX, help="How many runs to show.")
]
CursorOption = Annotated[
    str | None,
    typer.Option("--cursor", metavar="CURSOR", help="Show the page after this cursor (paging)."),
]
RunArgument = Annotated[
    str,
    typer.Argument(
        help="The run's id, or its first characters.", metavar="RUN", show_default=False
    ),
]


class SyncIncomplete(CliError):
    """Some secret of a sync failed or was refused; the others are reported above."""

    exit_code = ExitCode.SERVER
    kind = "sync_incomplete"


def _runs_path(target: Target) -> str:
    return f"/environments/{segment(target.id)}/sync-runs"


def _post(cli: App, target: Target, body: Object) -> Object:
    provider = str(body["provider"])
    try:
        return expect_object(cli.client.post(f"{target.path}/sync", body))
    except ApiError as exc:
        if exc.error_code == "sync_in_progress":
            message = (
                f"another sync to the same {provider} target is running, so this one did not "
                "start and wrote nothing; try again when it has ended"
            )
            raise ApiError(exc.status, exc.error_code, message, exc.data) from exc
        raise providers_api.not_configured_hint(exc, provider) from exc


def _plan(cli: App, target: Target, body: Object) -> Object:
    """Ask for the plan (a dry run); a spinner on a terminal, as listing a target takes time."""
    if cli.quiet or not cli.err.is_terminal:
        return _post(cli, target, body)
    with cli.err.status(f"Planning the sync to {body['provider']}…"):
        return _post(cli, target, body)


def _apply(cli: App, target: Target, body: Object, plan: Object) -> Object:
    """Run the sync for real, with a progress indicator while the server works."""
    count = len(sync_view.writes(plan))
    message = f"Syncing {count} secret(s) to {plan.get('target')}…"
    try:
        if cli.quiet or not cli.err.is_terminal:
            render.note(cli, message)
            return _post(cli, target, body)
        with cli.err.status(message):
            return _post(cli, target, body)
    except KeyboardInterrupt:
        render.note(
            cli,
            "The server carries on with the sync; `kavach secret sync-runs` shows how it ended.",
        )
        raise


def _refused(run: Object) -> list[str]:
    return [str(i.get("name")) for i in sync_view.items(run) if i.get("status") == "refused"]


def _failed(run: Object) -> list[str]:
    return [str(i.get("name")) for i in sync_view.items(run) if i.get("status") == "failed"]


def _incomplete(run: Object, *, written: bool) -> SyncIncomplete:
    """Say what stopped a sync from completing, and what to do about it."""
    parts = []
    if failed := _failed(run):
        parts.append(f"{len(failed)} failed ({', '.join(failed)}): run the sync again to retry")
    if refused := _refused(run):
        parts.append(
            f"{len(refused)} refused ({', '.join(refused)}): they exist on the target but "
            "Kavach did not write them; --adopt takes them over"
        )
    if not parts:
        parts.append("some secrets were not synced")
    status = run.get("status")
    outcome = "only partly succeeded" if status == "partial" else f"ended {status}"
    head = f"sync to {run.get('target')} {outcome}" if written else "nothing synced"
    return SyncIncomplete(f"{head}: {'; '.join(parts)}")


@app.command(rich_help_panel=PANEL)
def sync(
    ctx: typer.Context,
    provider: ProviderOption = None,
    status: StatusFlag = False,
    version: VersionOption = None,
    dry_run: DryRunFlag = False,
    prune: PruneFlag = False,
    adopt: AdoptFlag = False,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Sync a version (default: the latest) to a provider: plan, confirm, write.

    Exit 0 when every secret succeeded or was unchanged; exit 4 when any failed or was
    refused (a same-named secret Kavach did not write: see --adopt). With --json, prints the
    run (or the plan, when nothing is to be written). Without a terminal, needs --yes.
    """
    cli = get_app(ctx, json=json)
    if status:
        _status(cli, resolve_target(cli, org, group, env), provider)
        return
    if provider is None:
        raise CliError("name the provider to sync to with --provider (github, gcp or azure)")
    version_id = secrets_api.optional_version_id(version)
    target = resolve_target(cli, org, group, env)
    body: Object = {"provider": provider, "dry_run": True, "prune": prune, "adopt": adopt}
    if version_id is not None:
        body["version_id"] = version_id
    plan = _plan(cli, target, body)
    title = f"Sync plan for {target.label}: {sync_view.label(plan)}"
    if dry_run:
        render.output(cli, plan, lambda: sync_view.show_plan(cli, plan, title=title))
        return
    if not cli.json:
        sync_view.show_plan(cli, plan, title=title)
    if not sync_view.writes(plan):
        _nothing_to_write(cli, plan)
        return
    where = plan.get("target")
    actions.confirm(
        cli, f"sync {target.label} to {where}: {sync_view.write_summary(plan)}", yes=yes
    )
    # Pinned to the planned version: what runs is what was shown and confirmed.
    planned_version = plan.get("version_id")
    if isinstance(planned_version, str):
        body["version_id"] = planned_version
    run = _apply(cli, target, {**body, "dry_run": False}, plan)
    title = f"Sync results for {target.label}: {sync_view.label(run)}"
    render.output(cli, run, lambda: sync_view.show_results(cli, run, title=title))
    if not cli.json:
        summary = sync_view.result_summary(run)
        line = f"Sync {str(run.get('id'))[:8]} {run.get('status')}: {summary}."
        cli.out.print(line, markup=False, soft_wrap=True)
    if not sync_view.complete(run):
        raise _incomplete(run, written=True)


class SyncOutOfDate(CliError):
    """Some sync target does not hold what the environment resolves to now."""

    kind = "sync_out_of_date"


def _status(cli: App, target: Target, provider: str | None) -> None:
    """Print whether each provider's target is up to date; fail if any is not."""
    answer = cli.client.get(f"/environments/{segment(target.id)}/sync-status")
    found = [expect_object(item) for item in (answer if isinstance(answer, list) else [])]
    if provider is not None:
        found = [item for item in found if item.get("provider") == provider]
        if not found:
            raise CliError(f"{provider} is not set up in {target.label}")

    def human() -> None:
        rows = []
        for item in found:
            last = item.get("last_run")
            when = last.get("finished_at") if isinstance(last, dict) else None
            state = "up to date" if item.get("up_to_date") else "out of date"
            rows.append(
                {
                    "provider": item.get("provider"),
                    "state": state,
                    "reason": item.get("reason") or "",
                    "last": when or "never",
                }
            )
        render.table(
            cli,
            rows,
            STATUS_COLUMNS,
            title=f"Sync status of {target.label}",
            empty=f"No provider is set up in {target.label}.",
        )

    render.output(cli, found, human)
    stale = [str(item.get("provider")) for item in found if not item.get("up_to_date")]
    if stale:
        raise SyncOutOfDate(f"out of date: {', '.join(stale)} (sync with --provider)")


def _nothing_to_write(cli: App, plan: Object) -> None:
    """End a sync whose plan writes nothing: up to date, or blocked by refusals."""
    if cli.json:
        render.print_json(plan)
    if _refused(plan):
        raise _incomplete(plan, written=False)
    if not cli.json:
        line = f"Nothing to sync: {plan.get('target')} is up to date."
        cli.out.print(line, markup=False, soft_wrap=True)


@app.command("sync-runs", rich_help_panel=PANEL)
def sync_runs(
    ctx: typer.Context,
    limit: LimitOption = 20,
    cursor: CursorOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the environment's sync runs (dry runs too), newest first."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    runs, following = page(cli.client, _runs_path(target), {"limit": limit}, cursor=cursor)

    def human() -> None:
        render.table(
            cli,
            sync_view.run_rows(runs),
            sync_view.RUN_COLUMNS,
            title=f"Sync runs of {target.label}",
            empty=f"No sync runs in {target.label} yet.",
        )
        if following is not None:
            render.note(cli, f"Older runs: run the same command with --cursor {following}.")

    render.output(cli, render.listing(runs, following), human)


def _matching_runs(cli: App, target: Target, prefix: str) -> list[str]:
    """Return the ids of runs starting with `prefix` (stops paging once two are found)."""
    matches: set[str] = set()
    for runs in pages(cli.client, _runs_path(target)):
        matches |= {str(r.get("id")) for r in runs if str(r.get("id")).startswith(prefix)}
        if len(matches) > 1:
            break
    return sorted(matches)


def _find_run(cli: App, target: Target, wanted: str) -> Object:
    """Return a run by id, or by the first characters of its id."""
    wanted = wanted.lower()
    if RUN_ID.fullmatch(wanted) is None:
        if RUN_PREFIX.fullmatch(wanted) is None:
            raise CliError(f"{wanted!r} is not a sync run id (or the first 4+ characters of one)")
        matches = _matching_runs(cli, target, wanted)
        if not matches:
            raise NotFound(f"no sync run of {target.label} starts with {wanted}")
        if len(matches) > 1:
            raise CliError(f"{wanted} matches several runs; give more of it: {', '.join(matches)}")
        wanted = matches[0]
    return expect_object(cli.client.get(f"{_runs_path(target)}/{segment(wanted)}"))


@app.command("sync-run", rich_help_panel=PANEL)
def sync_run(
    ctx: typer.Context,
    run_id: RunArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show one sync run and what happened to each secret."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    run = _find_run(cli, target, run_id)
    render.output(cli, run, lambda: sync_view.show_run(cli, run))
