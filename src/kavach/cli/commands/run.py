"""`kavach run -- CMD ARGS…`: run a command with the environment's secrets in its environment."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from kavach.cli.app import get_app
from kavach.cli.errors import CliError
from kavach.cli.options import EnvOption, GroupOption, OrgOption, VersionOption

app = typer.Typer()

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
        help="Let secrets set reserved variables too (PATH, HOME, LD_*, PYTHON*…).",
    ),
]


def _stderr(line: str) -> None:
    # Plain stderr, not rich: `kavach run` must start fast.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
    "when signal N killed it. Secrets never replace reserved variables (PATH, HOME, SHELL, "
    "USER, LOGNAME, PWD, OLDPWD, TMPDIR, TERM, LANG, LANGUAGE, TZ, IFS, SHLVL, ENV, BASH_ENV, "
    "SHELLOPTS, BASHOPTS, PS4, CDPATH, GLOBIGNORE, NODE_OPTIONS, PERL5OPT, PERL5LIB, RUBYOPT, "
    "RUBYLIB, JAVA_TOOL_OPTIONS and every LD_*, DYLD_*, LC_*, PYTHON*, KAVACH_*, BASH_FUNC_*) "
    "unless --override-reserved."
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
    org: OrgOption = None,
    group: GroupOption = None,
    env: EnvOption = None,
) -> None:
    """Run a command with the secrets as environment variables; exit with its status."""
    from kavach.cli import secrets_api
    from kavach.cli.child_env import build_env
    from kavach.cli.process import SpawnError, run_child
    from kavach.cli.target import resolve_target

    cli = get_app(ctx)
    argv = _argv(command or [], shell_line)
    if version is not None:
        secrets_api.check_version_id(version)
    target = resolve_target(cli, org, group, env)
    _, values = secrets_api.read(cli.client, target, version)
    cli.close()  # the connection is not needed while the command runs
    built = build_env(
        os.environ, values, override_reserved=override_reserved, preserve_env=preserve_env
    )
    if built.skipped_reserved:
        names = ", ".join(built.skipped_reserved)
        _stderr(f"Warning: not set, reserved: {names} (--override-reserved sets them anyway)")
    if built.kept_existing:
        cli.log(f"kept the existing values of {', '.join(built.kept_existing)} (--preserve-env)")
    try:
        code = run_child(argv, built.env)
    except SpawnError as exc:
        _stderr(f"Error: {exc}")
        raise typer.Exit(exc.code) from None
    raise typer.Exit(code)
