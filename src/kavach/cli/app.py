"""The one application object the root command puts in the Click context (`ctx.obj`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kavach.cli.config import Config, load_config, normalize_server, save_config
from kavach.cli.credentials import TOKEN_ENV
from kavach.cli.errors import CliError

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from kavach.cli.client import ApiClient
    from kavach.cli.config import ActiveContext
    from kavach.cli.credentials import CredentialStore
    from kavach.cli.project import Chosen, Project
    from kavach.cli.session import Session

SERVER_ENV = "KAVACH_SERVER"
_UNREAD = object()


@dataclass(frozen=True)
class Runtime:
    """What the CLI touches outside the process besides files; tests swap these out."""

    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    open_browser: Callable[[str], object] | None = None  # None: the webbrowser module
    stdin_is_terminal: Callable[[], bool] | None = None  # None: ask sys.stdin
    stdout_is_terminal: Callable[[], bool] | None = None  # None: ask sys.stdout


class App:
    """State shared by every command; everything costly is built on first use."""

    def __init__(
        self,
        *,
        home: Path,
        server: str | None = None,
        json: bool = False,
        verbose: bool = False,
        color: bool = True,
        quiet: bool = False,
        runtime: Runtime | None = None,
        oidc_token_file: Path | None = None,
    ) -> None:
        self.home = home
        self.oidc_token_file = oidc_token_file
        self.json = json
        self.verbose = verbose
        self.color = color
        self.quiet = quiet
        self.runtime = runtime or Runtime()
        self._server = server
        self._config: Config | None = None
        self._out: Console | None = None
        self._err: Console | None = None
        self._store: CredentialStore | None = None
        self._client: ApiClient | None = None
        self._project: Project | object | None = _UNREAD

    @property
    def config(self) -> Config:
        """Return config.yaml's contents, read on first use."""
        if self._config is None:
            self._config = load_config(self.home)
        return self._config

    @property
    def project(self) -> Project | None:
        """Return the nearest `.kavach.yaml` (working directory or above), read on first use."""
        if self._project is _UNREAD:
            from kavach.cli.project import find_project, load_project

            found = find_project(Path.cwd())
            self._project = load_project(found) if found else None
        return self._project  # type: ignore[return-value]

    @property
    def chosen(self) -> Chosen:
        """Return the default context and where each level came from (see cli.project)."""
        from kavach.cli.project import CONFIG_SOURCE, from_variables, layered

        layers = [(CONFIG_SOURCE, self.config.context)]
        if self.project is not None:
            layers.append((str(self.project.path), self.project.context))
        layers.append(("KAVACH_ORG/KAVACH_GROUP/KAVACH_ENV", from_variables(os.environ)))
        return layered(layers)

    @property
    def context(self) -> ActiveContext:
        """Return the context commands use when no --org/--group/--env is given."""
        return self.chosen.context

    def save_config(self) -> None:
        """Write the (possibly changed) config back to config.yaml."""
        save_config(self.home, self.config)

    @property
    def out(self) -> Console:
        """Return the console for results (stdout)."""
        if self._out is None:
            from kavach.cli.console import SafeConsole

            terminal = self.stdout_is_terminal()
            self._out = SafeConsole(
                highlight=False, no_color=not self.color, soft_wrap=not terminal
            )
        return self._out

    @property
    def err(self) -> Console:
        """Return the console for progress, warnings and errors (stderr)."""
        if self._err is None:
            from kavach.cli.console import SafeConsole

            self._err = SafeConsole(stderr=True, highlight=False, no_color=not self.color)
        return self._err

    @property
    def store(self) -> CredentialStore:
        """Return the credential store for this home directory."""
        if self._store is None:
            from kavach.cli.credentials import CredentialStore

            self._store = CredentialStore(self.home)
        return self._store

    def configured_server(self, override: str | None = None) -> str | None:
        """Return the server: `override`, --server/$KAVACH_SERVER, .kavach.yaml, config.yaml."""
        project = self.project.server if self.project is not None else None
        candidate = override or self._server or project or self.config.server
        return normalize_server(candidate) if candidate else None

    def server_url(self, override: str | None = None) -> str:
        """Return configured_server(), failing with a hint when none is set."""
        url = self.configured_server(override)
        if url is None:
            raise CliError(
                f"no server set: pass --server URL, set {SERVER_ENV}, "
                "or run `kavach login --server URL`"
            )
        return url

    def session(self, server: str | None = None, *, env_token: bool = True) -> Session:
        """Return the token session for `server` (default: server_url())."""
        from kavach.cli.session import Session

        token = os.environ.get(TOKEN_ENV) if env_token else None
        return Session(server or self.server_url(), self.store, env_token=token)

    @property
    def client(self) -> ApiClient:
        """Return the API client for server_url(), built on first use."""
        if self._client is None:
            self._client = self.make_client(self.session())
        return self._client

    def make_client(self, session: Session) -> ApiClient:
        """Build an API client for `session`'s server; the caller closes it."""
        from kavach.cli.client import ApiClient

        log = self.log if self.verbose else None
        return ApiClient(session.server, session, transport=self.runtime.transport, log=log)

    def interactive(self) -> bool:
        """Tell whether stdin is a terminal someone could answer a prompt on."""
        check = self.runtime.stdin_is_terminal
        if check is not None:
            return check()
        # sys.stdin is looked up now, not at import: test runners swap it.
        return sys.stdin is not None and sys.stdin.isatty()

    def stdout_is_terminal(self) -> bool:
        """Tell whether stdout is a terminal (rather than a pipe or a file)."""
        check = self.runtime.stdout_is_terminal
        if check is not None:
            return check()
        return sys.stdout is not None and sys.stdout.isatty()

    def log(self, message: str) -> None:
        """Print a diagnostic line to stderr when --verbose is on."""
        if self.verbose:
            self.err.print(message, style="dim", markup=False, soft_wrap=True)

    def close(self) -> None:
        """Release the HTTP connection pool, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None


def get_app(ctx: typer.Context, *, json: bool = False) -> App:
    """Return the App built by the root command; a command's own --json switches JSON on."""
    app = ctx.find_object(App)
    if app is None:
        raise RuntimeError("the root kavach command did not set up the App")
    if json:
        app.json = True
    return app
