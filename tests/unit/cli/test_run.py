"""`kavach run`: the child's environment, exit status, stdio and signals, for real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kavach.cli.child_env import allowed_names, build_env, is_reserved
from kavach.cli.credentials import CredentialStore
from kavach.cli.errors import CliError, ExitCode
from kavach.cli.process import run_child

from .conftest import SERVER, Invoke, make_credentials, use_context
from .fake_api import FakeApi, FakeServer
from .fake_iam import Node

PYTHON = sys.executable
DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


@pytest.fixture
def prod(api: FakeApi, home: Path) -> Node:
    use_context(home, "acme", "web", "prod")
    return api.iam.env(api.iam.group(api.iam.org("acme"), "web"), "prod")


def dumped(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text())
    return data


# ---- the environment ------------------------------------------------------------------------


@pytest.mark.usefixtures("logged_in")
def test_secrets_reach_the_child_and_reserved_names_do_not(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXISTING", "from the caller")
    secrets = {
        "API_KEY": "sk_live_0123456789abcdef",
        "MULTI": "a\nb",
        "EXISTING": "from kavach",
        "PATH": "/hunter2/bin",
        "HOME": "/hunter2",
        "LD_PRELOAD": "/hunter2.so",
        "PYTHONSTARTUP": "/hunter2.py",
        "KAVACH_TOKEN": "hunter2",
    }
    api.secrets.commit(prod, secrets)
    out = tmp_path / "env.json"

    result = invoke(["run", "--", PYTHON, "-c", DUMP, str(out)])

    assert result.exit_code == 0, result.output
    env = dumped(out)
    assert env["API_KEY"] == secrets["API_KEY"]
    assert env["MULTI"] == "a\nb"
    assert env["EXISTING"] == "from kavach"  # secrets win unless --preserve-env
    assert env["PATH"] == os.environ["PATH"]
    assert env["HOME"] == os.environ["HOME"]
    assert "LD_PRELOAD" not in env and "PYTHONSTARTUP" not in env and "KAVACH_TOKEN" not in env
    assert result.stderr.splitlines() == [
        f"Warning: {name} not set: reserved ({family}); --allow-env {name} sets it"
        for name, family in [
            ("HOME", "who and where the user is"),
            ("KAVACH_TOKEN", "Kavach's own settings"),
            ("LD_PRELOAD", "the dynamic loader and C library"),
            ("PATH", "who and where the user is"),
            ("PYTHONSTARTUP", "interpreters and build tools"),
        ]
    ]
    assert "hunter2" not in result.output
    # One request for the environment, by its names, then the secrets.
    assert [path for _, path, _, _ in api.requests()] == [
        "/organizations/by-name/acme/secret-groups/web/environments/prod",
        f"/environments/{prod.id}/secrets",
    ]


@pytest.mark.usefixtures("logged_in")
def test_override_reserved_and_preserve_env(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXISTING", "from the caller")
    monkeypatch.setenv("TZ", "UTC")
    api.secrets.commit(prod, {"EXISTING": "secret", "TZ": "Asia/Kolkata", "LD_KAVACH": "x"})
    out = tmp_path / "env.json"

    result = invoke(["run", "--override-reserved", "--", PYTHON, "-c", DUMP, str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Note: reserved LD_KAVACH set from a secret",
        "Note: reserved TZ set from a secret",
    ]
    env = dumped(out)
    assert (env["TZ"], env["LD_KAVACH"], env["EXISTING"]) == ("Asia/Kolkata", "x", "secret")

    result = invoke(["run", "--preserve-env", "--", PYTHON, "-c", DUMP, str(out)])
    assert result.exit_code == 0, result.output
    env = dumped(out)
    assert (env["TZ"], env["EXISTING"]) == ("UTC", "from the caller")
    assert "LD_KAVACH" not in env


def test_reserved_list() -> None:
    for name in ("PATH", "HOME", "SHELL", "USER", "LOGNAME", "PWD", "TERM", "LANG", "TMPDIR"):
        assert is_reserved(name)
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "LC_ALL", "BASH_ENV"):
        assert is_reserved(name)
    for name in ("API_KEY", "DATABASE_URL", "HOMEPAGE", "PATH_PREFIX", "USERNAME", "LDAP_URL"):
        assert not is_reserved(name)


@pytest.mark.parametrize(
    "name",
    [
        # Each makes a common tool run a command or fetch code it did not ask for.
        *("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "RUSTFLAGS", "JAVA_OPTS"),
        *("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "MAVEN_OPTS"),
        *("GRADLE_OPTS", "SBT_OPTS", "GOPROXY", "GOSUMDB", "GOTOOLCHAIN", "GOFLAGS"),
        *("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "RSYNC_RSH", "CVS_RSH"),
        *("RSYNC_CONNECT_PROG", "SVN_SSH", "MANOPT", "DOCKER_HOST"),
    ],
)
def test_build_and_package_tool_hooks_are_reserved(name: str) -> None:
    assert is_reserved(name)
    assert not is_reserved(f"MY_{name}X")


def test_families_reserve_code_running_names_and_allow_names_one_by_one() -> None:
    secrets = {"GIT_SSH_COMMAND": "x", "GIT_CONFIG_COUNT": "1", "http_proxy": "x", "A": "1"}
    built = build_env({"GIT_SSH_COMMAND": "mine"}, secrets, allow=allowed_names(["http_proxy"]))
    assert built.skipped_reserved == ["GIT_CONFIG_COUNT", "GIT_SSH_COMMAND"]
    assert built.set_reserved == ["http_proxy"]
    assert built.env == {"GIT_SSH_COMMAND": "mine", "http_proxy": "x", "A": "1"}
    for bad in ("GIT_*", "*", "A B", "", "1X"):
        with pytest.raises(CliError, match="--allow-env takes variable names"):
            allowed_names([bad])


def test_a_nul_character_cannot_go_into_an_environment() -> None:
    with pytest.raises(CliError, match=r"^B: a value holds a NUL character") as caught:
        build_env({}, {"A": "ok", "B": "x\0hunter2"})
    assert "hunter2" not in str(caught.value)


# ---- exit status --------------------------------------------------------------------------


@pytest.mark.usefixtures("logged_in")
@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["--", PYTHON, "-c", "raise SystemExit(7)"], 7),
        (["--", "true"], 0),
        (["--", "sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
        (["--", PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], 137),
        (["--command", 'test "$A" = "x y" && exit 5'], 5),
        (["--", "no-such-command-kavach"], 127),
        (["--", str(Path(__file__))], 126),  # not executable
    ],
)
def test_exit_status_is_the_childs(
    api: FakeApi, invoke: Invoke, prod: Node, command: list[str], code: int
) -> None:
    api.secrets.commit(prod, {"A": "x y"})
    result = invoke(["run", *command])
    assert result.exit_code == code, result.output


@pytest.mark.usefixtures("logged_in")
def test_command_runs_through_shell_or_bin_sh(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.secrets.commit(prod, {"A": "1"})
    out = tmp_path / "shell"
    fake_shell = tmp_path / "myshell"
    fake_shell.write_text(f'#!/bin/sh\necho "$0 $1" > {out}\nexec /bin/sh "$@"\n')
    fake_shell.chmod(0o755)
    monkeypatch.setenv("SHELL", str(fake_shell))

    result = invoke(["run", "--command", "exit $A"])
    assert result.exit_code == 1
    assert out.read_text() == f"{fake_shell} -c\n"

    monkeypatch.delenv("SHELL")
    assert invoke(["run", "-c", "exit $((A + 2))"]).exit_code == 3


@pytest.mark.usefixtures("logged_in")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Error: no command: kavach run [OPTIONS] -- CMD [ARGS]…\n"),
        (
            ["-c", "true", "--", "true"],
            "Error: give either --command LINE or -- CMD ARGS…, not both\n",
        ),
        (["-v", "nope", "--", "true"], "Error: --version 'nope' is not a version: give its id"),
    ],
)
def test_usage_errors(
    api: FakeApi, invoke: Invoke, prod: Node, args: list[str], message: str
) -> None:
    result = invoke(["run", *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert api.calls == []


@pytest.mark.usefixtures("logged_in")
def test_options_after_the_command_belong_to_the_command(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    old = api.secrets.commit(prod, {"A": "old"})
    api.secrets.commit(prod, {"A": "new"})
    out = tmp_path / "env.json"
    result = invoke(["run", "-v", old.id, PYTHON, "-c", DUMP, str(out)])
    assert result.exit_code == 0, result.output
    assert dumped(out)["A"] == "old"
    assert api.requests()[-1][2] == {"version": old.id}


def test_token_mode_makes_two_requests(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = api.iam.token(prod, "ci")
    monkeypatch.setenv("KAVACH_TOKEN", token.value)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    api.secrets.commit(prod, {"A": "1"})
    out = tmp_path / "env.json"

    result = invoke(["run", "--", PYTHON, "-c", DUMP, str(out)])

    assert result.exit_code == 0, result.output
    assert dumped(out)["A"] == "1"
    assert [path for _, path, _, _ in api.requests()] == [
        "/auth/whoami",
        f"/environments/{prod.id}/secrets",
    ]


def test_the_callers_kavach_credentials_stay_out_unless_passed_on(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = api.iam.token(prod, "ci")
    monkeypatch.setenv("KAVACH_TOKEN", token.value)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    monkeypatch.setenv("KAVACH_SECRET_ENCRYPTION_KEY", "server-key")
    api.secrets.commit(prod, {"A": "1"})
    out = tmp_path / "env.json"

    withheld = invoke(["--verbose", "run", "--", PYTHON, "-c", DUMP, str(out)])

    assert withheld.exit_code == 0, withheld.output
    env = dumped(out)
    assert env["A"] == "1" and env["KAVACH_SERVER"] == SERVER
    assert "KAVACH_TOKEN" not in env and "KAVACH_SECRET_ENCRYPTION_KEY" not in env
    assert (
        "not passed on: KAVACH_SECRET_ENCRYPTION_KEY, KAVACH_TOKEN (--pass-credentials passes "
        "them)" in withheld.stderr
    )
    assert token.value not in withheld.stderr and "server-key" not in withheld.stderr

    passed = invoke(["run", "--pass-credentials", "--", PYTHON, "-c", DUMP, str(out)])

    assert passed.exit_code == 0, passed.output
    env = dumped(out)
    assert env["KAVACH_TOKEN"] == token.value
    assert env["KAVACH_SECRET_ENCRYPTION_KEY"] == "server-key"


def test_a_secret_does_not_stand_in_for_a_withheld_credential() -> None:
    base = {"KAVACH_TOKEN": "caller's", "KAVACH_REDIS_URL": "redis://:pw@r", "X": "1"}
    built = build_env(base, {"KAVACH_TOKEN": "from a secret"})
    assert built.env == {"X": "1"}
    assert built.withheld == ["KAVACH_REDIS_URL", "KAVACH_TOKEN"]
    assert built.skipped_reserved == ["KAVACH_TOKEN"]
    allowed = build_env(base, {"KAVACH_TOKEN": "from a secret"}, allow=frozenset({"KAVACH_TOKEN"}))
    assert allowed.env == {"X": "1", "KAVACH_TOKEN": "from a secret"}
    kept = build_env(base, {}, pass_credentials=True)
    assert (kept.env, kept.withheld) == (base, [])


@pytest.mark.usefixtures("logged_in")
def test_an_environment_without_secrets_warns_and_require_secrets_refuses(
    api: FakeApi, invoke: Invoke, prod: Node, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    where = "environment acme/web/prod"

    empty = invoke(["run", "--", PYTHON, "-c", DUMP, str(out)])

    assert empty.exit_code == 0, empty.output
    assert empty.stderr == (
        f"Warning: {where} has no version yet: the command runs without secrets "
        "(--require-secrets fails)\n"
    )
    assert out.exists()
    out.unlink()

    required = invoke(["run", "--require-secrets", "--", PYTHON, "-c", DUMP, str(out)])

    assert required.exit_code == ExitCode.LOCAL
    assert required.stderr == f"Error: {where} has no version yet (--require-secrets)\n"
    assert not out.exists()

    version = api.secrets.commit(prod, {})
    none_left = invoke(["run", "--require-secrets", "--", "true"])
    assert none_left.exit_code == ExitCode.LOCAL
    assert none_left.stderr == (
        f"Error: v1 ({version.id}) of {where} holds no secrets (--require-secrets)\n"
    )
    api.secrets.commit(prod, {"A": "1"})
    found = invoke(["run", "--require-secrets", "--", "true"])
    assert (found.exit_code, found.stderr) == (0, "")


def test_forwarding_with_handlers_also_returns_the_status() -> None:
    """The fallback used where sigwaitinfo does not exist."""
    env = dict(os.environ)
    assert run_child(["sh", "-c", "exit 4"], env, wait_for_signals=False) == 4
    # The child sets SIGINT to its default itself: one started with it ignored (as a test
    # runner's worker may be) would never die of it.
    die = (
        "import os, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); os.kill(os.getpid(), 2)"
    )
    assert run_child([sys.executable, "-c", die], env, wait_for_signals=False) == 130


# ---- real processes: stdio and signals --------------------------------------------------------


@pytest.fixture
def server(api: FakeApi, prod: Node, home: Path, store: CredentialStore) -> Iterator[str]:
    """Serve the fake API over HTTP and log in to it (credentials in KAVACH_HOME)."""
    api.secrets.commit(prod, {"A": "from kavach"})
    with FakeServer(api) as running:
        access, refresh = api.issue()
        store.save(running.url, make_credentials(access, refresh))
        yield running.url


def kavach_env(home: Path, url: str) -> dict[str, str]:
    return {**os.environ, "KAVACH_HOME": str(home), "KAVACH_SERVER": url}


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


CATCHER = """
import signal, sys, time
from pathlib import Path
caught = []
for name in sys.argv[3:]:
    signal.signal(getattr(signal, name), lambda signum, frame: caught.append(signum))
Path(sys.argv[1]).write_text("ready")
deadline = time.monotonic() + 20
while not caught and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.5)  # a second delivery of the same signal would arrive by now
Path(sys.argv[2]).write_text(",".join(signal.Signals(s).name for s in caught))
sys.exit(40 + len(caught))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_sent_to_kavach_reach_the_child_once(
    home: Path, server: str, tmp_path: Path, sig: signal.Signals
) -> None:
    ready, report = tmp_path / "ready", tmp_path / "report"
    command = [PYTHON, "-m", "kavach.cli", "run", "--", PYTHON, "-c", CATCHER]
    process = subprocess.Popen(
        [*command, str(ready), str(report), sig.name],
        env=kavach_env(home, server),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert report.read_text() == sig.name
    assert process.returncode == 41, stderr


def test_a_signal_that_kills_the_child_gives_128_plus_n(
    home: Path, server: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    script = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(30)"
    process = subprocess.Popen(
        [PYTHON, "-m", "kavach.cli", "run", "--", PYTHON, "-c", script],
        env=kavach_env(home, server),
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(ready)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()


def test_ctrl_c_on_a_terminal_reaches_the_child_once(
    home: Path, server: str, tmp_path: Path
) -> None:
    """The terminal signals kavach and the child alike; kavach must not send a second one."""
    import fcntl
    import pty
    import termios

    ready, report = tmp_path / "ready", tmp_path / "report"
    primary, secondary = pty.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    command = [PYTHON, "-m", "kavach.cli", "run", "--", PYTHON, "-c", CATCHER]
    process = subprocess.Popen(
        [*command, str(ready), str(report), "SIGINT"],
        env=kavach_env(home, server),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(secondary)
    try:
        wait_for(ready)
        os.write(primary, b"\x03")
        assert process.wait(timeout=30) == 41
    finally:
        process.kill()
        os.close(primary)
    assert report.read_text() == "SIGINT"


def test_stdio_is_the_childs_own(home: Path, server: str, tmp_path: Path) -> None:
    """stdin, stdout and stderr are passed as they are: the child sees kavach's files."""
    out, err = tmp_path / "out", tmp_path / "err"
    script = (
        "import os, sys; data = sys.stdin.read(); "
        "print(data.upper(), os.readlink('/proc/self/fd/1'), os.environ['A']); "
        "print('to stderr', os.readlink('/proc/self/fd/2'), file=sys.stderr)"
    )
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(
            [PYTHON, "-m", "kavach.cli", "run", "--", PYTHON, "-c", script],
            env=kavach_env(home, server),
            input=b"hello",
            stdout=stdout,
            stderr=stderr,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, err.read_text()
    assert out.read_text() == f"HELLO {out} from kavach\n"
    assert err.read_text() == f"to stderr {err}\n"
