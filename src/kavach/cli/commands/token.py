"""`kavach token …`: service tokens that give CI and machines access to one environment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import typer

from kavach.cli import actions, render
from kavach.cli.app import App, get_app
from kavach.cli.commands.hierarchy import environment
from kavach.cli.credentials import well_formed
from kavach.cli.durations import parse_duration
from kavach.cli.errors import CliError, NotFound
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, YesFlag, command_group
from kavach.cli.resources import Object, Resource, expect_object, list_all, segment

app = command_group(
    help="Manage service tokens for an environment (--org/--group/--env or the active one).",
    no_args_is_help=True,
)

COLUMNS = [
    ("name", "Name"),
    ("id", "ID"),
    ("role", "Role"),
    ("status", "Status"),
    ("expires_at", "Expires"),
    ("last_used_at", "Last used"),
    ("subject", "Workload"),  # the platform's subject, for a token a workload exchanged
]


NameArgument = Annotated[str, typer.Argument(help="A name for the token.", show_default=False)]
TokenArgument = Annotated[
    str, typer.Argument(help="The token's name or id.", metavar="NAME_OR_ID", show_default=False)
]
TokenRoleOption = Annotated[
    Literal["viewer", "editor"],
    typer.Option("--role", "-r", help="viewer reads secrets; editor also changes and syncs them."),
]
ExpiresOption = Annotated[
    int | None,
    typer.Option(
        "--expires-in",
        parser=parse_duration,
        metavar="DURATION",
        help="Lifetime, e.g. 3600 (seconds), 12h, 30d (default: the server's, 90 days).",
    ),
]


def _status(token: Object, now: datetime) -> str:
    if token.get("revoked_at"):
        return "revoked"
    expires = render.when(token.get("expires_at"))
    if isinstance(expires, datetime) and expires.tzinfo is not None and expires <= now:
        return "expired"
    return "active"


def _lookup(cli: App, target: Resource, wanted: str) -> Object:
    """Return the token `wanted` names: by name (the server filters), else by id."""
    path = f"{target.path}/tokens"
    named = list_all(cli.client, path, {"name": wanted})
    tokens = named or list_all(cli.client, path)
    return _pick(tokens, wanted, target.label)


def _pick(tokens: list[Object], wanted: str, where: str) -> Object:
    """Return the token whose id is `wanted`, else the one live token named `wanted`."""
    for token in tokens:
        if str(token.get("id")) == wanted:
            return token
    named = [token for token in tokens if token.get("name") == wanted]
    live = [token for token in named if not token.get("revoked_at")]
    if len(live) == 1:
        return live[0]
    if len(live) > 1:
        ids = ", ".join(str(token.get("id")) for token in live)
        raise CliError(f"several tokens are named {wanted!r} in {where}; pass one id: {ids}")
    if named:
        raise CliError(f"token {wanted!r} in {where} is already revoked")
    raise NotFound(f"no token named {wanted!r} or with that id in {where}")


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    role: TokenRoleOption,
    expires_in: ExpiresOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Create a service token; it is printed once, on stdout, and never stored."""
    cli = get_app(ctx, json=json)
    target = environment(cli, org, group, env)
    body: Object = {"name": name, "role": role}
    if expires_in is not None:
        body["expires_in"] = expires_in
    created = expect_object(cli.client.post(f"{target.path}/tokens", body))
    secret = created.get("token")
    if not isinstance(secret, str) or not well_formed(secret):
        # Printed alone below for `$(…)`: anything but a token's characters is refused.
        raise CliError("the server created the token but sent no valid token value; revoke it")
    expires = render.cell(render.when(created.get("expires_at")))
    render.note(cli, f"Created {role} token {name!r} for {target.label}, expiring {expires}.")
    render.warn(cli, "copy the token now: it will not be shown again.")
    if cli.json:
        render.print_json(created)
    else:
        # Alone on stdout, so `$(kavach token create …)` captures exactly the token.
        typer.echo(secret)


@app.command("list")
def list_(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the environment's service tokens (never their values)."""
    cli = get_app(ctx, json=json)
    target = environment(cli, org, group, env)
    tokens = list_all(cli.client, f"{target.path}/tokens")
    now = datetime.now(UTC)
    rows = [{**token, "status": _status(token, now)} for token in tokens]
    render.output(
        cli,
        render.listing(rows),
        lambda: render.table(
            cli,
            actions.human_rows(rows, "expires_at", "last_used_at"),
            COLUMNS,
            title=f"Service tokens for {target.label}",
            empty=f"No service tokens for {target.label}.",
        ),
    )


@app.command()
def revoke(
    ctx: typer.Context,
    token: TokenArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Revoke a service token by name or id; it stops working at once."""
    cli = get_app(ctx, json=json)
    target = environment(cli, org, group, env)
    found = _lookup(cli, target, token)
    label = f"token {found.get('name')!r} ({found.get('id')})"
    actions.confirm(cli, f"revoke {label} for {target.label}", yes=yes)
    revoked = cli.client.delete(f"{target.path}/tokens/{segment(found['id'])}")
    actions.say(cli, revoked, f"Revoked {label} for {target.label}.")
