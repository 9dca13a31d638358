"""`kavach`: the root command, its global options, and the one error-to-exit-code mapping.

A command's module is imported only when that command runs or shows its help
(`commands.registry` lists them, `lazy` loads them), so `kavach --help` and `kavach run`
import little; the root help is written from the registry. To add a root command or a noun
group, add it to `commands.registry`. Anything heavy (httpx, yaml, keyring…) is imported
inside the functions that use it.
"""

from __future__ import annotations

import gc
from pathlib import Path
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
    """The root group: commands loaded on first use; every failure one report and exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        """Write the help in plain text, the commands by help panel."""
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
OidcTokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--oidc-token-file",
        help="Sign in with the workload's OIDC token in this file, read at each run (a "
        "Kubernetes projected token; also KAVACH_OIDC_TOKEN_FILE).",
        metavar="PATH",
    ),
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
    oidc_token_file: OidcTokenFileOption = None,
) -> None:
    """Kavach: versioned, encrypted secrets for teams, with access control and sync."""
    if ctx.invoked_subcommand == "server":
        gc.enable()  # a server runs long; entry.run leaves the collector off for commands
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
        oidc_token_file=oidc_token_file,
    )
    ctx.obj = cli
    ctx.call_on_close(cli.close)


def run() -> None:
    """Run the `kavach` console script."""
    app(prog_name="kavach")
