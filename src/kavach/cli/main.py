"""`kavach`: the root command, its global options, and the one error-to-exit-code mapping.

A command's module is imported only when that command runs or shows its help
(`commands.registry` lists them, `lazy` loads them), so `kavach --help` and `kavach run`
import little; the root help is plain text written from the registry, without rich.
"""

from __future__ import annotations

import gc
from typing import Annotated, Any

import typer
from typer._click import Command, HelpFormatter
from typer._click import Context as ClickContext
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from kavach.cli import render
from kavach.cli.app import SERVER_ENV, App, Runtime
from kavach.cli.commands.registry import COMMANDS_PANEL
from kavach.cli.config import home_dir
from kavach.cli.errors import CliError, ExitCode
from kavach.cli.lazy import LazyCommands


def _verbose(ctx: ClickContext) -> bool:
    app = ctx.find_object(App)
    return app.verbose if app is not None else False


class KavachGroup(TyperGroup):
    """The root group: commands loaded on first use; every failure one line and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        """Write the help in plain text (Typer's rich help would load every command)."""
        Command.format_help(self, ctx, formatter)

    def format_commands(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        """List the commands by help panel, the panel-less ones first, without loading them."""
        commands = self.commands
        assert isinstance(commands, LazyCommands)  # noqa: S101 - set in __init__
        panels: dict[str, list[tuple[str, str]]] = {COMMANDS_PANEL: []}
        width = max(len(name) for name in commands)  # one column for every panel
        for name in commands:
            summary, panel = commands.describe(name, formatter.width)
            panels.setdefault(panel, []).append((name.ljust(width), summary))
        for panel, rows in panels.items():
            if rows:
                with formatter.section(panel):
                    formatter.write_dl(rows)

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
    if ctx.invoked_subcommand == "server":
        gc.enable()  # a server runs long; entry.run leaves the collector off for commands
    # Tests pass a Runtime as `obj` to swap the HTTP transport, sleeping and the clock.
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
    cli = App(home=home_dir(), server=server, json=json, verbose=verbose, runtime=runtime)
    ctx.obj = cli
    ctx.call_on_close(cli.close)


def run() -> None:
    """Run the `kavach` console script."""
    app(prog_name="kavach")
