"""`kavach secret commit/push/rollback`: write new versions, never losing a concurrent one."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kavach.cli import actions, changes, completion, limits, render, secrets_api
from kavach.cli.app import App, get_app
from kavach.cli.commands.secret.inputs import read_secrets_file
from kavach.cli.commands.secret.stage import area, changed_since
from kavach.cli.errors import ApiError, CliError
from kavach.cli.options import (
    EnvOption,
    GroupOption,
    JsonFlag,
    MessageOption,
    OrgOption,
    RevealFlag,
    YesFlag,
    command_group,
)
from kavach.cli.resources import Object, expect_object
from kavach.cli.target import Target, resolve_target
from kavach.formats.common import names_list

app = command_group()
PANEL = "Versions"

FileOption = Annotated[
    str,
    typer.Option("--file", "-f", help="A dotenv, JSON or YAML file (`-`: stdin).", metavar="FILE"),
]
FileFormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Format of --file: dotenv, json or yaml (default: from the file's name).",
        metavar="FORMAT",
        autocompletion=completion.input_formats,
    ),
]
ReplaceFlag = Annotated[
    bool,
    typer.Option(
        "--replace", help="Make the file the whole new version: names not in it are removed."
    ),
]
RollbackVersion = Annotated[
    str,
    typer.Option(
        "--version",
        "-v",
        help="The version to roll back to: its id, number (3 or v3) or latest~N.",
        metavar="VERSION",
    ),
]


def conflict(
    cli: App,
    target: Target,
    base: str | None,
    latest: Any,
    changed: list[str],
    *,
    kept: str,
) -> ApiError:
    """Report a version conflict on stderr and return the error to raise (exit 4)."""
    since = base or "the empty environment"
    render.note(cli, f"Changed in {target.label} since {since}: {names_list(changed) or '-'}.")
    render.note(cli, kept)
    latest_label = secrets_api.label(latest if isinstance(latest, dict) else None)
    message = f"{target.label} moved on from {base or 'no version'} to {latest_label}"
    return ApiError(409, "version_conflict", message, {"changed": changed})


def server_conflict(cli: App, target: Target, base: str | None, exc: ApiError, kept: str) -> None:
    """Turn a 409 version_conflict into the same report as a conflict seen before sending."""
    if exc.error_code != "version_conflict":
        return
    data = exc.data if isinstance(exc.data, dict) else {}
    changed = [name for name in data.get("changed") or [] if isinstance(name, str)]
    raise conflict(cli, target, base, data.get("latest_version"), changed, kept=kept) from exc


STAGING_KEPT = (
    "Your staged changes are kept: `kavach secret status` shows them against the latest "
    "version, `kavach secret rebase` puts them on top of it; then commit again."
)
PUSH_KEPT = "Nothing was pushed; run the push again to review the changes against the latest."


def _committed(cli: App, version: Object, target: Target, found: list[changes.Change]) -> None:
    line = (
        f"Committed {secrets_api.label(version)} to {target.label}: {changes.summary(found)}; "
        f"{version.get('secret_count')} secret(s) in all."
    )
    actions.say(cli, version, line)
    broken = version.get("broken_references")
    if isinstance(broken, list) and broken:
        render.warn(
            cli, f"now failing to resolve (removed by --force): {'; '.join(map(str, broken))}"
        )


ForceRemovalFlag = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Remove secrets other environments refer to (their references then fail to read).",
    ),
]


@app.command(rich_help_panel=PANEL)
def commit(
    ctx: typer.Context,
    message: MessageOption,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
    force: ForceRemovalFlag = False,
) -> None:
    """Commit the staged changes as a new version (asks first unless --yes)."""
    cli = get_app(ctx, json=json)
    target = resolve_target(cli, org, group, env)
    staging = area(cli, target)
    staged = staging.load()
    if staged is None:
        raise CliError(f"nothing staged for {target.label}; stage with `kavach secret add`")
    version, current = secrets_api.read(cli.client, target)
    latest_id = version.get("id") if version else None
    base = staged.base_version
    if latest_id != base:
        changed = changed_since(cli, target, base, latest_id, current)
        raise conflict(cli, target, base, version, changed, kept=STAGING_KEPT)
    found = changes.effective(changes.staged(current, staged))
    if not found:
        raise CliError(
            f"nothing to commit: the staged changes leave {secrets_api.label(version)} as it is "
            "(`kavach secret reset` discards them)"
        )
    body: dict[str, Any] = {"message": message}
    to_set = {c.name: c.new for c in found if c.kind != "removed" and c.new is not None}
    to_unset = [c.name for c in found if c.kind == "removed"]
    if to_set:
        body["set"] = to_set
    if to_unset:
        body["unset"] = to_unset
    if base is not None:
        body["parent_version"] = base
    if force:
        body["force"] = True
    wanted = {name: value for name, value in current.items() if name not in to_unset}
    limits.check(cli.client, {**wanted, **to_set}, message, body=body)
    if not cli.json:
        title = f"To commit to {target.label} (on top of {secrets_api.label(version)})"
        changes.show(cli, found, reveal=False, title=title, empty="")
    actions.confirm(cli, f"commit {changes.summary(found)} to {target.label}", yes=yes)
    try:
        created = expect_object(cli.client.post(f"{target.path}/versions", body))
    except ApiError as exc:
        server_conflict(cli, target, base, exc, STAGING_KEPT)
        raise
    with staging.locked():
        # Another `secret add` may have staged more meanwhile: drop only what went in.
        now = staging.load()
        if now is not None:
            for name in staged.set:
                if now.set.get(name) == staged.set[name]:
                    now.set.pop(name)
            now.unset = [name for name in now.unset if name not in staged.unset]
            now.base_version = str(created.get("id"))
            staging.save(now)
    _committed(cli, created, target, found)


@app.command(rich_help_panel=PANEL)
def push(
    ctx: typer.Context,
    file: FileOption,
    message: MessageOption,
    replace: ReplaceFlag = False,
    fmt: FileFormatOption = None,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Commit a file's secrets: set on top of the latest, or with --replace the whole version."""
    cli = get_app(ctx, json=json)
    values = read_secrets_file(file, fmt)
    if not values and not replace:
        raise CliError(f"{file} holds no secrets (--replace with it would remove them all)")
    target = resolve_target(cli, org, group, env)
    version, current = secrets_api.read(cli.client, target)
    wanted = dict(values) if replace else {**current, **values}
    found = changes.between(current, wanted)
    if not found:
        where = f"{target.label} ({secrets_api.label(version)})"
        line = f"Nothing to push: {where} holds these already."
        actions.say(cli, {"version": version, "changes": []}, line)
        return
    body: dict[str, Any] = {"message": message}
    if replace:
        body.update(secrets=values, replace=True)
    else:
        body["set"] = values
    commit_on_latest(
        cli, target, version, found, body, wanted=wanted, verb="push", yes=yes, kept=PUSH_KEPT
    )


def commit_on_latest(
    cli: App,
    target: Target,
    version: Object | None,
    found: list[changes.Change],
    body: dict[str, Any],
    *,
    wanted: dict[str, str],
    verb: str,
    yes: bool,
    kept: str,
) -> None:
    """Check the limits, show the change, ask (unless --yes), commit `body` on `version`.

    `wanted` is the whole version the commit makes, checked against the server's limits
    before anything is shown or sent.
    """
    base = version.get("id") if version else None
    if base is not None:
        body["parent_version"] = base
    limits.check(cli.client, wanted, str(body["message"]), body=body)
    if not cli.json:
        title = f"To {verb} to {target.label} (on top of {secrets_api.label(version)})"
        changes.show(cli, found, reveal=False, title=title, empty="")
    actions.confirm(cli, f"{verb} {changes.summary(found)} to {target.label}", yes=yes)
    try:
        created = expect_object(cli.client.post(f"{target.path}/versions", body))
    except ApiError as exc:
        server_conflict(cli, target, base, exc, kept)
        raise
    _committed(cli, created, target, found)


@app.command(rich_help_panel=PANEL)
def rollback(
    ctx: typer.Context,
    version: RollbackVersion,
    message: MessageOption,
    reveal: RevealFlag = False,
    yes: YesFlag = False,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Make a new version holding the secrets of an older one (asks first unless --yes)."""
    cli = get_app(ctx, json=json)
    secrets_api.check_version_id(version)
    limits.check(cli.client, message=message)
    target = resolve_target(cli, org, group, env)
    latest = secrets_api.latest(cli.client, target)
    if latest is None:
        raise CliError(f"{target.label} has no versions yet")
    params: dict[str, str] = {"from": str(latest.get("id")), "to": version}
    if reveal:
        params["reveal"] = "true"
    data = expect_object(cli.client.get(f"{target.path}/diff", params=params))
    found = server_changes(data)
    old = secrets_api.label(data.get("to_version") or {"id": version, "seq": "?"})
    if not found:
        raise CliError(f"nothing to roll back: {secrets_api.label(latest)} equals {old}")
    if not cli.json:
        title = f"Rolling {target.label} back from {secrets_api.label(latest)} to {old}"
        changes.show(cli, found, reveal=reveal, title=title, empty="")
    actions.confirm(cli, f"roll {target.label} back to {old} as a new version", yes=yes)
    body = {"version_id": version, "commit_message": message}
    created = expect_object(cli.client.post(f"{target.path}/rollback", body))
    new = secrets_api.label(created)
    line = f"Rolled back: {new} of {target.label} holds the secrets of {old}."
    actions.say(cli, created, line)


def server_changes(data: Object) -> list[changes.Change]:
    """Return the changes of a server diff answer (values only if it revealed them)."""
    raw = data.get("values")
    values: dict[str, Any] = raw if isinstance(raw, dict) else {}
    hidden = not isinstance(raw, dict)
    found = []
    for kind in ("added", "modified", "removed"):
        for name in data.get(kind) or []:
            if not isinstance(name, str):
                continue
            shown = values.get(name)
            pair = shown if isinstance(shown, dict) else {}
            text = shown if isinstance(shown, str) else None
            old = pair.get("old") if kind == "modified" else text if kind == "removed" else None
            new = pair.get("new") if kind == "modified" else text if kind == "added" else None
            found.append(changes.Change(name, kind, old, new, hidden=hidden))
    return found
