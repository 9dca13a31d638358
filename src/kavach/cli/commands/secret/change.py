"""`kavach secret set/unset`: change secrets and commit at once, without staging."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli import actions, changes, completion, secrets_api
from kavach.cli.app import get_app
from kavach.cli.commands.secret.commit import ForceRemovalFlag, commit_on_latest
from kavach.cli.commands.secret.inputs import (
    PairsArgument,
    StdinFlag,
    StripFlag,
    check_name,
    values_to_stage,
)
from kavach.cli.errors import NotFound
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    MessageOption,
    OrgOption,
    YesFlag,
    command_group,
)
from kavach.cli.target import resolve_target
from kavach.formats.common import names_list

app = command_group()
PANEL = "Changing"

NamesArgument = Annotated[
    list[str],
    typer.Argument(
        help="Names of the secrets to remove.",
        metavar="NAME...",
        show_default=False,
        autocompletion=completion.secrets,
    ),
]
KEPT = "Nothing was committed; run the command again to review the change against the latest."


@app.command("set", rich_help_panel=PANEL)
def set_(
    ctx: typer.Context,
    message: MessageOption,
    pairs: PairsArgument = None,
    stdin: StdinFlag = False,
    strip_newline: StripFlag = False,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Set secrets (NAME=VALUE..., or NAME --stdin) and commit them as a new version at once."""
    cli = get_app(ctx, json=json)
    values = values_to_stage(cli, pairs or [], None, None, stdin, strip_newline)
    target = resolve_target(cli, org, group, env)
    version, current = secrets_api.read(cli.client, target)
    wanted = {**current, **values}
    found = changes.between(current, wanted)
    if not found:
        line = f"Nothing to set: {target.label} ({secrets_api.label(version)}) holds these already."
        actions.say(cli, {"version": version, "changes": []}, line)
        return
    body: dict[str, Any] = {"message": message, "set": values}
    commit_on_latest(
        cli, target, version, found, body, wanted=wanted, verb="set", yes=yes, kept=KEPT
    )


@app.command(rich_help_panel=PANEL)
def unset(
    ctx: typer.Context,
    names: NamesArgument,
    message: MessageOption,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
    force: ForceRemovalFlag = False,
) -> None:
    """Remove secrets and commit that as a new version at once."""
    cli = get_app(ctx, json=json)
    for position, name in enumerate(names, start=1):
        check_name(name, position)
    target = resolve_target(cli, org, group, env)
    version, current = secrets_api.read(cli.client, target)
    unknown = [name for name in names if name not in current]
    if unknown:
        where = f"{target.label} ({secrets_api.label(version)})"
        raise NotFound(f"{names_list(unknown)}: not set in {where}")
    wanted = {k: v for k, v in current.items() if k not in names}
    found = changes.between(current, wanted)
    body: dict[str, Any] = {"message": message, "unset": sorted(set(names))}
    if force:
        body["force"] = True
    commit_on_latest(
        cli, target, version, found, body, wanted=wanted, verb="unset", yes=yes, kept=KEPT
    )
