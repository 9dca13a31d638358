"""`kavach`: the root command, its global options, and the one error-to-exit-code mapping.

Command modules are imported eagerly, so they import only typer and light kavach.cli
modules at module level; anything heavy (httpx, yaml, keyring…) is imported inside functions.
To add a noun group, import its module below and register it with
`app.add_typer(<module>.app, name="<noun>")`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer._click import Context as ClickContext
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from kavach.cli import render
from kavach.cli.app import SERVER_ENV, App, Runtime
from kavach.cli.commands import (
    audit,
    auth,
    env,
    group,
    meta,
    org,
    provider,
    secret,
    server,
    setup,
    token,
    user_group,
)
from kavach.cli.commands import run as run_command
from kavach.cli.commands.secret import current
from kavach.cli.config import home_dir
from kavach.cli.errors import CliError, ExitCode


def _app(ctx: ClickContext) -> App | None:
    return ctx.find_object(App)


def _report(ctx: ClickContext, exc: BaseException, message: str | None = None) -> None:
    """Report a failure: one line on stderr, or a JSON object there under --json."""
    cli = _app(ctx)
    as_json = cli.json if cli is not None else _asks_json(ctx.meta.get(_ARGS, []))
    render.error(
        exc,
        verbose=cli.verbose if cli is not None else False,
        message=message,
        as_json=as_json,
        color=cli.color if cli is not None else render.color_allowed(None),
    )


def _asks_json(args: list[str]) -> bool:
    """Tell whether a command line asks for JSON (before or after its command's name)."""
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


_ARGS = "kavach.args"


class KavachGroup(TyperGroup):
    """The root group: turns every failure into one stderr report and its exit code."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        """Parse the root options; a usage error under --json is reported as JSON."""
        given = list(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            self._usage(exc, given)
            raise
        ctx.meta[_ARGS] = given  # for a usage error of a command below, under --json
        return ctx

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the chosen command, mapping exceptions to exit codes (README: exit codes)."""
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            self._usage(exc, ctx.meta.get(_ARGS, []))
            raise
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # Typer's own control flow, printed and exited by Typer
        except CliError as exc:
            _report(ctx, exc)
            raise typer.Exit(exc.exit_code) from exc
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:  # a bug or an unexpected local failure, still one line
            _report(ctx, exc, message=f"unexpected {type(exc).__name__}: {exc}")
            raise typer.Exit(ExitCode.LOCAL) from exc

    @staticmethod
    def _usage(exc: UsageError, args: list[str]) -> None:
        """Give a usage error Click's exit code; under --json, print it as JSON and exit."""
        exc.exit_code = ExitCode.USAGE
        if _asks_json(args):
            render.error(exc, as_json=True, code="usage")
            raise typer.Exit(ExitCode.USAGE) from exc


app = typer.Typer(
    name="kavach",
    cls=KavachGroup,
    help="Kavach: versioned, encrypted secrets for teams, with access control and sync.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Kavach server URL (default: the saved one).",
        metavar="URL",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", help="Log HTTP requests; show tracebacks on errors.")
]
NoColorOption = Annotated[
    bool, typer.Option("--no-color", help="Print no colours (also when NO_COLOR is set).")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print no progress lines, only results and errors.")
]


@app.callback()
def main(
    ctx: typer.Context,
    server: ServerOption = None,
    json: JsonOption = False,
    verbose: VerboseOption = False,
    no_color: NoColorOption = False,
    quiet: QuietOption = False,
) -> None:
    """Kavach: versioned, encrypted secrets for teams, with access control and sync."""
    # Tests pass a Runtime as `obj` to swap the HTTP transport, sleeping and the clock.
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
    cli = App(
        home=home_dir(),
        server=server,
        json=json,
        verbose=verbose,
        color=render.color_allowed(False if no_color else None),
        quiet=quiet,
        runtime=runtime,
    )
    ctx.obj = cli
    ctx.call_on_close(cli.close)


app.add_typer(auth.app)  # login, logout, status
app.add_typer(meta.app)  # version, info
app.add_typer(setup.app)  # setup
app.add_typer(org.app, name="org", rich_help_panel="Resources")
app.add_typer(group.app, name="group", rich_help_panel="Resources")
app.add_typer(env.app, name="env", rich_help_panel="Resources")
app.add_typer(current.root)  # secrets
app.add_typer(secret.app, name="secret", rich_help_panel="Secrets")
app.add_typer(provider.app, name="provider", rich_help_panel="Secrets")
app.add_typer(run_command.app)  # run
app.add_typer(user_group.app, name="user-group", rich_help_panel="Access")
app.add_typer(token.app, name="token", rich_help_panel="Access")
app.add_typer(audit.app, name="audit", rich_help_panel="Access")
app.add_typer(server.app, name="server")


def run() -> None:
    """Run the `kavach` console script."""
    app(prog_name="kavach")
