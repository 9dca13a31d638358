"""`kavach run -- CMD ARGS…`: run a command with the environment's secrets in its environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kavach.cli.app import get_app
from kavach.cli.durations import parse_duration
from kavach.cli.errors import CliError
from kavach.cli.options import EnvOption, GroupOption, OrgOption, VersionOption, command_group
from kavach.cli.safe_text import neutralize

if TYPE_CHECKING:
    from kavach.cli.child_env import ChildEnv
    from kavach.cli.resources import Object

app = command_group()

CommandArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="The command and its arguments, after --.",
        metavar="CMD",
        show_default=False,
    ),
]
ShellCommandOption = Annotated[
    str | None,
    typer.Option(
        "--command",
        "-c",
        help="Run this command line through the shell ($SHELL -c, else /bin/sh -c).",
        metavar="LINE",
    ),
]
PreserveFlag = Annotated[
    bool,
    typer.Option("--preserve-env", help="Variables already set win over secrets of that name."),
]
OverrideFlag = Annotated[
    bool,
    typer.Option(
        "--override-reserved",
        help="Let secrets set every reserved variable (PATH, GIT_*, LD_*…); each is named.",
    ),
]
AllowEnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-env",
        help="Let secrets set this one reserved variable (a name, not a pattern; repeatable).",
        metavar="NAME",
        show_default=False,
    ),
]

RequireFlag = Annotated[
    bool,
    typer.Option(
        "--require-secrets",
        help="Fail instead of warning when the environment has no version or no secrets.",
    ),
]
WatchFlag = Annotated[
    bool,
    typer.Option(
        "--watch",
        help="Restart the command when the environment's values change (see the README).",
    ),
]
WatchSignalOption = Annotated[
    str | None,
    typer.Option(
        "--watch-signal",
        help="With --watch: send this signal (HUP, USR1…) instead of restarting; the "
        "command must read its secrets again itself, its environment cannot change.",
        metavar="SIGNAL",
        show_default=False,
    ),
]
WatchGraceOption = Annotated[
    float | None,
    typer.Option(
        "--watch-grace",
        help="With --watch: seconds a restarted command gets after SIGTERM before SIGKILL "
        "[default: 10].",
        metavar="SECONDS",
        min=0,
        show_default=False,
    ),
]
PassCredentialsFlag = Annotated[
    bool,
    typer.Option(
        "--pass-credentials",
        help="Pass KAVACH_TOKEN and the other Kavach credentials of your environment (a "
        "server's keys, database and Redis URLs) on to the command; by default it does not "
        "get them.",
    ),
]
FallbackOption = Annotated[
    Path | None,
    typer.Option(
        "--fallback",
        help="Keep the secrets read in FILE, encrypted for your credential, and use them "
        "(with a warning) when the server cannot be reached.",
        metavar="FILE",
        show_default=False,
    ),
]
FallbackOnlyFlag = Annotated[
    bool,
    typer.Option(
        "--fallback-only",
        help="Use the fallback without calling the server (--fallback FILE, else "
        "$KAVACH_HOME/fallback).",
    ),
]
FallbackMaxAgeOption = Annotated[
    int | None,
    typer.Option(
        "--fallback-max-age",
        parser=parse_duration,
        metavar="DURATION",
        help="Refuse a fallback written longer ago than this, e.g. 3600 (seconds), 12h, 7d.",
        show_default=False,
    ),
]


def _stderr(line: str) -> None:
    # Plain stderr, not rich: `kavach run` must start fast. Names come from the server.
    sys.stderr.write(neutralize(line) + "\n")
    sys.stderr.flush()


def _report(built: ChildEnv) -> None:
    """Name each secret treated as reserved; never a value."""
    from kavach.cli.child_env import reserved_family

    for name in built.skipped_reserved:
        family = reserved_family(name)
        why = family.name if family else "reserved"
        _stderr(f"Warning: {name} not set: reserved ({why}); --allow-env {name} sets it")
    for name in built.set_reserved:
        _stderr(f"Note: reserved {name} set from a secret")


def _check_found(where: str, summary: Object | None, count: int, require: bool) -> None:
    """Warn, or with --require-secrets fail, when the command would get no secrets."""
    from kavach.cli.secrets_api import label

    if summary is None:
        problem = f"{where} has no version yet"
    elif count == 0:
        problem = f"{label(summary)} of {where} holds no secrets"
    else:
        return
    if require:
        raise CliError(f"{problem} (--require-secrets)")
    _stderr(f"Warning: {problem}: the command runs without secrets (--require-secrets fails)")


def _argv(command: list[str], line: str | None) -> list[str]:
    if line is not None:
        if command:
            raise CliError("give either --command LINE or -- CMD ARGS…, not both")
        return [os.environ.get("SHELL") or "/bin/sh", "-c", line]
    if not command:
        raise CliError("no command: kavach run [OPTIONS] -- CMD [ARGS]…")
    return command


HELP = (
    "Run a command with the secrets as environment variables; exit with its status.\n\n"
    "Standard input, output and error are the command's own. SIGINT, SIGTERM, SIGHUP and "
    "SIGQUIT sent to kavach are passed on to it; the exit status is the command's, 128+N "
    "when signal N killed it.\n\n"
    "Secrets never set reserved variables: those that make programs run code, load "
    "libraries, use a proxy or trust other certificates, or that say who and where the "
    "user is (PATH, HOME, every GIT_*, LD_*, DYLD_*, PYTHON*, PERL5*, RUBY*, *JAVA_OPTIONS, "
    "*_PROXY, SSL_CERT_*, BASH_ENV, ENV, PROMPT_COMMAND, PAGER, EDITOR, KAVACH_* and more: "
    "the README lists every family). Each one skipped is named on stderr. "
    "--allow-env NAME sets one anyway; --override-reserved sets them all.\n\n"
    "The command does not inherit KAVACH_TOKEN or the other Kavach credentials of your "
    "environment unless --pass-credentials. When the environment has no version yet (or "
    "the version holds no secrets) the command runs without secrets after a warning; "
    "--require-secrets makes that an error, and the command does not run.\n\n"
    "With --fallback FILE (or `fallback: true` in .kavach.yaml), each read also writes the "
    "values to a fallback file encrypted for your login or KAVACH_TOKEN; when the server "
    "cannot be reached (not when it refuses), the command runs with the fallback's values "
    "after a warning naming their age. --fallback-only never calls the server; "
    "--fallback-max-age refuses an older fallback."
)


@app.command(
    help=HELP,
    context_settings={"allow_interspersed_args": False},
    rich_help_panel="Secrets",
)
def run(
    ctx: typer.Context,
    command: CommandArgument = None,
    shell_line: ShellCommandOption = None,
    version: VersionOption = None,
    preserve_env: PreserveFlag = False,
    override_reserved: OverrideFlag = False,
    allow_env: AllowEnvOption = None,
    require_secrets: RequireFlag = False,
    pass_credentials: PassCredentialsFlag = False,
    fallback_file: FallbackOption = None,
    fallback_only: FallbackOnlyFlag = False,
    fallback_max_age: FallbackMaxAgeOption = None,
    watch: WatchFlag = False,
    watch_signal: WatchSignalOption = None,
    watch_grace: WatchGraceOption = None,
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
) -> None:
    """Run a command with the secrets as environment variables; exit with its status."""
    from kavach.cli import fallback, secrets_api
    from kavach.cli.child_env import allowed_names, build_env
    from kavach.cli.process import SpawnError, run_child
    from kavach.cli.target import resolve_target

    cli = get_app(ctx)
    argv = _argv(command or [], shell_line)
    allow = allowed_names(allow_env or [])
    if version is not None:
        secrets_api.check_version_id(version)
    watching = None
    if watch or watch_signal is not None or watch_grace is not None:
        from kavach.cli.watch import watch_options

        watching = watch_options(watch, watch_signal, watch_grace, version)
        if fallback_only:
            raise CliError("--watch follows the server: it cannot go with --fallback-only")
    kept = fallback.choose(cli, fallback_file, fallback_only, fallback_max_age, version)
    read = fallback.read(cli, kept, org, group, env, version)
    summary, values = read.version, read.values
    target = resolve_target(cli, org, group, env) if watching is not None else None
    cli.close()  # the connection is not needed while the command runs
    _check_found(read.label, summary, len(values), require_secrets)

    def child_env(values: dict[str, str]) -> ChildEnv:
        return build_env(
            os.environ,
            values,
            allow=allow,
            override_reserved=override_reserved,
            preserve_env=preserve_env,
            pass_credentials=pass_credentials,
        )

    built = child_env(values)
    _report(built)
    if built.withheld:
        cli.log(f"not passed on: {', '.join(built.withheld)} (--pass-credentials passes them)")
    if built.kept_existing:
        cli.log(f"kept the existing values of {', '.join(built.kept_existing)} (--preserve-env)")
    try:
        if watching is not None and target is not None:
            from kavach.cli.watch import run_watching

            code = run_watching(cli, target, argv, built.env, lambda v: child_env(v).env, watching)
        else:
            code = run_child(argv, built.env)
    except SpawnError as exc:
        _stderr(f"Error: {exc}")
        raise typer.Exit(exc.code) from None
    raise typer.Exit(code)
