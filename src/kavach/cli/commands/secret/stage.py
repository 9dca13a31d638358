"""`kavach secret add/remove/status/reset/rebase`: stage changes for one environment."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli import actions, changes, completion, render, secrets_api
from kavach.cli.app import App, get_app
from kavach.cli.commands.secret.inputs import (
    FormatOption,
    FromFileOption,
    PairsArgument,
    StdinFlag,
    StripFlag,
    check_name,
    values_to_stage,
)
from kavach.cli.errors import CliError, NotFound
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    RevealFlag,
    YesFlag,
    command_group,
)
from kavach.cli.staging import Staged, StagingArea
from kavach.cli.target import Target, resolve_target
from kavach.formats.common import names_list

app = command_group()
PANEL = "Staging"

NamesArgument = Annotated[
    list[str],
    typer.Argument(
        help="Names of secrets.",
        metavar="NAME...",
        show_default=False,
        autocompletion=completion.secrets,
    ),
]

STAGE_HINT = "review with `kavach secret status`, commit with `kavach secret commit -m MESSAGE`"


def area(cli: App, target: Target) -> StagingArea:
    """Return the staging file of `target` on this server."""
    return StagingArea(cli.home, cli.client.server, target.id)


def staged_json(target: Target, staged: Staged | None, **extra: Any) -> dict[str, Any]:
    """Return what --json prints about a staging (names only, never values)."""
    return {
        "environment_id": target.id,
        "environment": target.name,
        "base_version": staged.base_version if staged else None,
        "set": sorted(staged.set) if staged else [],
        "unset": sorted(staged.unset) if staged else [],
        **extra,
    }


@app.command(rich_help_panel=PANEL)
def add(
    ctx: typer.Context,
    pairs: PairsArgument = None,
    from_file: FromFileOption = None,
    fmt: FormatOption = None,
    stdin: StdinFlag = False,
    strip_newline: StripFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Stage secrets to set: NAME=VALUE pairs, --from-file FILE, or NAME --stdin."""
    cli = get_app(ctx, json=json)
    values = values_to_stage(cli, pairs or [], from_file, fmt, stdin, strip_newline)
    target = resolve_target(cli, org, group, env)
    staging = area(cli, target)
    with staging.locked():
        staged = staging.load()
        if staged is None:
            base = secrets_api.latest(cli.client, target)
            staged = staging.new(target.name, base.get("id") if base else None)
        for name, value in values.items():
            staged.stage_value(name, value)
        staging.save(staged)
    line = (
        f"Staged {len(values)} secret(s) for {target.label}: {names_list(values)}. "
        f"{STAGE_HINT[0].upper()}{STAGE_HINT[1:]}."
    )
    actions.say(cli, staged_json(target, staged), line)


@app.command(rich_help_panel=PANEL)
def remove(
    ctx: typer.Context,
    names: NamesArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Stage the removal of secrets (a staged addition of a new name is just dropped)."""
    cli = get_app(ctx, json=json)
    for position, name in enumerate(names, start=1):
        check_name(name, position)
    target = resolve_target(cli, org, group, env)
    staging = area(cli, target)
    version, current = secrets_api.read(cli.client, target)
    with staging.locked():
        staged = staging.load() or staging.new(target.name, version.get("id") if version else None)
        unknown = [name for name in names if name not in current and name not in staged.set]
        if unknown:
            raise NotFound(
                f"{names_list(unknown)}: not set in {target.label} "
                f"({secrets_api.label(version)}) and not staged"
            )
        for name in names:
            if name in current:
                staged.stage_removal(name)
            else:
                staged.unstage(name)
        staging.save(staged)
    line = f"Staged the removal of {names_list(names)} from {target.label}; {STAGE_HINT}."
    actions.say(cli, staged_json(target, staged), line)


@app.command(rich_help_panel=PANEL)
def status(
    ctx: typer.Context,
    reveal: RevealFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Show the staged changes against the latest version (values masked unless --reveal)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    staged = area(cli, target).load()
    if staged is None:
        data = {**staged_json(target, None), "latest_version": None, "changes": []}
        render.output(cli, data, lambda: render.note(cli, f"Nothing staged for {target.label}."))
        return
    version, current = secrets_api.read(cli.client, target)
    found = changes.staged(current, staged)
    latest_id = version.get("id") if version else None
    moved = latest_id != staged.base_version
    data = {
        **staged_json(target, staged),
        "latest_version": version,
        "moved_on": moved,
        "changes": [change.to_json(reveal) for change in found],
    }

    def human() -> None:
        base = staged.base_version or "no version"
        title = f"Staged for {target.label} (on top of {base})"
        changes.show(cli, found, reveal=reveal, title=title, empty="Nothing staged.")
        render.note(cli, f"{changes.summary(found)}.")
        if moved:
            render.warn(
                cli,
                f"{target.label} moved on to {secrets_api.label(version)} since this staging "
                f"was based on {base}; commit will be refused: `kavach secret rebase` stages "
                "these changes on top of the latest version.",
            )

    render.output(cli, data, human)


@app.command(rich_help_panel=PANEL)
def reset(
    ctx: typer.Context,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Discard every staged change for the environment (asks first unless --yes)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    staging = area(cli, target)
    try:
        pending = staging.load()
    except CliError:
        pending = None  # unreadable: asked about all the same
    if pending is not None or staging.path.exists():
        what = f"{pending.count} staged change(s)" if pending else "the staged changes"
        actions.confirm(cli, f"discard {what} for {target.label}", yes=yes)
    with staging.locked():
        try:
            staged = staging.load()
        except CliError:
            staged = None  # unreadable: discarding it is the way out
        removed = staging.clear()
    count = staged.count if staged else 0
    line = (
        f"Discarded {count} staged change(s) for {target.label}."
        if removed
        else f"Nothing staged for {target.label}."
    )
    data = {"environment_id": target.id, "environment": target.name, "discarded": count}
    actions.say(cli, data, line)


@app.command(rich_help_panel=PANEL)
def rebase(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Put the staged changes on top of the latest version (after someone else committed)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    staging = area(cli, target)
    version, current = secrets_api.read(cli.client, target)
    latest_id = version.get("id") if version else None
    with staging.locked():
        staged = staging.load()
        if staged is None:
            raise CliError(f"nothing staged for {target.label}")
        if staged.base_version == latest_id:
            line = f"The staged changes are already on top of {secrets_api.label(version)}."
            actions.say(cli, staged_json(target, staged), line)
            return
        meanwhile = changed_since(cli, target, staged.base_version, latest_id, current)
        dropped = [name for name in staged.unset if name not in current]
        for name in dropped:
            staged.unstage(name)
        staged.base_version = latest_id
        staging.save(staged)
    overridden = sorted(set(meanwhile) & (set(staged.set) | set(staged.unset)))
    data = staged_json(target, staged, changed=meanwhile, overridden=overridden, dropped=dropped)

    def human() -> None:
        render.note(cli, f"Now on top of {secrets_api.label(version)}.")
        render.note(cli, f"Changed meanwhile: {names_list(meanwhile) or 'nothing'}.")
        if overridden:
            render.warn(cli, f"your staged changes override those to {names_list(overridden)}.")
        if dropped:
            render.note(cli, f"Dropped staged removals of names now gone: {names_list(dropped)}.")

    render.output(cli, data, human)


def changed_since(
    cli: App, target: Target, base: str | None, latest_id: str | None, current: dict[str, str]
) -> list[str]:
    """Return the names that changed from version `base` to `latest_id` (names only)."""
    if base is None:
        return sorted(current)
    if latest_id is None:
        return []
    from kavach.cli.resources import expect_object

    data = expect_object(
        cli.client.get(f"{target.path}/diff", params={"from": base, "to": latest_id})
    )
    names = [
        name
        for key in ("added", "removed", "modified")
        for name in data.get(key) or []
        if isinstance(name, str)
    ]
    return sorted(names)
