"""`kavach login`: the device flow, its polling rules, and what it saves."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from kavach.cli.app import Runtime
from kavach.cli.config import ActiveContext, Config, load_config, save_config
from kavach.cli.credentials import Credentials, CredentialStore

from .conftest import SERVER, FakeClock, Invoke
from .fake_api import USER_CODE, FakeApi, FakeServer, failure


def pending() -> httpx.Response:
    return failure(400, "authorization_pending", "waiting")


def test_login_polls_until_approved_and_saves_everything(
    api: FakeApi, clock: FakeClock, invoke: Invoke, home: Path
) -> None:
    api.interval = 2
    api.device_script.extend([pending(), pending()])
    api.approved = True

    result = invoke(["login", "--server", SERVER + "/", "--no-browser"])

    assert result.exit_code == 0, result.output
    assert f"Your one-time code: {USER_CODE}" in result.stderr
    assert f"{SERVER}/device?user_code={USER_CODE}\n" in result.stderr
    assert result.stdout == f"Logged in as alice on {SERVER}\n"
    assert clock.sleeps == [2, 2, 2]
    assert api.calls[0].body == {}
    saved = CredentialStore(home).load(SERVER)
    assert saved is not None
    assert saved.login == "alice"
    assert saved.access_token in api.valid_access
    assert not saved.is_expired()
    assert load_config(home).server == SERVER
    assert stat.S_IMODE((home / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "config.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_slow_down_uses_the_servers_interval_or_adds_five_seconds(
    api: FakeApi, clock: FakeClock, invoke: Invoke
) -> None:
    api.interval = 1
    api.device_script.extend(
        [
            failure(400, "slow_down", "slow down", data={"interval": 4}),
            pending(),
            failure(400, "slow_down", "slow down"),
            pending(),
        ]
    )
    api.approved = True
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [1, 4, 4, 9, 9]


def test_rate_limited_waits_as_long_as_asked(
    api: FakeApi, clock: FakeClock, invoke: Invoke
) -> None:
    api.interval = 1
    limited = failure(
        429, "rate_limited", "too many", data={"retry_after": 30}, headers={"Retry-After": "30"}
    )
    api.device_script.extend([limited, pending()])
    api.approved = True
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [1, 30, 1]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("expired_token", "the code expired, run `kavach login` again (expired_token)"),
        ("access_denied", "the login was denied (access_denied)"),
    ],
)
def test_expired_or_denied_exits_3(
    api: FakeApi, invoke: Invoke, home: Path, code: str, message: str
) -> None:
    api.device_script.append(failure(400, code, "server words"))
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert not (home / "credentials.json").exists()


def test_gives_up_when_the_code_runs_out(api: FakeApi, clock: FakeClock, invoke: Invoke) -> None:
    api.interval = 5
    api.expires_in = 12
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 3
    assert "the code expired" in result.stderr
    assert api.count("/api/v1/auth/device/token") == 3
    assert clock.sleeps == [5, 5, 5]


def test_an_unexpected_poll_error_stops_with_a_server_error(api: FakeApi, invoke: Invoke) -> None:
    api.device_script.append(failure(500, "internal_error", "boom"))
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-1] == "Error: boom (internal_error)"


def test_ctrl_c_exits_130(api: FakeApi, home: Path, invoke: Invoke) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    runtime = Runtime(transport=api.transport, sleep=interrupted)
    result = invoke(["login", "--server", SERVER, "--no-browser"], runtime=runtime)
    assert result.exit_code == 130
    assert "Traceback" not in result.output
    assert not (home / "credentials.json").exists()


def test_browser_opens_only_with_a_display(
    api: FakeApi, invoke: Invoke, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.approved = True
    api.verification_uri_complete = False
    api.identity_provider = "github"
    opened: list[str] = []
    runtime = Runtime(
        transport=api.transport,
        sleep=clock.sleep,
        clock=clock.monotonic,
        open_browser=opened.append,
    )
    monkeypatch.setattr(sys, "platform", "linux")

    assert invoke(["login", "--server", SERVER], runtime=runtime).exit_code == 0
    assert opened == []  # no DISPLAY, no WAYLAND_DISPLAY

    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    again = ["login", "--server", SERVER, "--force"]
    assert invoke([*again, "--no-browser"], runtime=runtime).exit_code == 0
    assert opened == []
    assert invoke(again, runtime=runtime).exit_code == 0
    assert opened == [f"{SERVER}/device"]


def test_server_comes_from_the_environment(
    api: FakeApi, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.approved = True
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    assert invoke(["login", "--no-browser"]).exit_code == 0
    assert load_config(home).server == SERVER


def test_login_to_another_server_clears_the_active_context(
    api: FakeApi, invoke: Invoke, home: Path
) -> None:
    save_config(
        home, Config(server="http://old.test", context=ActiveContext("acme", "web", "prod"))
    )
    api.approved = True
    assert invoke(["login", "--server", SERVER, "--no-browser"]).exit_code == 0
    assert load_config(home) == Config(server=SERVER)


def test_without_any_server_login_says_how_to_pass_one(invoke: Invoke) -> None:
    result = invoke(["login", "--no-browser"])
    assert result.exit_code == 1
    assert "pass --server URL" in result.stderr


def test_the_user_code_can_be_read_from_a_pipe_while_login_waits(home: Path) -> None:
    api = FakeApi(interval=1)
    with FakeServer(api) as server:
        env = {**os.environ, "KAVACH_HOME": str(home), "KAVACH_CREDENTIAL_STORE": "file"}
        command = [sys.executable, "-m", "kavach.cli", "login", "--server", server.url]
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            lines = [process.stderr.readline() for _ in range(7)]
            assert lines[0].strip() == f"Your one-time code: {USER_CODE}"
            assert lines[2].strip() == f"kavach login --approve {USER_CODE}"
            assert lines[6].strip() == f"{server.url}/device?user_code={USER_CODE}"
            api.approved = True  # the user approves from a signed-in terminal
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == f"Logged in as alice on {server.url}\n"
    assert yaml.safe_load((home / "config.yaml").read_text())["server"] == server.url


def _sigint_as_a_terminal_gives_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_sigint_while_waiting_exits_130_without_a_traceback(home: Path) -> None:
    api = FakeApi(interval=1)
    with FakeServer(api) as server:
        env = {**os.environ, "KAVACH_HOME": str(home), "KAVACH_CREDENTIAL_STORE": "file"}
        command = [sys.executable, "-m", "kavach.cli", "login", "--server", server.url]
        process = subprocess.Popen(
            command,
            env=env,
            # As a terminal starts it: SIGINT neither ignored nor blocked, whatever this test
            # runner's worker inherited or was left with.
            preexec_fn=_sigint_as_a_terminal_gives_it,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            for line in iter(process.stderr.readline, ""):  # ends at EOF if login died
                if "Waiting for approval" in line:
                    break
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert err.strip() == "Interrupted."
    assert not (home / "credentials.json").exists()


def test_a_local_login_says_how_to_approve_it_and_opens_no_browser(
    api: FakeApi, invoke: Invoke, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.approved = True
    opened: list[str] = []
    runtime = Runtime(
        transport=api.transport,
        sleep=clock.sleep,
        clock=clock.monotonic,
        open_browser=opened.append,
    )
    monkeypatch.setenv("DISPLAY", ":0")
    result = invoke(["login", "--server", SERVER], runtime=runtime)
    assert result.exit_code == 0, result.output
    assert f"kavach login --approve {USER_CODE}\n" in result.stderr
    assert f"kavach server approve {USER_CODE} --user NAME\n" in result.stderr
    assert opened == []  # the page only repeats the instructions


def test_login_approve_approves_for_the_signed_in_user(
    api: FakeApi, invoke: Invoke, logged_in: Credentials
) -> None:
    result = invoke(["login", "--approve", USER_CODE.lower()])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Login {USER_CODE} approved as alice.\n"
    call = next(c for c in api.calls if c.path == "/api/v1/auth/device/approve")
    assert call.body == {"user_code": USER_CODE.lower()}
    assert call.authorization == f"Bearer {logged_in.access_token}"
    assert api.approved
    as_json = invoke(["login", "--approve", USER_CODE, "--json"])
    assert json.loads(as_json.stdout)["user"]["login"] == "alice"


def test_login_deny_and_unknown_codes(api: FakeApi, invoke: Invoke, logged_in: Credentials) -> None:
    denied = invoke(["login", "--deny", USER_CODE])
    assert (denied.exit_code, denied.stdout) == (0, f"Login {USER_CODE} denied.\n")
    unknown = invoke(["login", "--approve", "BBBB-BBBB"])
    assert unknown.exit_code == 4
    assert "unknown, used or expired" in unknown.stderr
    both = invoke(["login", "--approve", USER_CODE, "--deny", USER_CODE])
    assert both.exit_code == 1


def test_login_approve_needs_a_signed_in_user(api: FakeApi, invoke: Invoke, home: Path) -> None:
    save_config(home, Config(server=SERVER))
    result = invoke(["login", "--approve", USER_CODE])
    assert result.exit_code == 3, result.output
    assert not api.approved


def test_an_account_the_server_does_not_allow_exits_3_with_the_reason(
    api: FakeApi, invoke: Invoke
) -> None:
    message = "the GitHub account 'octocat' may not sign in to this server"
    api.device_script.append(failure(400, "account_not_allowed", message))
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == 3
    assert message in result.stderr
