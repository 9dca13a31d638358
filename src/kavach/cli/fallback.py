"""`kavach run --fallback`: keep the secrets last read, and use them when the server is down.

After each read of the latest version, the values are sealed into a fallback file
(`cli.fallback_file`) under a key derived from the caller's credential. When the server
cannot be reached (refused, timed out, unknown host: `NetworkError`, never an answer such
as 401, 403 or 404), the file is opened instead, with a warning naming its age;
`--fallback-only` never calls the server.

Which file: `--fallback FILE`, else `$KAVACH_HOME/fallback/<environment id>.enc` when
`.kavach.yaml` says `fallback: true` (or `--fallback-only` is given). Offline, the
environment's id is unknown, so the default directory is searched for the file of the
environment the command names, on the configured server, that the credential opens.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kavach.cli.config import ensure_private_dir
from kavach.cli.credentials import TOKEN_ENV
from kavach.cli.errors import CliError, NetworkError, NotLoggedIn
from kavach.cli.fallback_file import (
    Fallback,
    FallbackError,
    FallbackLocked,
    FallbackMissing,
    FallbackTooOld,
    FallbackWrongEnvironment,
    Header,
    age_text,
    read_header,
    seal,
    unseal,
)
from kavach.cli.safe_text import neutralize

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.resources import Object
    from kavach.cli.target import Target

DIRECTORY = "fallback"
SUFFIX = ".enc"
# Environment ids are UUIDs; anything else is not made into a file name.
FILE_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
NEEDS_FALLBACK = (
    "--fallback-max-age needs a fallback: --fallback FILE, --fallback-only, or "
    "`fallback: true` in .kavach.yaml"
)


@dataclass(frozen=True)
class Choice:
    """Where the fallback lives and how it may be used."""

    file: Path | None  # None: the default location under KAVACH_HOME
    only: bool = False
    max_age: int | None = None  # seconds


@dataclass(frozen=True)
class Secrets:
    """What a command gets: the values, their version, and how to name where they came from."""

    label: str
    version: Object | None
    values: dict[str, str]


@dataclass(frozen=True)
class Wanted:
    """The environment a fallback must hold, as far as it is known without the server."""

    server: str
    environment_id: str | None = None  # known once the server named it
    name: str | None = None  # a login's `org/group/env`
    env_flag: str | None = None  # a service token's --env: its id or its own name

    def matches(self, header: Header) -> bool:
        """Tell whether `header` is of this environment on this server."""
        if header.server != self.server:
            return False
        if self.environment_id is not None:
            return header.environment_id == self.environment_id
        if self.name is not None:
            return header.environment == self.name
        last = header.environment.rsplit("/", 1)[-1]
        return self.env_flag is None or self.env_flag in (header.environment_id, last)

    def describe(self) -> str:
        """Return e.g. `environment acme/web/prod on https://kavach.example`."""
        what = self.name or self.env_flag or self.environment_id or "the token's environment"
        return f"environment {what} on {self.server}"


def choose(
    cli: App, file: Path | None, only: bool, max_age: int | None, version: str | None
) -> Choice | None:
    """Return how this run uses a fallback, or None when it uses none."""
    asked = file is not None or only
    project = cli.project
    if not asked and not (project is not None and project.fallback):
        if max_age is not None:
            raise CliError(NEEDS_FALLBACK)
        return None
    if version is not None:
        if asked:
            raise CliError("a fallback keeps the latest version: drop --version")
        return None  # .kavach.yaml asked for fallbacks of the latest version only
    return Choice(file, only, max_age)


def read(
    cli: App,
    choice: Choice | None,
    org: str | None,
    group: str | None,
    env: str | None,
    version: str | None,
) -> Secrets:
    """Return the environment's secrets: from the server, else (when chosen) its fallback."""
    from kavach.cli import secrets_api
    from kavach.cli.target import resolve_target

    if choice is None:
        found = resolve_target(cli, org, group, env)
        summary, values = secrets_api.read(cli.client, found, version, resolve=True)
        return Secrets(found.label, summary, values)
    credential = credential_secret(cli)
    server = cli.server_url()
    if choice.only:
        opened, path = find(cli.home, choice, _offline(cli, server, org, group, env), credential)
        _check_age(opened, path, choice.max_age)
        cli.log(f"using the fallback {path}, written {_age(opened)} ago (--fallback-only)")
        return _secrets(opened)
    target: Target | None = None
    try:
        target = resolve_target(cli, org, group, env)
        summary, values = secrets_api.read(cli.client, target, resolve=True)
    except NetworkError as unreachable:
        wanted = (
            Wanted(server, environment_id=target.id)
            if target is not None
            else _offline(cli, server, org, group, env)
        )
        return _recover(cli, choice, wanted, credential, unreachable)
    _keep(cli, choice, credential, server, target, summary, values)
    return Secrets(target.label, summary, values)


def credential_secret(cli: App) -> bytes:
    """Return the secret a fallback's key is derived from: KAVACH_TOKEN, or the login's seed.

    Both live exactly as long as the credential: a new token or a new login (after the old
    one was revoked) writes fallbacks the old credential cannot open.
    """
    session = cli.client.session
    if session is None:  # an ApiClient built by App always has one
        raise NotLoggedIn("no credentials")
    if session.env_token is not None:
        return b"service-token\0" + session.env_token.encode()
    from kavach.cli.workload import chosen_source

    if chosen_source(cli) is not None:
        raise CliError(
            "a fallback needs KAVACH_TOKEN or a login: the token a workload exchanges its "
            "platform's token for lasts one run, so no later run could open its fallback"
        )
    seed = session.fallback_seed()
    if seed is None:
        raise NotLoggedIn(
            f"not logged in to {session.server}; a fallback is opened with the login or "
            f"{TOKEN_ENV} that wrote it"
        )
    return b"login\0" + seed.encode()


def _offline(cli: App, server: str, org: str | None, group: str | None, env: str | None) -> Wanted:
    """Return the environment the command names, without asking the server."""
    session = cli.client.session
    if session is not None and session.env_token is not None:
        # A service token knows its environment's id only through the server; the key
        # derived from the token tells its fallbacks apart.
        return Wanted(server, env_flag=env)
    from kavach.cli.context import resolve_env

    ref = resolve_env(cli.context, org, group, env)
    return Wanted(server, name=f"{ref.organization}/{ref.secret_group}/{ref.environment}")


def _recover(
    cli: App, choice: Choice, wanted: Wanted, credential: bytes, unreachable: NetworkError
) -> Secrets:
    """Return the fallback's secrets after the server could not be reached."""
    cli.log(f"server unreachable: {unreachable.message}")
    try:
        opened, path = find(cli.home, choice, wanted, credential)
    except FallbackMissing as missing:
        # Nothing is wrong with a fallback that was never written: the server is the news.
        raise NetworkError(f"{unreachable.message}; {missing.message}") from None
    _check_age(opened, path, choice.max_age)
    _warn(f"Warning: server unreachable; using fallback written {_age(opened)} ago ({path})")
    return _secrets(opened)


def find(home: Path, choice: Choice, wanted: Wanted, credential: bytes) -> tuple[Fallback, Path]:
    """Return the opened fallback for `wanted` (under KAVACH_HOME `home`) and where it is."""
    if choice.file is not None or wanted.environment_id is not None:
        path = choice.file or default_path(home, wanted.environment_id or "")
        header, sealed = read_header(path)
        if not wanted.matches(header):
            raise FallbackWrongEnvironment(
                f"the fallback {path} holds environment {header.environment} on "
                f"{header.server}, not {wanted.describe()}"
            )
        return unseal(header, sealed, credential, path), path
    return _search(home / DIRECTORY, wanted, credential)


def _search(directory: Path, wanted: Wanted, credential: bytes) -> tuple[Fallback, Path]:
    """Return the newest fallback in `directory` for `wanted` that `credential` opens."""
    candidates = []
    for path in sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []:
        try:
            header, sealed = read_header(path)
        except FallbackError:
            continue  # another environment's broken file is not this run's problem
        if wanted.matches(header):
            candidates.append((header, sealed, path))
    if not candidates:
        raise FallbackMissing(f"no fallback for {wanted.describe()} in {directory}")
    candidates.sort(key=lambda found: found[0].written_at, reverse=True)
    refused: FallbackLocked | None = None
    for header, sealed, path in candidates:
        try:
            return unseal(header, sealed, credential, path), path
        except FallbackLocked as locked:  # another login's or token's, perhaps: go on
            refused = refused or locked
    raise refused or FallbackMissing(f"no fallback for {wanted.describe()} in {directory}")


def default_path(home: Path, environment_id: str) -> Path:
    """Return `$KAVACH_HOME/fallback/<environment id>.enc`."""
    if FILE_SAFE_ID.fullmatch(environment_id) is None:
        raise CliError("the server named the environment with an id unfit for a file name")
    return home / DIRECTORY / f"{environment_id}{SUFFIX}"


def _keep(
    cli: App,
    choice: Choice,
    credential: bytes,
    server: str,
    target: Target,
    summary: Object | None,
    values: dict[str, str],
) -> None:
    """Write the values just read to the fallback; a failure is a warning, not the run's end."""
    from kavach.cli.config import atomic_write

    path = choice.file or default_path(cli.home, target.id)
    try:
        if path.exists():
            read_header(path)  # never replace a file that is not a fallback
        text = seal(
            credential,
            server=server,
            environment_id=target.id,
            environment=target.name,
            version=_version_facts(summary),
            secrets=values,
        )
        if choice.file is None or not path.parent.exists():
            ensure_private_dir(path.parent)  # an existing directory the user named is theirs
        atomic_write(path, text, private_dir=False)
    except (OSError, FallbackError) as exc:
        reason = (
            exc.message if isinstance(exc, FallbackError) else (exc.strerror or type(exc).__name__)
        )
        _warn(f"Warning: the fallback {path} was not written: {reason}")
        return
    cli.log(f"wrote the fallback {path}")


def _check_age(opened: Fallback, path: Path, max_age: int | None) -> None:
    if max_age is not None and _seconds_old(opened) > max_age:
        raise FallbackTooOld(
            f"the fallback {path} was written {_age(opened)} ago, longer than "
            f"--fallback-max-age {age_text(max_age)} allows"
        )


def _seconds_old(opened: Fallback) -> float:
    return (datetime.now(UTC) - opened.header.written_at).total_seconds()


def _age(opened: Fallback) -> str:
    return age_text(_seconds_old(opened))


def _secrets(opened: Fallback) -> Secrets:
    return Secrets(f"environment {opened.header.environment}", opened.version, opened.secrets)


def _version_facts(summary: Object | None) -> dict[str, object] | None:
    """Keep what names the version (its id and number), nothing else the server said."""
    if summary is None:
        return None
    return {key: summary[key] for key in ("id", "seq") if key in summary}


def _warn(line: str) -> None:
    # Plain stderr, as `kavach run`'s other warnings; paths and names are neutralized.
    sys.stderr.write(neutralize(line) + "\n")
    sys.stderr.flush()
