"""`kavach secret diff`: two versions (on the server), or two environments (here)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli import changes, render, secrets_api
from kavach.cli.app import App, get_app
from kavach.cli.commands.secret.commit import server_changes
from kavach.cli.context import EnvRef, resolve_env
from kavach.cli.errors import CliError, ExitCode
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    OrgOption,
    RevealFlag,
    command_group,
)
from kavach.cli.resources import Object, expect_object, load_env
from kavach.cli.target import Target, resolve_target, service_token_environment

app = command_group()
PANEL = "Reading"

FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        "-f",
        help="Version to compare from: id, number, latest~N (default: the parent).",
        metavar="VERSION",
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option(
        "--to",
        "-t",
        help="Version to compare to: id, number, latest~N (default: the latest).",
        metavar="VERSION",
    ),
]
EnvToOption = Annotated[
    str | None,
    typer.Option("--env-to", help="Compare with another environment's secrets.", metavar="ENV"),
]
GroupToOption = Annotated[
    str | None,
    typer.Option("--group-to", help="Its secret group (default: the same).", metavar="GROUP"),
]
ExitCodeFlag = Annotated[
    bool,
    typer.Option("--exit-code", help="Exit 1 when there are differences, 0 when none (for CI)."),
]
OrgToOption = Annotated[
    str | None,
    typer.Option("--org-to", help="Its organization (default: the same).", metavar="ORG"),
]


def _other_environment(
    cli: App, ref: EnvRef, env_to: str, group_to: str | None, org_to: str | None
) -> Target:
    other = EnvRef(org_to or ref.organization, group_to or ref.secret_group, env_to)
    found = load_env(cli.client, other)
    return Target(str(found.id), found.qualified)


@app.command(rich_help_panel=PANEL)
def diff(
    ctx: typer.Context,
    from_: FromOption = None,
    to: ToOption = None,
    reveal: RevealFlag = False,
    env_to: EnvToOption = None,
    group_to: GroupToOption = None,
    org_to: OrgToOption = None,
    exit_code: ExitCodeFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Compare versions (default: latest vs its parent), or environments with --env-to."""
    cli = get_app(ctx, json=json)
    from_id = secrets_api.optional_version_id(from_, "--from")
    to_id = secrets_api.optional_version_id(to, "--to")
    if env_to is None and (group_to or org_to):
        raise CliError("--group-to and --org-to go with --env-to")
    if env_to is not None:
        found = _diff_environments(
            cli, (org, group, env), (org_to, group_to, env_to), from_id, to_id, reveal
        )
        _exit_on_differences(found, exit_code)
        return
    target = resolve_target(cli, org, group, env)
    params: dict[str, str] = {}
    if from_id:
        params["from"] = from_id
    if to_id:
        params["to"] = to_id
    if reveal:
        params["reveal"] = "true"
    data = expect_object(cli.client.get(f"{target.path}/diff", params=params))
    found = server_changes(data)
    old = data.get("from_version")
    new = data.get("to_version")
    old_label = secrets_api.label(old if isinstance(old, dict) else None)
    new_label = secrets_api.label(new if isinstance(new, dict) else None)
    payload = {
        "from_version": old,
        "to_version": new,
        "changes": [change.to_json(reveal) for change in found],
        "unchanged": data.get("unchanged"),
    }
    title = f"{target.label}: {old_label} → {new_label}"
    moved = secrets_api.moved_sources(
        old if isinstance(old, dict) else None, new if isinstance(new, dict) else None
    )
    _show_diff(cli, payload, found, reveal, title, data.get("unchanged"), moved)
    _exit_on_differences(found, exit_code)


def _exit_on_differences(found: list[changes.Change], exit_code: bool) -> None:
    """With --exit-code, exit 1 when there are differences (as `git diff --exit-code`)."""
    if exit_code and found:
        raise typer.Exit(ExitCode.LOCAL)


def _show_diff(
    cli: App,
    payload: Object,
    found: list[changes.Change],
    reveal: bool,
    title: str,
    same: Any,
    moved: list[str] | None = None,
) -> None:
    def human() -> None:
        changes.show(cli, found, reveal=reveal, title=title, empty="No differences.")
        render.note(cli, f"{changes.summary(found)}; {same} unchanged.")
        if moved:  # resolved values may differ where the stored text does not
            render.note(cli, f"References moved on: {', '.join(moved)}.")

    render.output(cli, payload, human)


def _diff_environments(
    cli: App,
    source: tuple[str | None, str | None, str | None],
    other: tuple[str | None, str | None, str],
    from_id: str | None,
    to_id: str | None,
    reveal: bool,
) -> list[changes.Change]:
    if service_token_environment(cli) is not None:
        raise CliError("a service token sees only its own environment: --env-to needs a login")
    ref = resolve_env(cli.context, *source)
    found_source = load_env(cli.client, ref)
    here = Target(str(found_source.id), found_source.qualified)
    there = _other_environment(cli, ref, other[2], other[1], other[0])
    old_version, old = secrets_api.read(cli.client, here, from_id)
    new_version, new = secrets_api.read(cli.client, there, to_id)
    found = changes.between(old, new)
    payload = {
        "from_environment": here.name,
        "to_environment": there.name,
        "from_version": old_version,
        "to_version": new_version,
        "changes": [change.to_json(reveal) for change in found],
        "unchanged": len(old.keys() & new.keys()) - sum(c.kind == "modified" for c in found),
    }
    title = (
        f"{here.name} ({secrets_api.label(old_version)}) → "
        f"{there.name} ({secrets_api.label(new_version)})"
    )
    _show_diff(cli, payload, found, reveal, title, payload["unchanged"])
    return found
