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
    token,
    user_group,
)
from kavach.cli.commands import run as run_command
from kavach.cli.config import home_dir
from kavach.cli.errors import CliError, ExitCode


def _verbose(ctx: ClickContext) -> bool:
    app = ctx.find_object(App)
    return app.verbose if app is not None else False


class KavachGroup(TyperGroup):
    """The root group: turns every failure into one stderr line and its exit code."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        """Parse the root options; a usage error exits 1 (Click's default is 2)."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            exc.exit_code = ExitCode.LOCAL
            raise

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the chosen command, mapping exceptions to exit codes (DESIGN §5)."""
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = ExitCode.LOCAL
            raise
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # Typer's own control flow, printed and exited by Typer
        except CliError as exc:
            render.error(exc, verbose=_verbose(ctx))
            raise typer.Exit(exc.exit_code) from exc
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:  # a bug or an unexpected local failure, still one line
            message = f"unexpected {type(exc).__name__}: {exc}"
            render.error(exc, verbose=_verbose(ctx), message=message)
            raise typer.Exit(ExitCode.LOCAL) from exc


app = typer.Typer(
    name="kavach",
    cls=KavachGroup,
    help="Kavach: versioned, encrypted secrets for teams, with access control and sync.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ServerOption = Annotated[
    str | None,
    typer.Option("--server", envvar=SERVER_ENV, help="Kavach server URL (default: the saved one)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log HTTP requests; show tracebacks on errors.")
]


@app.callback()
def main(
    ctx: typer.Context,
    server: ServerOption = None,
    json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Kavach: versioned, encrypted secrets for teams, with access control and sync."""
    # Tests pass a Runtime as `obj` to swap the HTTP transport, sleeping and the clock.
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
    cli = App(home=home_dir(), server=server, json=json, verbose=verbose, runtime=runtime)
    ctx.obj = cli
    ctx.call_on_close(cli.close)


app.add_typer(auth.app)  # login, logout, status
app.add_typer(meta.app)  # version, info
app.add_typer(org.app, name="org", rich_help_panel="Resources")
app.add_typer(group.app, name="group", rich_help_panel="Resources")
app.add_typer(env.app, name="env", rich_help_panel="Resources")
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
