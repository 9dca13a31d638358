"""The end-to-end harness: real `kavach server start` processes and the real `kavach` CLI.

Everything listens on and talks to 127.0.0.1 only. A server gets a clean environment (no
inherited KAVACH_* variable), its own data directory and, on PostgreSQL, its own database.
The CLI runs with a private KAVACH_HOME and the file credential store.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
LOGIN_PROMPT_TIMEOUT = 20.0
USER_CODE_LINE = re.compile(r"code: ([A-Z0-9]{4}-[A-Z0-9]{4})\s*$")

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def kavach_command() -> list[str]:
    """Return the argv prefix that runs the installed `kavach` console script."""
    script = Path(sys.executable).with_name("kavach")
    if script.exists():
        return [str(script)]
    found = shutil.which("kavach")
    return [found] if found else [sys.executable, "-m", "kavach.cli"]


def clean_environ(**extra: str) -> dict[str, str]:
    """Return this process's environment without any KAVACH_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
    # No browser may open, output must not wrap, and Python output must not be buffered.
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        env.pop(name, None)
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", NO_COLOR="1")
    env.update(extra)
    return env


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own loop in a worker thread (the test's loop stays untouched)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


async def _admin_connect() -> Any:
    return await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)


def create_database() -> tuple[str, str]:
    """Create a fresh PostgreSQL database; return its name and URL."""
    name = f"kavach_e2e_{secrets.token_hex(4)}"

    async def create() -> None:
        try:
            admin = await _admin_connect()
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it or set "
                "KAVACH_TEST_POSTGRES_URL. Run `make test-sqlite` for the SQLite half only."
            )
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    _run_async(create)
    return name, _with_database(POSTGRES_ADMIN_URL, name)


def with_password(url: str, password: str) -> str:
    """Return a PostgreSQL URL with its password replaced."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def password_is_ignored() -> bool:
    """Tell whether the test PostgreSQL lets the admin in with any password (trust auth)."""
    wrong = with_password(POSTGRES_ADMIN_URL, f"wrong-{secrets.token_hex(8)}")

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(wrong, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return _run_async(probe)


def drop_database(name: str) -> None:
    """Drop a database created by create_database(), closing its connections."""

    async def drop() -> None:
        admin = await _admin_connect()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    _run_async(drop)


class CliResult(NamedTuple):
    """What one `kavach` run did."""

    code: int
    stdout: str
    stderr: str


class _Pump:
    """Read a pipe line by line in a thread, stamping each line with its arrival time."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """Return the first match of `pattern` in a line, waiting for it; None at EOF/timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _, line in self.lines:
                    if found := pattern.search(line):
                        return found
                remaining = deadline - time.monotonic()
                if self._done or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def text(self) -> str:
        """Return everything read so far."""
        with self._changed:
            return "".join(f"{line}\n" for _, line in self.lines)

    def join(self, timeout: float) -> None:
        """Wait for the pipe to close (the process has ended)."""
        self._thread.join(timeout)


@dataclass
class PendingLogin:
    """A `kavach login` running in the background, waiting for its code to be approved."""

    process: subprocess.Popen[str]
    code: str
    url: str
    stdout: _Pump
    stderr: _Pump

    def wait(self, timeout: float = CLI_TIMEOUT) -> CliResult:
        """Wait for the login to end and return its result."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"`kavach login` did not finish in {timeout} s:\n{self.stderr.text()}")
        self.stdout.join(5)
        self.stderr.join(5)
        return CliResult(code, self.stdout.text(), self.stderr.text())

    def stderr_lines(self) -> list[tuple[float, str]]:
        """Return the stderr lines read so far with the monotonic time each arrived."""
        return list(self.stderr.lines)


@dataclass
class Cli:
    """The `kavach` command line of one user: a private KAVACH_HOME, file credentials."""

    home: Path
    _logins: list[PendingLogin] = field(default_factory=list)

    @property
    def credentials_file(self) -> Path:
        """Return where the file store keeps credentials."""
        return self.home / "credentials.json"

    def env(self, server: str | None = None) -> dict[str, str]:
        """Return the environment a CLI process gets (KAVACH_SERVER only when given)."""
        extra = {
            "KAVACH_HOME": str(self.home),
            "KAVACH_CREDENTIAL_STORE": "file",
            "HOME": str(self.home.parent),
        }
        if server is not None:
            extra["KAVACH_SERVER"] = server
        return clean_environ(**extra)

    def run(self, *args: str, server: str | None = None, timeout: float = CLI_TIMEOUT) -> CliResult:
        """Run `kavach *args` to completion with stdin closed; return code, stdout, stderr."""
        return run_kavach(args, self.env(server), timeout=timeout)

    def run_json(self, *args: str, server: str | None = None) -> Any:
        """Run a command that prints JSON, insist it succeeded, and return the parsed output."""
        result = self.run(*args, server=server)
        assert result.code == 0, result
        return json.loads(result.stdout)

    def start_login(self, server: str, *extra: str) -> PendingLogin:
        """Start `kavach login --server URL --no-browser` and wait until it prints its code."""
        process = subprocess.Popen(
            [*kavach_command(), *extra, "login", "--server", server, "--no-browser"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.home.parent,
        )
        assert process.stdout is not None and process.stderr is not None
        out, err = _Pump(process.stdout), _Pump(process.stderr)
        found = err.wait_for(USER_CODE_LINE, LOGIN_PROMPT_TIMEOUT)
        url = err.wait_for(re.compile(r"^(https?://\S+)$"), 5) if found else None
        if found is None or url is None:
            process.kill()
            process.wait()
            pytest.fail(f"`kavach login` printed no code and URL:\n{err.text()}{out.text()}")
        login = PendingLogin(process, found.group(1), url.group(1), out, err)
        self._logins.append(login)
        return login

    def credentials(self) -> dict[str, Any]:
        """Return the credentials file's records per server ({} when there is no file)."""
        if not self.credentials_file.exists():
            return {}
        records: dict[str, Any] = json.loads(self.credentials_file.read_text(encoding="utf-8"))
        return records

    def tokens(self, server: str) -> tuple[str, str]:
        """Return the stored (access token, refresh token) for a server."""
        record = self.credentials()[server]
        return str(record["access_token"]), str(record["refresh_token"])

    def close(self) -> None:
        """Kill logins a failed test left running."""
        for login in self._logins:
            if login.process.poll() is None:
                login.process.kill()
                login.process.wait()


def run_kavach(
    args: tuple[str, ...] | list[str], env: Mapping[str, str], *, timeout: float = CLI_TIMEOUT
) -> CliResult:
    """Run `kavach *args` with stdin closed and a timeout."""
    try:
        done = subprocess.run(
            [*kavach_command(), *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`kavach {' '.join(args)}` did not finish in {timeout} s: {exc.stderr!r}")
    return CliResult(done.returncode, done.stdout, done.stderr)


@dataclass
class KavachServer:
    """A running `kavach server start` process and what it was started with."""

    url: str
    port: int
    data_dir: Path
    env: dict[str, str]
    database_name: str | None
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    exit_code: int | None = None

    @property
    def database_url(self) -> str | None:
        """Return KAVACH_DATABASE_URL as the server got it (None: SQLite)."""
        return self.env.get("KAVACH_DATABASE_URL")

    def admin(self, *args: str, timeout: float = CLI_TIMEOUT) -> CliResult:
        """Run `kavach server …` on the server's machine, with the server's environment."""
        return run_kavach(["server", *args], self.env, timeout=timeout)

    def approve(self, user_code: str, user: str) -> CliResult:
        """Approve a pending login with `kavach server approve CODE --user NAME`."""
        result = self.admin("approve", user_code, "--user", user)
        assert result.code == 0, result
        return result

    def stdout(self) -> str:
        """Return what the server printed on stdout so far."""
        return self.stdout_path.read_text(encoding="utf-8")

    def stderr(self) -> str:
        """Return what the server logged on stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8")

    def log_records(self) -> list[dict[str, Any]]:
        """Return the server's stderr as JSON records, failing on any line that is not one."""
        records = []
        for line in self.stderr().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"the server logged a line that is not JSON: {line!r}")
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def unclean_exit(self, code: int) -> str | None:
        """Say what was unclean about a stop that ended with `code`, or None.

        Uvicorn finishes its graceful shutdown and then re-raises SIGTERM, so a clean stop
        ends with 0 or -SIGTERM, after the application's shutdown completed.
        """
        if code not in (0, -signal.SIGTERM):
            return f"exited with {code}"
        records = self.log_records()
        if "Application shutdown complete." not in [record.get("event") for record in records]:
            return "did not finish its shutdown"
        failures = [r for r in records if r.get("level") in ("error", "critical")]
        if failures:
            return f"logged errors: {failures}"
        return None

    def stop(self) -> int:
        """Send SIGTERM, wait for the exit (killing after STOP_TIMEOUT) and return its code."""
        if self.exit_code is not None:
            return self.exit_code
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.exit_code = -signal.SIGKILL
                pytest.fail(f"the server ignored SIGTERM for {STOP_TIMEOUT} s; killed it")
        self.exit_code = self.process.returncode
        return self.exit_code

    def kill(self) -> int:
        """Send SIGKILL (no shutdown at all), wait for the exit and return its code."""
        if self.exit_code is None:
            self.process.kill()
            self.exit_code = self.process.wait(STOP_TIMEOUT)
        return self.exit_code


ServerFactory = Callable[..., KavachServer]


def launch_server(
    root: Path,
    env: Mapping[str, str],
    *,
    database_name: str | None = None,
    wait: bool = True,
    args: Sequence[str] = (),
) -> KavachServer:
    """Start `kavach server start` on a free port with exactly `env`, logging into `root`.

    `env` is the whole environment (build it with clean_environ); `args` are added to the
    command (`--workers 2`). With `wait`, return once the server answers /healthz;
    otherwise call wait_until_healthy() later.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stdout_path, stderr_path = root / "stdout.log", root / "stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*kavach_command(), "server", "start", "--host", HOST, "--port", str(port), *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=root,
        )
    server = KavachServer(
        url=f"http://{HOST}:{port}",
        port=port,
        data_dir=Path(env.get("KAVACH_DATA_DIR", root / "data")),
        env=dict(env),
        database_name=database_name,
        process=process,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )
    if wait:
        wait_until_healthy(server)
    return server


@dataclass
class Launcher:
    """launch_server() that keeps every server it started and the secrets a test handled.

    The `launch` fixture scans each started server's log for credentials at the end of the
    test, including servers the test killed; `known` adds exact values to look for.
    """

    servers: list[KavachServer] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # value -> what it is

    def __call__(
        self,
        root: Path,
        env: Mapping[str, str],
        *,
        database_name: str | None = None,
        wait: bool = True,
        args: Sequence[str] = (),
    ) -> KavachServer:
        """Start a server as launch_server() does and remember it."""
        server = launch_server(root, env, database_name=database_name, wait=False, args=args)
        self.servers.append(server)
        if wait:
            wait_until_healthy(server)
        return server

    def known(self, what: str, *values: str) -> None:
        """Add secret values or tokens (`what` names them) that no server may log."""
        self.secrets.update(dict.fromkeys(values, what))


def wait_until_healthy(server: KavachServer) -> None:
    """Poll GET /healthz until it answers 200; fail with the server's stderr otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"the server exited with {server.process.returncode} before answering:\n"
                    f"{server.stderr()}"
                )
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    server.process.kill()
    server.process.wait()
    pytest.fail(f"the server did not answer /healthz in {START_TIMEOUT} s:\n{server.stderr()}")


def stored_literally(values: Mapping[str, str]) -> dict[str, str]:
    """Return values as they must be stored to read (and sync) exactly as given: each `${`
    written `$${`, so none is taken for a reference."""
    return {name: value.replace("${", "$${") for name, value in values.items()}
