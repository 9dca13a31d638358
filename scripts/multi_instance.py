"""Run several Kavach servers on one fresh PostgreSQL database behind nginx, all on 127.0.0.1.

    .venv/bin/python scripts/multi_instance.py [--instances 3] [--port PORT]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--keep]

The servers run in production mode with the same explicitly configured keys, after one
`kavach server migrate`, like the replicas of deploy/compose.yaml. nginx (Debian's package
is enough) runs in the foreground with deploy/nginx.conf, rewritten to listen on 127.0.0.1
and to balance over the local servers. Ctrl-C stops everything and drops the database and
the working directory (logs, settings) unless --keep. While it runs, approve logins with
the printed `kavach server approve` command.

tests/e2e/test_multi_instance.py drives the same set-up; `render_nginx_conf` and `Nginx`
are shared with it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf"
DEFAULT_POSTGRES = os.environ.get(
    "KAVACH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxError(RuntimeError):
    """nginx is missing, its configuration is unusable, or it did not start."""


def generate_key() -> str:
    """Return a fresh key: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def shared_environment(*, database_url: str, public_url: str) -> dict[str, str]:
    """Return the KAVACH_* settings every instance of one deployment shares."""
    return {
        "KAVACH_MODE": "production",
        "KAVACH_DATABASE_URL": database_url,
        "KAVACH_JWT_SIGNING_KEY": generate_key(),
        "KAVACH_SECRET_ENCRYPTION_KEY": generate_key(),
        "KAVACH_PROVIDER_CREDENTIAL_KEY": generate_key(),
        "KAVACH_ENABLE_LOCAL_IDP": "true",
        "KAVACH_PUBLIC_URL": public_url,
        "KAVACH_TRUSTED_PROXIES": HOST,
        "KAVACH_AUTO_MIGRATE": "false",
        "KAVACH_DEVICE_POLL_INTERVAL_SECONDS": "1",
        "KAVACH_LOG_FORMAT": "json",
    }


def _replace_once(pattern: str, replacement: str, text: str, what: str) -> str:
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise NginxError(f"nginx template: expected one {what}, found {count}")
    return result


def render_nginx_conf(
    template: str, *, listen: str, upstreams: Sequence[str], runtime_dir: Path
) -> str:
    """Rewrite deploy/nginx.conf for a local run: address, upstream servers, file paths.

    Everything else (headers, timeouts, retries, keepalive) stays as deployed. Raises
    NginxError when the template no longer has the shape this relies on.
    """
    if not upstreams:
        raise NginxError("nginx needs at least one upstream server")
    text = _replace_once(r"^(\s*)pid\s+[^;]+;", rf"\1pid {runtime_dir}/nginx.pid;", template, "pid")
    text = _replace_once(
        r"^(\s*)error_log\s+\S+", rf"\1error_log {runtime_dir}/error.log", text, "error_log"
    )
    text = _replace_once(
        r"^(\s*)access_log\s+(?!off)\S+",
        rf"\1access_log {runtime_dir}/access.log",
        text,
        "access_log with a path",
    )
    text = _replace_once(r"^(\s*)listen\s+[^;]+;", rf"\1listen {listen};", text, "listen")
    block = re.search(r"^\s*upstream\s+\S+\s*\{(?P<body>[^}]*)\}", text, flags=re.MULTILINE)
    if block is None:
        raise NginxError("nginx template: no upstream block")
    servers = list(re.finditer(r"^(\s*)server\s+(\S+)([^;]*);\n", block["body"], re.MULTILINE))
    if not servers:
        raise NginxError("nginx template: no server in the upstream block")
    indent, _address, params = servers[0].groups()
    lines = "".join(f"{indent}server {address}{params};\n" for address in upstreams)
    body = block["body"][: servers[0].start()] + lines + block["body"][servers[-1].end() :]
    text = text[: block.start("body")] + body + text[block.end("body") :]
    temp = "".join(f"    {name}_temp_path {runtime_dir}/temp/{name};\n" for name in _TEMP_PATHS)
    return _replace_once(r"^http\s*\{\n", f"http {{\n{temp}", text, "http block")


def nginx_binary() -> str:
    """Return the nginx executable (root's PATH has /usr/sbin; other users' may not)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise NginxError("nginx is not installed (Debian: apt-get install -y nginx-light)")
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Nginx:
    """nginx in the foreground (`daemon off`) with a rendered config in its own directory."""

    port: int
    runtime_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Return the base URL nginx listens on."""
        return f"http://{HOST}:{self.port}"

    @classmethod
    def start(
        cls,
        upstreams: Sequence[str],
        *,
        port: int | None = None,
        template: Path = NGINX_TEMPLATE,
        timeout: float = 10.0,
    ) -> Nginx:
        """Render the template for `upstreams`, start nginx and wait until it accepts."""
        binary = nginx_binary()
        port = port or free_port()
        # Outside any private temp tree: when started as root, nginx's workers run as an
        # unprivileged user that must reach the temp directories below.
        runtime_dir = Path(tempfile.mkdtemp(prefix="kavach-nginx-"))
        runtime_dir.chmod(0o711)
        (runtime_dir / "temp").mkdir(mode=0o711)
        conf = runtime_dir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                template.read_text(encoding="utf-8"),
                listen=f"{HOST}:{port}",
                upstreams=upstreams,
                runtime_dir=runtime_dir,
            ),
            encoding="utf-8",
        )
        command = [binary, "-p", str(runtime_dir), "-c", str(conf), "-e", "stderr"]
        checked = subprocess.run(  # noqa: S603 - our argv, no shell
            [*command, "-t", "-q"], capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            shutil.rmtree(runtime_dir, ignore_errors=True)
            raise NginxError(f"nginx -t rejected the configuration:\n{checked.stderr}")
        with (runtime_dir / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - our argv, no shell
                [*command, "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        nginx = cls(port=port, runtime_dir=runtime_dir, process=process)
        if not _wait_for_port(port, process, timeout):
            logs = nginx.logs()
            nginx.stop()
            raise NginxError(f"nginx did not start listening on {HOST}:{port}:\n{logs}")
        return nginx

    def logs(self) -> str:
        """Return nginx's start-up output and error log (for failure messages)."""
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.runtime_dir / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(encoding='utf-8', errors='replace')}")
        return "\n".join(parts)

    def access_log(self) -> list[str]:
        """Return the access log's lines."""
        path = self.runtime_dir / "access.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def stop(self, *, keep_files: bool = False, timeout: float = 10.0) -> int:
        """Stop nginx (fast shutdown, then kill), remove its directory and return its code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_files:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return self.process.returncode


# --- the command ---------------------------------------------------------------------------


def _kavach() -> str:
    script = Path(sys.executable).with_name("kavach")
    found = str(script) if script.exists() else shutil.which("kavach")
    if found is None:
        raise SystemExit("kavach is not installed here; run this with the project's .venv")
    return found


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def _database(admin_url: str, *, keep: bool) -> Iterator[str]:
    name = f"kavach_multi_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin_url, name)
    finally:
        if keep:
            print(f"kept database {name}", flush=True)
        else:
            asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


@contextmanager
def _servers(count: int, env: Mapping[str, str], workdir: Path) -> Iterator[list[str]]:
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for index in range(count):
            port = free_port()
            log = workdir / f"kavach-{index + 1}.log"
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(  # noqa: S603 - our argv, no shell
                        [_kavach(), "server", "start", "--host", HOST, "--port", str(port)],
                        env=dict(env),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=out,
                    )
                )
            urls.append(f"http://{HOST}:{port}")
        for url, process in zip(urls, processes, strict=True):
            if not _healthy(url, process):
                raise SystemExit(f"the server for {url} did not start; see {workdir}")
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(35)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_signal() -> None:
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not received:
        signal.pause()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the servers and nginx, print how to reach them, and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=3, help="servers to run (default 3)")
    parser.add_argument("--port", type=int, default=0, help="nginx's port (default: a free one)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin database URL")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, logs and settings at the end"
    )
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    port = args.port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="kavach-multi-"))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        database_url = stack.enter_context(_database(args.postgres, keep=args.keep))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
        settings = shared_environment(database_url=database_url, public_url=f"http://{HOST}:{port}")
        env.update(settings)
        env_file = workdir / "server.env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
        migrated = subprocess.run(  # noqa: S603 - our argv, no shell
            [_kavach(), "server", "migrate"], env=env, stdin=subprocess.DEVNULL, check=False
        )
        if migrated.returncode != 0:
            return migrated.returncode
        urls = stack.enter_context(_servers(args.instances, env, workdir))
        nginx = Nginx.start([url.removeprefix("http://") for url in urls], port=port)
        stack.callback(nginx.stop, keep_files=args.keep)
        print(f"nginx:     {nginx.url}  (config and logs in {nginx.runtime_dir})")
        for index, url in enumerate(urls, start=1):
            print(f"kavach-{index}:  {url}")
        print(f"logs and settings: {workdir}")
        print(f"log in:    kavach login --server {nginx.url}")
        print(f"approve:   KAVACH_ENV_FILE={env_file} {_kavach()} server approve CODE --user NAME")
        print("Ctrl-C stops everything.", flush=True)
        _wait_for_signal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
