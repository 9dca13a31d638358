"""Secrets end to end: versions, diffs, rollback, conflicts, exports, `kavach run`, keys.

Everything is driven through the real CLI against real servers on SQLite and PostgreSQL;
the HTTP API is called directly only where the CLI cannot show the point (a 404, a 409, a
reader running while keys rotate).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from kavach.server.crypto.envelope import key_id
from kavach.server.crypto.keys import decode_key
from tests.e2e.harness import (
    CLI_TIMEOUT,
    Cli,
    CliResult,
    KavachServer,
    ServerFactory,
    kavach_command,
    run_kavach,
    stored_literally,
)

pytestmark = pytest.mark.e2e

ORG, GROUP = "acme", "web"
DEV, PROD = "dev", "prod"
MASK = "••••••"
VERSION_ID = r"[a-z0-9]{8}"

# Prints the named environment variables as one JSON object (ASCII, so any locale is fine).
DUMP_ENV = "import json, os, sys; print(json.dumps({k: os.environ[k] for k in sys.argv[1:]}))"

# Values every output must carry byte for byte; each name is a valid shell variable name.
AWKWARD = {
    "MULTILINE": "first line\nsecond line\n\n  indented last line\n",
    "QUOTES": "it's a \"double\" and 'single' quoted value",
    "DOLLARS": "$HOME $1 $$ $ and a lone $",
    "BRACES": "${HOME}/x ${UNSET:-fallback} ${}",
    "SUBSHELL": "$(echo injected) and `echo injected`",
    "EQUALS": "a=b==c=",
    "HASHES": "#not a comment # nor this one",
    "BACKSLASHES": "C:\\Users\\kavach\\ \\n is not a newline \\t nor a tab \\",
    "SPACES": "   leading and trailing   ",
    "EMPTY": "",
    "UNICODE": "héllo wörld ✓ 日本語 🔑 ﷽",
    "TABS": "\tcolumn one\tcolumn two\t",
    "SEMICOLONS": "x; rm -rf /tmp/nothing; echo done #",
    "SINGLE_QUOTE": "'",
    "CRLF": "windows\r\nline endings\r\n",
    "DOLLAR_AND_QUOTE": "it's $5 (or `five`)",
    "ESCAPED_DOLLAR": "\\$NOT_EXPANDED \\`nor this\\`",
    "DOLLAR_AND_BACKSLASH": "costs $5\\",
}
# What `secret export --format dotenv` refuses (its --help names the rules): a carriage
# return, or a $ or ` together with a ', two backslashes or a trailing backslash.
NOT_DOTENV = ("CRLF", "DOLLAR_AND_QUOTE", "DOLLAR_AND_BACKSLASH")
DOTENV_SAFE = {name: value for name, value in AWKWARD.items() if name not in NOT_DOTENV}


# --- helpers -------------------------------------------------------------------------------


def _ok(result: CliResult) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def _refused(result: CliResult, code: int, message: str) -> None:
    """Insist a command failed with `code` and printed exactly `message` as its error."""
    assert result.code == code, result
    assert result.stderr.strip().splitlines()[-1] == f"Error: {message}", result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def _log_in(server: KavachServer, *users: tuple[Cli, str]) -> None:
    """Log CLI homes in side by side, each approved headlessly as the given user."""
    pending = [(cli.start_login(server.url), name) for cli, name in users]
    for login, name in pending:
        server.approve(login.code, name)
    for login, name in pending:
        result = login.wait()
        assert result.code == 0, result
        assert result.stdout.strip() == f"Logged in as {name} on {server.url}"


def _build_tree(owner: Cli, *envs: str) -> dict[str, str]:
    """Create ORG/GROUP and the environments, activate ORG/GROUP/DEV; return their ids."""
    _ok(owner.run("org", "create", ORG))
    _ok(owner.run("org", "activate", ORG))
    _ok(owner.run("group", "create", GROUP))
    _ok(owner.run("group", "activate", GROUP))
    ids = {name: owner.run_json("env", "create", name, "--json")["id"] for name in envs}
    _ok(owner.run("env", "activate", DEV))
    return ids


def _committed(result: CliResult, seq: int, summary: str, count: int, env: str = DEV) -> str:
    """Insist a commit or push printed its one line; return the new version's id."""
    line = _ok(result).splitlines()[-1]
    found = re.fullmatch(
        rf"Committed v{seq} \(({VERSION_ID})\) to environment {ORG}/{GROUP}/{env}: "
        rf"{re.escape(summary)}; {count} secret\(s\) in all\.",
        line,
    )
    assert found is not None, result
    return found.group(1)


def _rows(text: str) -> list[list[str]]:
    """Return the body rows of the (tab-separated) tables in `text`, each as its cells."""
    rows: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if "\t" in line and in_table:
            rows.append(line.split("\t"))
        in_table = "\t" in line  # a table's first line is its header
    return rows


def _api(server: KavachServer, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kwargs,
    )


def _expect(response: httpx.Response, status: int, error_code: str | None = None) -> Any:
    """Insist on a status and envelope error code; return the envelope's data."""
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["success"] is (error_code is None), envelope
    assert envelope["error_code"] == error_code, envelope
    return envelope["data"]


def _kavach_bytes(env: Mapping[str, str], *args: str) -> bytes:
    """Run `kavach *args` and return its stdout as bytes (no newline translation)."""
    done = subprocess.run(
        [*kavach_command(), *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done
    return done.stdout


def _dump_env(argv: list[str], names: list[str], *, cwd: Path | None = None) -> dict[str, str]:
    """Run `argv` (which ends by running a command) with a dump of `names` as that command."""
    done = subprocess.run(
        [*argv, sys.executable, "-c", DUMP_ENV, *names],
        env={"PATH": os.environ["PATH"], "PYTHONUTF8": "1"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done
    values: dict[str, str] = json.loads(done.stdout)
    return values


def _run_dump(env: Mapping[str, str], names: list[str]) -> dict[str, str]:
    """Return what `kavach run -- python …` sees of `names` in its environment."""
    result = run_kavach(
        ["run", "--", sys.executable, "-c", DUMP_ENV, *names], {**env, "PYTHONUTF8": "1"}
    )
    values: dict[str, str] = json.loads(_ok(result))
    return values


# --- 1. versions, diffs, rollback, history, conflicts, foreign version ids ------------------


def test_versions_diffs_rollback_history_and_conflicts(
    start_server: ServerFactory, make_cli: Callable[[str], Cli]
) -> None:
    server = start_server()
    alice, laptop = make_cli("alice"), make_cli("alice-laptop")
    _log_in(server, (alice, "alice"), (laptop, "alice"))
    env_ids = _build_tree(alice, DEV, PROD)
    dev_path = f"/environments/{env_ids[DEV]}/secrets"
    token = alice.tokens(server.url)[0]

    # Stage, review masked, commit.
    _ok(alice.run("secret", "add", "A=1", "B=2"))
    status = _ok(alice.run("secret", "status"))
    assert _rows(status) == [["added", "A", MASK], ["added", "B", MASK]], status
    v1 = _committed(alice.run("secret", "commit", "-m", "first", "--yes"), 1, "2 added", 2)

    _ok(alice.run("secret", "add", "B=3"))
    _ok(alice.run("secret", "remove", "A"))
    second = alice.run("secret", "commit", "-m", "second", "--yes")
    v2 = _committed(second, 2, "1 modified, 1 removed", 1)

    listed = alice.run_json("secret", "list", "--json")
    assert listed["next"] is None
    assert [
        (v["id"], v["seq"], v["parent_id"], v["message"], v["secret_count"], v["rollback_of"])
        for v in listed["items"]
    ] == [(v2, 2, v1, "second", 1, None), (v1, 1, None, "first", 2, None)]
    for version in listed["items"]:
        assert version["author"]["type"] == "user"
        assert version["author"]["label"] == "alice"

    details = alice.run_json("secret", "details", "-v", v1, "--json", "--reveal")
    assert details["id"] == v1 and details["message"] == "first"
    assert details["secrets"] == {"A": "1", "B": "2"}
    assert _ok(alice.run("secret", "get", "B")) == "3"

    # Diffs: latest against its parent (names only), two named versions (values shown).
    diff = alice.run_json("secret", "diff", "--json")
    assert (diff["from_version"]["id"], diff["to_version"]["id"]) == (v1, v2)
    assert diff["changes"] == [
        {"name": "B", "change": "modified", "old": None, "new": None},
        {"name": "A", "change": "removed", "old": None, "new": None},
    ]
    assert diff["unchanged"] == 0
    shown = alice.run("secret", "diff", "-f", v1, "-t", v2, "--reveal")
    assert _rows(_ok(shown)) == [["modified", "B", "2 → 3"], ["removed", "A", "1"]], shown
    assert shown.stderr.strip() == "1 modified, 1 removed; 0 unchanged."

    # Another environment: prod holds B=4 and P=9; dev (B=3) compared to it.
    _ok(alice.run("secret", "add", "B=4", "P=9", "--env", PROD))
    prod_v1 = _committed(
        alice.run("secret", "commit", "-m", "prod", "--yes", "--env", PROD), 1, "2 added", 2, PROD
    )
    across = alice.run_json("secret", "diff", "--env-to", PROD, "--json", "--reveal")
    assert (across["from_environment"], across["to_environment"]) == (
        f"{ORG}/{GROUP}/{DEV}",
        f"{ORG}/{GROUP}/{PROD}",
    )
    assert (across["from_version"]["id"], across["to_version"]["id"]) == (v2, prod_v1)
    assert across["changes"] == [
        {"name": "P", "change": "added", "old": None, "new": "9"},
        {"name": "B", "change": "modified", "old": "3", "new": "4"},
    ]

    # Rollback makes a new version with the old secrets.
    rolled = _ok(alice.run("secret", "rollback", "-v", v1, "-m", "back", "--yes"))
    found = re.search(
        rf"^Rolled back: v3 \(({VERSION_ID})\) of environment {ORG}/{GROUP}/{DEV} holds the "
        rf"secrets of v1 \({v1}\)\.$",
        rolled,
        re.MULTILINE,
    )
    assert found is not None, rolled
    v3 = found.group(1)
    latest = alice.run_json("secret", "details", "-v", v3, "--json", "--reveal")
    assert (latest["parent_id"], latest["rollback_of"], latest["message"]) == (v2, v1, "back")
    assert latest["secrets"] == {"A": "1", "B": "2"}

    history = alice.run_json("secret", "history", "B", "--json", "--reveal")
    assert [(e["version"]["id"], e["change"], e["value"]) for e in history] == [
        (v3, "modified", "2"),
        (v2, "modified", "3"),
        (v1, "added", "2"),
    ]
    assert [e["version"]["message"] for e in history] == ["back", "second", "first"]

    # A conflict: two homes of alice stage on v3; the second commit is refused, staging kept.
    where = ("--org", ORG, "--group", GROUP, "--env", DEV)
    _ok(laptop.run("secret", "add", "B=20", "Z=26", *where))
    _ok(alice.run("secret", "add", "A=10", "C=30"))
    v4 = _committed(
        alice.run("secret", "commit", "-m", "desk", "--yes"), 4, "1 added, 1 modified", 3
    )
    refused = laptop.run("secret", "commit", "-m", "laptop", "--yes", *where)
    _refused(
        refused,
        4,
        f"environment {ORG}/{GROUP}/{DEV} moved on from {v3} to v4 ({v4}) (version_conflict)",
    )
    assert f"Changed in environment {ORG}/{GROUP}/{DEV} since {v3}: A, C." in refused.stderr
    assert "Your staged changes are kept" in refused.stderr
    assert "Committed" not in refused.stdout
    kept = laptop.run_json("secret", "status", "--json", "--reveal", *where)
    assert (kept["base_version"], kept["set"], kept["unset"]) == (v3, ["B", "Z"], [])
    assert kept["moved_on"] is True and kept["latest_version"]["id"] == v4
    assert kept["changes"] == [
        {"name": "Z", "change": "added", "old": None, "new": "26"},
        {"name": "B", "change": "modified", "old": "2", "new": "20"},
    ]
    rebased = laptop.run_json("secret", "rebase", "--json", *where)
    assert (rebased["base_version"], rebased["changed"], rebased["overridden"]) == (
        v4,
        ["A", "C"],
        [],
    )
    again = laptop.run("secret", "commit", "-m", "laptop", "--yes", *where)
    v5 = _committed(again, 5, "1 added, 1 modified", 4)
    merged = _expect(_api(server, token, "GET", dev_path), 200)
    assert merged["version"]["id"] == v5
    assert merged["secrets"] == {"A": "10", "B": "20", "C": "30", "Z": "26"}

    # The server refuses a stale parent itself too, naming what changed since.
    stale = {"message": "stale", "set": {"Q": "1"}, "parent_version": v3}
    conflict = _expect(
        _api(server, token, "POST", f"{dev_path}/versions", json=stale), 409, "version_conflict"
    )
    assert conflict["changed"] == ["A", "B", "C", "Z"]
    assert conflict["latest_version"]["id"] == v5

    # A version of prod is not a version of dev: not found, from the CLI and the API.
    missing = f"version '{prod_v1}' not found in this environment (not_found)"
    _refused(alice.run("secret", "details", "-v", prod_v1, "--env", DEV), 4, missing)
    _refused(alice.run("secret", "get", "B", "-v", prod_v1, "--env", DEV), 4, missing)
    for path, params in [
        (dev_path, {"version": prod_v1}),
        (f"{dev_path}/versions/{prod_v1}", {}),
        (f"{dev_path}/diff", {"from": prod_v1}),
    ]:
        _expect(_api(server, token, "GET", path, params=params), 404, "not_found")
    rollback = {"version_id": prod_v1, "commit_message": "x"}
    _expect(_api(server, token, "POST", f"{dev_path}/rollback", json=rollback), 404, "not_found")
    listed = _expect(_api(server, token, "GET", f"{dev_path}/versions"), 200)
    assert (len(listed["items"]), listed["next"]) == (5, None)


# --- 2. awkward values through push, export, shells, python-dotenv and `kavach run` ---------


def test_awkward_values_round_trip_through_exports_run_and_a_service_token(
    start_server: ServerFactory, make_cli: Callable[[str], Cli], tmp_path: Path
) -> None:
    server = start_server()
    alice, ci = make_cli("alice"), make_cli("ci")
    _log_in(server, (alice, "alice"))
    _build_tree(alice, DEV, PROD)
    names = sorted(AWKWARD)
    work = tmp_path / "work"
    work.mkdir()

    source = work / "awkward.json"
    # Stored with each `${` written `$${`, so none is a reference: read, they are AWKWARD.
    stored = stored_literally(AWKWARD)
    source.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    pushed = alice.run("secret", "push", "-f", str(source), "-m", "awkward", "--replace", "--yes")
    _committed(pushed, 1, f"{len(AWKWARD)} added", len(AWKWARD))

    # JSON: to a 0600 file, refused over an existing file unless --force.
    out = work / "out.json"
    written = _ok(alice.run("secret", "export", "--format", "json", "-o", str(out)))
    assert written.startswith(f"Wrote {len(AWKWARD)} secret(s) of environment {ORG}/{GROUP}/{DEV}")
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_bytes().decode("utf-8")) == AWKWARD
    before = out.read_bytes()
    _refused(
        alice.run("secret", "export", "--format", "json", "-o", str(out)),
        1,
        f"{out} exists; pass --force to overwrite it",
    )
    assert out.read_bytes() == before
    _ok(alice.run("secret", "export", "--format", "json", "-o", str(out), "--force"))
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_bytes().decode("utf-8")) == AWKWARD

    # Shell: `export NAME='…'` lines, evaluated by bash and by sh.
    shell_file = work / "out.sh"
    _ok(alice.run("secret", "export", "--format", "shell", "-o", str(shell_file)))
    assert shell_file.stat().st_mode & 0o777 == 0o600
    for shell in ("bash", "sh"):
        evaluated = [shell, "-c", 'eval "$(cat "$1")"; shift; exec "$@"', shell, str(shell_file)]
        assert _dump_env(evaluated, names) == AWKWARD, shell

    # `kavach get` prints exactly the value, whatever it holds.
    for name in ("MULTILINE", "CRLF", "UNICODE"):
        assert _kavach_bytes(alice.env(), "secret", "get", name) == AWKWARD[name].encode()

    # `kavach run`: the command sees every value; its exit status is kavach's.
    assert _run_dump(alice.env(), names) == AWKWARD
    assert alice.run("run", "--", "sh", "-c", "exit 7").code == 7

    # A secret named PATH does not replace the real PATH (reserved), and kavach says so.
    path_file = work / "path.json"
    path_file.write_text(json.dumps({"PATH": "/nowhere"}), encoding="utf-8")
    _committed(
        alice.run("secret", "push", "-f", str(path_file), "-m", "path", "--yes"),
        2,
        "1 added",
        len(AWKWARD) + 1,
    )
    echoed = alice.run("run", "--", "sh", "-c", 'printf %s "$PATH"')
    assert _ok(echoed) == alice.env()["PATH"]
    assert echoed.stderr == (
        "Warning: PATH not set: reserved (who and where the user is); --allow-env PATH sets it\n"
    )

    # dotenv: values no quoting carries for both readers are refused, by name.
    _refused(
        alice.run("secret", "export"),
        1,
        "these secrets cannot be written as dotenv that python-dotenv and bash read alike: "
        "CRLF (a carriage return); DOLLAR_AND_BACKSLASH, DOLLAR_AND_QUOTE "
        "($ or ` together with ', \\\\ or a trailing \\); --format shell carries them all "
        "(so do json and yaml); --skip-invalid exports the others",
    )
    # The rest, pushed to prod, read back exactly by python-dotenv and by bash.
    safe = work / "safe.json"
    stored_safe = stored_literally(DOTENV_SAFE)
    safe.write_text(json.dumps(stored_safe, ensure_ascii=False), encoding="utf-8")
    to_prod = alice.run("secret", "push", "-f", str(safe), "-m", "dotenv", "--yes", "--env", PROD)
    _committed(to_prod, 1, f"{len(DOTENV_SAFE)} added", len(DOTENV_SAFE), PROD)
    dotenv_file = work / "prod.env"
    exported = alice.run("secret", "export", "-o", str(dotenv_file), "--env", PROD)
    _ok(exported)
    assert "BRACES" in exported.stderr and "interpolate=False" in exported.stderr
    assert dotenv_file.stat().st_mode & 0o777 == 0o600
    assert dotenv_values(dotenv_file, interpolate=False) == DOTENV_SAFE
    sourced = ["bash", "-c", 'set -a; . ./prod.env; set +a; exec "$@"', "bash"]
    assert _dump_env(sourced, sorted(DOTENV_SAFE), cwd=work) == DOTENV_SAFE

    # A viewer service token in a home that never logged in: run, export and get work.
    created = alice.run("token", "create", "ci", "-r", "viewer", "--env", DEV)
    token = _ok(created).strip()
    assert token.startswith("kvt_"), created
    as_ci = {**ci.env(server.url), "KAVACH_TOKEN": token}
    assert _run_dump(as_ci, names) == AWKWARD
    exported_by_ci = run_kavach(["secret", "export", "--format", "json"], as_ci)
    assert json.loads(_ok(exported_by_ci)) == {**AWKWARD, "PATH": "/nowhere"}
    assert _kavach_bytes(as_ci, "secret", "get", "CRLF") == AWKWARD["CRLF"].encode()
    assert not ci.credentials_file.exists()


# --- 3. encryption at rest, key rotation under reads ----------------------------------------


@dataclass
class Reader:
    """Read an environment's secrets in a loop from some servers, recording every answer."""

    token: str
    path: str
    expected: dict[str, str]
    servers: list[KavachServer]
    reads: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, server: KavachServer) -> None:
        """Read from `server` too from now on."""
        with self.lock:
            self.servers.append(server)

    def count(self, server: KavachServer) -> int:
        """Return how many good reads `server` answered so far."""
        with self.lock:
            return self.reads.get(server.url, 0)

    def run(self) -> None:
        clients: dict[str, httpx.Client] = {}
        try:
            while not self.stop.is_set():
                with self.lock:
                    current = list(self.servers)
                for server in current:
                    client = clients.setdefault(
                        server.url,
                        httpx.Client(
                            base_url=f"{server.url}/api/v1",
                            headers={"Authorization": f"Bearer {self.token}"},
                            timeout=10,
                        ),
                    )
                    self._read(client, server)
                self.stop.wait(0.01)  # leave the two servers some CPU for the rotations
        finally:
            for client in clients.values():
                client.close()

    def _read(self, client: httpx.Client, server: KavachServer) -> None:
        try:
            response = client.get(self.path)
            secrets_read = response.json()["data"]["secrets"] if response.is_success else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            with self.lock:
                self.failures.append(f"{server.url}: {exc!r}")
            return
        with self.lock:
            if secrets_read == self.expected:
                self.reads[server.url] = self.reads.get(server.url, 0) + 1
            else:
                self.failures.append(f"{server.url}: {response.status_code} {response.text}")

    def wait_for_reads(self, server: KavachServer, more: int, timeout: float = 15.0) -> None:
        """Wait until `server` answered `more` further good reads."""
        target = self.count(server) + more
        deadline = time.monotonic() + timeout
        while self.count(server) < target:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"{server.url}: too few reads"
            time.sleep(0.02)


def _keys(data_dir: Path) -> dict[str, str]:
    keys: dict[str, str] = json.loads((data_dir / "keys.json").read_text(encoding="utf-8"))
    return keys


def _secret_key_id(encoded: str) -> str:
    return key_id(decode_key("secret_encryption_key", encoded))


def _rotated(server: KavachServer) -> str:
    """Run `kavach server rotate-key`; return the new active key's id."""
    result = server.admin("rotate-key")
    assert result.code == 0, result
    found = re.match(
        r"Active secret-encryption key is ([0-9a-f]{16}); re-wrapped 1 data key\(s\)\.\n",
        result.stdout,
    )
    assert found is not None, result
    return found.group(1)


def _database_dump(server: KavachServer) -> bytes:
    """Return every byte the database holds: SQLite's files, or a PostgreSQL data dump."""
    if server.database_url is None:
        files = sorted(server.data_dir.glob("kavach.db*"))
        assert files, f"no SQLite database in {server.data_dir}"
        return b"".join(path.read_bytes() for path in files)
    url = make_url(server.database_url).set(drivername="postgresql")
    done = subprocess.run(
        ["pg_dump", "--data-only", url.render_as_string(hide_password=False)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_values_stay_encrypted_and_readable_while_keys_rotate(
    start_server: ServerFactory, make_cli: Callable[[str], Cli]
) -> None:
    server = start_server()
    alice = make_cli("alice")
    _log_in(server, (alice, "alice"))
    env_ids = _build_tree(alice, DEV)
    marker = f"plaintext-canary-{secrets.token_hex(12)}"
    expected = {"CANARY_SECRET": marker, "DATABASE_URL": "postgres://app:pw@db/app"}
    _ok(alice.run("secret", "add", *(f"{name}={value}" for name, value in expected.items())))
    _committed(alice.run("secret", "commit", "-m", "canary", "--yes"), 1, "2 added", 2)
    keys_before = _keys(server.data_dir)
    original = _secret_key_id(keys_before["secret_encryption_key"])

    # A second instance on the same data, which reads nothing until the key has rotated:
    # its keyring is then stale, and the data key is wrapped by a key it never loaded.
    replica = start_server(share_data_with=server)
    reader = Reader(
        token=alice.tokens(server.url)[0],
        path=f"/environments/{env_ids[DEV]}/secrets",
        expected=expected,
        servers=[server],
    )
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    try:
        reader.wait_for_reads(server, 3)
        first = _rotated(server)
        reader.add(replica)
        reader.wait_for_reads(replica, 3)
        reader.wait_for_reads(server, 3)
        second = _rotated(server)
        reader.wait_for_reads(replica, 3)
        reader.wait_for_reads(server, 3)
        retired = server.admin("retire-keys")
        assert retired.code == 0, retired
        dropped = re.fullmatch(r"Retired: (.*)\.\n", retired.stdout)
        assert dropped is not None, retired
        assert set(dropped.group(1).split(", ")) == {original, first}
        reader.wait_for_reads(replica, 3)
        reader.wait_for_reads(server, 3)
    finally:
        reader.stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert not reader.failures, reader.failures
    assert len({original, first, second}) == 3

    again = server.admin("retire-keys")
    assert (again.code, again.stdout) == (0, "Retired: none.\n"), again
    keys_after = _keys(server.data_dir)
    assert (server.data_dir / "keys.json").stat().st_mode & 0o777 == 0o600
    assert _secret_key_id(keys_after["secret_encryption_key"]) == second
    assert keys_after.get("secret_encryption_old_keys", "") == ""
    for unchanged in ("jwt_signing_key", "provider_credential_key"):
        assert keys_after[unchanged] == keys_before[unchanged]

    # Writes still work, and an instance started now (no cache) reads with the new key only.
    _ok(alice.run("secret", "add", "AFTER_ROTATION=yes"))
    _committed(alice.run("secret", "commit", "-m", "after", "--yes"), 2, "1 added", 3)
    fresh = start_server(share_data_with=server)
    read = _expect(_api(fresh, reader.token, "GET", reader.path), 200)
    assert read["secrets"] == {**expected, "AFTER_ROTATION": "yes"}

    # At rest: the marker is nowhere in the database, though the secret's name is; nor in logs.
    for instance in (fresh, replica, server):
        assert instance.unclean_exit(instance.stop()) is None, instance.stderr()
        assert marker not in instance.stderr() + instance.stdout()
    dump = _database_dump(server)
    assert b"secret_versions" in dump and b"data_keys" in dump
    assert b"CANARY_SECRET" in dump
    for form in (marker.encode(), marker.encode().hex().encode()):
        assert form not in dump
