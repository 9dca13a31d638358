"""`kavach login`: the saved server by default, no new login when already signed in, and
what would make a login fail named before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail

from kavach.cli.config import ActiveContext, Config, load_config, save_config
from kavach.cli.credentials import Credentials, CredentialStore
from kavach.cli.errors import ExitCode

from .conftest import SERVER, Invoke
from .fake_api import USER, FakeApi

DEVICE_CODE = "/api/v1/auth/device/code"
ME = "/api/v1/auth/me"
WAY_OUT = "set KAVACH_CREDENTIAL_STORE=file (or auto) to keep credentials in"


def test_signed_in_login_says_who_you_are_and_starts_no_new_login(
    api: FakeApi, invoke: Invoke, logged_in: Credentials
) -> None:
    result = invoke(["login"])  # no --server: the saved one

    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout == f"Already logged in as alice on {SERVER}.\n"
    assert "To log in again, run `kavach login --force`." in result.stderr
    assert [call.path for call in api.calls] == [ME]
    assert api.calls[0].authorization == f"Bearer {logged_in.access_token}"

    as_json = invoke(["login", "--json"])
    assert json.loads(as_json.stdout) == {"server": SERVER, "user": USER, "already_logged_in": True}
    assert api.count(DEVICE_CODE) == 0


def test_an_expired_access_token_is_refreshed_rather_than_replaced(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, store: CredentialStore
) -> None:
    api.expire(logged_in.access_token)
    result = invoke(["login"])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.startswith("Already logged in as alice")
    assert api.count("/api/v1/auth/refresh") == 1 and api.count(DEVICE_CODE) == 0
    saved = store.load(SERVER)
    assert saved is not None and saved.refresh_token != logged_in.refresh_token


def test_force_starts_a_new_login(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, store: CredentialStore
) -> None:
    api.approved = True
    result = invoke(["login", "--force", "--no-browser"])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout == f"Logged in as alice on {SERVER}\n"
    assert api.count(DEVICE_CODE) == 1 and api.count(ME) == 0
    saved = store.load(SERVER)
    assert saved is not None and saved.access_token != logged_in.access_token


@pytest.mark.parametrize("how", ["refresh-refused", "token-revoked"])
def test_a_session_that_ended_starts_a_new_login(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, how: str
) -> None:
    if how == "refresh-refused":
        api.expire(logged_in.access_token)
        api.live_refresh.clear()
    else:
        api.valid_access.clear()  # answered 401 invalid_token
    api.approved = True
    result = invoke(["login", "--no-browser"])
    assert result.exit_code == ExitCode.OK, result.output
    assert f"Your session on {SERVER} has ended; starting a new login." in result.stderr
    assert result.stdout == f"Logged in as alice on {SERVER}\n"
    assert api.count(DEVICE_CODE) == 1


def test_signed_in_on_another_saved_server_makes_it_the_default(
    api: FakeApi, invoke: Invoke, logged_in: Credentials, home: Path
) -> None:
    save_config(home, Config(server="http://old.test", context=ActiveContext("a", "b", "c")))
    result = invoke(["login", "--server", SERVER])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout == f"Already logged in as alice on {SERVER}.\n"
    assert load_config(home) == Config(server=SERVER)  # the old server's names are gone


# --- What is checked before anything is sent ----------------------------------------------


def test_a_home_that_is_a_file_is_named_before_anything_is_sent(
    api: FakeApi, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home.write_text("not a directory\n")
    result = invoke(["login", "--server", SERVER])
    assert result.exit_code == ExitCode.LOCAL
    assert result.stderr == (
        f"Error: KAVACH_HOME ({home}) is a file, not a directory; set KAVACH_HOME to a "
        "directory you can write to (it is created if missing)\n"
    )
    # Any other command says the same, rather than failing to read config.yaml.
    listed = invoke(["org", "list"])
    assert (listed.exit_code, listed.stderr) == (result.exit_code, result.stderr)
    beneath = home / "kavach"
    monkeypatch.setenv("KAVACH_HOME", str(beneath))
    under_a_file = invoke(["login", "--server", SERVER])
    assert under_a_file.exit_code == ExitCode.LOCAL
    assert f"KAVACH_HOME ({beneath}) cannot be used (Not a directory)" in under_a_file.stderr
    assert api.calls == []


def test_a_home_that_is_not_writable_is_named_before_anything_is_sent(home: Path) -> None:
    home.mkdir()
    home.chmod(0o555)
    # Root writes anywhere: without the capability to override permissions it cannot.
    as_user = []
    if os.geteuid() == 0:
        as_user = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    unreachable = "http://127.0.0.1:9"  # nothing listens: any request would fail otherwise
    done = subprocess.run(
        [*as_user, sys.executable, "-m", "kavach.cli", "login", "--server", unreachable],
        env={**os.environ, "KAVACH_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.LOCAL, done.stderr
    assert done.stderr == (
        f"Error: KAVACH_HOME ({home}) is not writable by you; set KAVACH_HOME to a "
        "directory you can write to (it is created if missing)\n"
    )


@pytest.mark.parametrize("token", ["kvt_abc\u00e9def", "kvt_abc def", "kvt_\x1b[2Jabc"])
def test_a_malformed_kavach_token_is_refused_before_the_login_without_repeating_it(
    api: FakeApi, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", f"  {token}\n")
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == ExitCode.AUTH
    assert result.stderr == (
        "Error: KAVACH_TOKEN is not a valid token (it holds spaces, control or non-ASCII "
        "characters); unset KAVACH_TOKEN or set it to the token alone\n"
    )
    assert "abc" not in result.output
    assert api.calls == []


def test_a_kavach_token_set_beside_a_login_is_pointed_out(
    api: FakeApi, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", "kvt_" + "a" * 40)
    api.approved = True
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "Warning: KAVACH_TOKEN is set: other commands use it, not this login" in result.stderr
    assert "a" * 40 not in result.output


class BrokenKeyring:
    """A keyring backend that is found but fails every call (a locked or absent service)."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError(f"cannot reach the secret service for {username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError("cannot reach the secret service")


@pytest.mark.parametrize(
    ("backend", "problem"),
    [
        (fail.Keyring(), "no usable OS keyring (no Secret Service, KWallet, macOS Keychain"),  # type: ignore[no-untyped-call]
        (BrokenKeyring(), "the OS keyring failed (RuntimeError); unlock or repair it, or"),
    ],
    ids=["none", "broken"],
)
def test_a_keyring_that_does_not_work_is_named_with_the_way_out_before_anything_is_sent(
    api: FakeApi,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    backend: Any,
    problem: str,
) -> None:
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "keyring")
    result = invoke(["login", "--server", SERVER, "--no-browser"])
    assert result.exit_code == ExitCode.LOCAL
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {problem}")
    assert line.endswith(f"{WAY_OUT} {home / 'credentials.json'} instead, readable by you only")
    assert api.calls == []
