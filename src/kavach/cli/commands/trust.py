"""`kavach trust …`: which CI jobs and pods may sign in to an environment with their OIDC token."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from kavach.cli import actions, render
from kavach.cli.app import App, get_app
from kavach.cli.commands.hierarchy import environment
from kavach.cli.durations import parse_duration
from kavach.cli.errors import CliError, NotFound
from kavach.cli.options import EnvOption, GroupOption, JsonFlag, OrgOption, YesFlag, command_group
from kavach.cli.resources import Object, Resource, expect_object, list_all, segment

HELP = (
    "Manage workload trusts for an environment (--org/--group/--env or the active one).\n\n"
    "A trust lets CI jobs and pods sign in with their platform's OIDC token (GitHub Actions, "
    "GitLab, Kubernetes) instead of a stored service token: a token from ISSUER, for "
    "AUDIENCE, whose claims match every --condition, is exchanged for a short-lived token "
    "of this environment with the trust's role."
)
app = command_group(help=HELP, no_args_is_help=True)

COLUMNS = [
    ("name", "Name"),
    ("issuer", "Issuer"),
    ("audience", "Audience"),
    ("conditions", "Conditions"),
    ("role", "Role"),
    ("ttl", "Token life"),
]

NameArgument = Annotated[str, typer.Argument(help="The trust's name.", show_default=False)]
IssuerOption = Annotated[
    str,
    typer.Option(
        "--issuer",
        help="The issuer, exactly as its tokens' iss claim writes it (GitHub Actions: "
        "https://token.actions.githubusercontent.com).",
        metavar="URL",
        show_default=False,
    ),
]
AudienceOption = Annotated[
    str | None,
    typer.Option(
        "--audience",
        help="The audience the tokens must be for (default: the server's URL, which "
        "`kavach` asks GitHub Actions for).",
        metavar="AUDIENCE",
    ),
]
ConditionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--condition",
        "-c",
        help="CLAIM=PATTERN: the claim must be PATTERN exactly or match it as a glob (*, ?, "
        "[…]; * matches / and : too). Repeatable; at least one (e.g. "
        "sub=repo:acme/app:ref:refs/heads/main).",
        metavar="CLAIM=PATTERN",
        show_default=False,
    ),
]
TrustRoleOption = Annotated[
    Literal["viewer", "editor"],
    typer.Option("--role", "-r", help="viewer reads secrets; editor also changes and syncs them."),
]
TtlOption = Annotated[
    int | None,
    typer.Option(
        "--ttl",
        parser=parse_duration,
        metavar="DURATION",
        help="How long an exchanged token lives, 1m to 1h, e.g. 15m (default: the server's, "
        "15 minutes).",
    ),
]


def conditions_of(pairs: list[str]) -> dict[str, str]:
    """Return the --condition CLAIM=PATTERN pairs as a mapping; refuse repeats and bad pairs."""
    found: dict[str, str] = {}
    for pair in pairs:
        claim, sep, pattern = pair.partition("=")
        if not sep or not claim or not pattern:
            raise CliError(f"--condition {pair!r} is not CLAIM=PATTERN")
        if claim in found:
            raise CliError(f"--condition names claim {claim!r} twice")
        found[claim] = pattern
    return found


def _ttl(seconds: object) -> str:
    if not isinstance(seconds, int):
        return render.cell(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _shown(trust: Object) -> Object:
    conditions = trust.get("conditions")
    pairs = conditions.items() if isinstance(conditions, dict) else ()
    return {
        **trust,
        "conditions": [f"{claim}={pattern}" for claim, pattern in sorted(pairs)],
        "ttl": _ttl(trust.get("token_ttl_seconds")),
    }


def _lookup(cli: App, target: Resource, name: str) -> Object:
    for trust in list_all(cli.client, f"{target.path}/workload-trusts", {"name": name}):
        if trust.get("name") == name:
            return trust
    raise NotFound(f"no workload trust named {name!r} in {target.label}")


@app.command()
def create(
    ctx: typer.Context,
    name: NameArgument,
    issuer: IssuerOption,
    condition: ConditionOption = None,
    audience: AudienceOption = None,
    role: TrustRoleOption = "viewer",
    ttl: TtlOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Trust an issuer's tokens whose claims match every --condition, with a role here."""
    cli = get_app(ctx, json=json)
    conditions = conditions_of(condition or [])
    if not conditions:
        raise CliError(
            "give at least one --condition CLAIM=PATTERN: an issuer such as GitHub Actions "
            "signs tokens for every repository it serves, and a trust without a condition "
            "would admit them all"
        )
    target = environment(cli, org, group, env)
    body: Object = {
        "name": name,
        "issuer": issuer,
        "audience": audience or cli.server_url(),
        "conditions": conditions,
        "role": role,
    }
    if ttl is not None:
        body["token_ttl_seconds"] = ttl
    created = expect_object(cli.client.post(f"{target.path}/workload-trusts", body))
    actions.say(
        cli,
        created,
        f"Created trust {name!r} for {target.label}: tokens of {issuer} for "
        f"{body['audience']} sign in as {role}.",
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """List the environment's workload trusts."""
    cli = get_app(ctx, json=json)
    target = environment(cli, org, group, env)
    trusts = list_all(cli.client, f"{target.path}/workload-trusts")
    render.output(
        cli,
        render.listing(trusts),
        lambda: render.table(
            cli,
            [_shown(trust) for trust in trusts],
            COLUMNS,
            title=f"Workload trusts for {target.label}",
            empty=f"No workload trusts for {target.label}.",
        ),
    )


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Delete a workload trust; the tokens it issued stop working at once."""
    cli = get_app(ctx, json=json)
    target = environment(cli, org, group, env)
    found = _lookup(cli, target, name)
    actions.confirm(cli, f"delete trust {name!r} of {target.label}", yes=yes)
    deleted = expect_object(
        cli.client.delete(f"{target.path}/workload-trusts/{segment(found['id'])}")
    )
    ended = deleted.get("tokens_deleted")
    actions.say(
        cli,
        deleted,
        f"Deleted trust {name!r} of {target.label}; {ended} token(s) it issued ended.",
    )
