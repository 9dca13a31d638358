"""End-to-end fixtures: servers started per test on the test's backend, and CLI users."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import LOG_SCANS
from tests.e2e.harness import (
    HOST,
    Cli,
    KavachServer,
    Launcher,
    ServerFactory,
    clean_environ,
    create_database,
    drop_database,
    free_port,
    kavach_command,
    wait_until_healthy,
    with_password,
)


@pytest.fixture
def start_server(backend: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """Return a function that starts a real server on the test's backend.

    Keyword arguments name settings without the prefix (`access_token_ttl_seconds=2`) and
    become KAVACH_* variables; `database_password` puts a password in the PostgreSQL URL;
    `share_data_with` runs another instance on an earlier server's data directory (so its
    keys) and database. Every server started is stopped at the end of the test and must exit
    cleanly; PostgreSQL databases are dropped.
    """
    with running_servers(backend, tmp_path) as start:
        yield start


@contextlib.contextmanager
def running_servers(backend: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """Give start_server's function, its servers' files under `tmp_path`, for one block.

    At the block's end every server it started is stopped and checked, and its databases
    dropped. Fixtures wider than a test (a module's shared server) use it directly.
    """
    servers: list[KavachServer] = []
    databases: list[str] = []

    def start(
        *,
        database_password: str | None = None,
        share_data_with: KavachServer | None = None,
        **settings: object,
    ) -> KavachServer:
        index = len(servers)
        root = tmp_path / f"server{index}"
        root.mkdir()
        port = free_port()
        data_dir = root / "data" if share_data_with is None else share_data_with.data_dir
        env = clean_environ(
            KAVACH_DATA_DIR=str(data_dir),
            KAVACH_ACCESS_TOKEN_TTL_SECONDS="900",
            KAVACH_DEVICE_POLL_INTERVAL_SECONDS="1",
            # Debug logging everywhere, so the leak scan below sees the most a server logs.
            KAVACH_LOG_LEVEL="DEBUG",
        )
        env.update({f"KAVACH_{key.upper()}": str(value) for key, value in settings.items()})
        database_name = None
        url: str | None = None
        if share_data_with is not None:
            database_name, url = share_data_with.database_name, share_data_with.database_url
        elif backend == "postgresql":
            database_name, url = create_database()
            databases.append(database_name)
        if url is not None:
            env["KAVACH_DATABASE_URL"] = (
                with_password(url, database_password) if database_password else url
            )
        stdout_path, stderr_path = root / "stdout.log", root / "stderr.log"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [*kavach_command(), "server", "start", "--host", HOST, "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=root,
            )
        server = KavachServer(
            url=f"http://{HOST}:{port}",
            port=port,
            data_dir=data_dir,
            env=env,
            database_name=database_name,
            process=process,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
        )
        servers.append(server)
        wait_until_healthy(server)
        return server

    try:
        yield start
    finally:
        unclean = []
        for running in servers:
            try:
                code = running.stop()
            except pytest.fail.Exception as exc:
                unclean.append(f"{running.url}: {exc}")
            else:
                if problem := running.unclean_exit(code):
                    unclean.append(f"{running.url}: {problem}:\n{running.stderr()}")
                found = leaks(running.stderr(), server_secrets(running))
                unclean += [f"{running.url} logged {leak}" for leak in found]
        for name in databases:
            drop_database(name)
        assert not unclean, "servers did not stop cleanly:\n" + "\n".join(unclean)


# Shapes of credentials that must never reach a log line: service, refresh and access tokens,
# bearer headers, private keys, and the GitHub tokens the fakes hand out.
LEAK_PATTERNS = [
    re.compile(r"kvt_[A-Za-z0-9_-]{20,}"),
    re.compile(r"kvr_[A-Za-z0-9_-]{20,}"),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}"),
    re.compile(r"Bearer [A-Za-z0-9._~+/-]{16,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY"),
    re.compile(r"gh[opsu]_[A-Za-z0-9_]{10,}"),
]
# Exact values shorter than this are not looked for: they would match unrelated text.
KNOWN_MIN_LENGTH = 8
SCANNED = LOG_SCANS  # summed over xdist workers and reported by tests/conftest.py


def leaks(log: str, known: Mapping[str, str] | None = None) -> list[str]:
    """Return the credentials in a server log, described and shortened, never whole.

    Looks for LEAK_PATTERNS and for the exact values in `known` (value -> what it is).
    """
    SCANNED["servers"] += 1
    SCANNED["lines"] += log.count("\n")
    found = [
        f"{pattern.pattern!r} at line {log[: match.start()].count(chr(10)) + 1}"
        for pattern in LEAK_PATTERNS
        for match in pattern.finditer(log)
    ]
    for value, what in (known or {}).items():
        if len(value) >= KNOWN_MIN_LENGTH and (at := log.find(value)) >= 0:
            line, more = log[:at].count("\n") + 1, log.count(value) - 1
            found.append(
                f"{what} ({len(value)} chars) at line {line}"
                + (f" and {more} more" if more else "")
            )
    return found


def server_secrets(server: KavachServer) -> dict[str, str]:
    """Return a server's keys (from its settings or generated keys file) and database password."""
    found: dict[str, str] = {}
    for name, value in server.env.items():
        if name.startswith("KAVACH_") and name.endswith(("_KEY", "_KEYS", "_SECRET")):
            found.update(dict.fromkeys(value.split(","), name))
    keys_file = server.data_dir / "keys.json"
    if keys_file.exists():
        for name, value in json.loads(keys_file.read_text(encoding="utf-8")).items():
            found.update(dict.fromkeys(str(value).split(","), f"{name} from keys.json"))
    if server.database_url and (password := make_url(server.database_url).password):
        found[str(password)] = "the database password"
    return found


@pytest.fixture
def launch() -> Iterator[Launcher]:
    """Return launch_server() for tests that build a server's whole environment themselves.

    At the end every server it started is scanned as start_server's are, killed ones too
    (their log up to the kill), for LEAK_PATTERNS, the server's own keys and the values the
    test passed to `known`. A server still running is stopped first, so its whole log is read.
    """
    launcher = Launcher()
    yield launcher
    found: list[str] = []
    for server in launcher.servers:
        if server.exit_code is None:
            with contextlib.suppress(pytest.fail.Exception):
                server.stop()
        known = {**server_secrets(server), **launcher.secrets}
        found += [f"{server.url} logged {leak}" for leak in leaks(server.stderr(), known)]
    assert not found, "servers logged credentials:\n" + "\n".join(found)


@pytest.fixture
def server(start_server: ServerFactory) -> KavachServer:
    """Start one server with the default e2e settings."""
    return start_server()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """Return the CLI of one user, with a home directory that does not exist yet."""
    user = Cli(tmp_path / "user" / ".kavach")
    user.home.parent.mkdir()
    yield user
    user.close()


@pytest.fixture
def make_cli(tmp_path: Path) -> Iterator[Callable[[str], Cli]]:
    """Return a function creating more CLI users, each with its own home."""
    made: list[Cli] = []

    def make(name: str) -> Cli:
        user = Cli(tmp_path / name / ".kavach")
        user.home.parent.mkdir()
        made.append(user)
        return user

    yield make
    for user in made:
        user.close()
