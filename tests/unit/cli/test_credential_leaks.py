"""No error path of the CLI's client prints a credential, whatever fails and however."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import keyring
import pytest
from keyring.backend import KeyringBackend
from typer.testing import CliRunner, Result

from kavach.cli.app import Runtime
from kavach.cli.config import Config, save_config
from kavach.cli.credentials import CredentialStore
from kavach.cli.main import app

from .conftest import SERVER, make_credentials
from .fake_api import FakeApi, FakeServer, envelope, failure

MARK = "LEAKMARK"
ACCESS = f"kvt_{MARK}0123456789abcdef"
REFRESH = f"{MARK}-refresh-0123456789"
ROTATED = {"access_token": f"{MARK}-new-access", "refresh_token": f"{MARK}-new-refresh"}
Handler = Callable[[httpx.Request], httpx.Response]


def _echo(request: httpx.Request) -> str:
    """Return what a hostile proxy could put in an answer: the request's credentials."""
    return f"{request.headers.get('Authorization')} {request.content.decode()}"


def _raise(error: type[httpx.RequestError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed: {_echo(request)}", request=request)

    return handler


def _answer(status: int, code: str = "error") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return failure(status, code, f"rejected {_echo(request)}")

    return handler


def _not_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, text=f"<html>Bad gateway {_echo(request)}</html>")


def _refresh_then(refresh: Handler) -> Handler:
    """Say the access token expired, then answer the refresh with `refresh`."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            return refresh(request)
        return failure(401, "token_expired", f"expired {_echo(request)}")

    return handler


def _rotated(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=envelope({**ROTATED, "expires_in": 900}))


HANDLERS: dict[str, tuple[Handler, int]] = {
    "connect error": (_raise(httpx.ConnectError), 4),
    "read error": (_raise(httpx.ReadError), 4),
    "proxy error": (_raise(httpx.ProxyError), 4),
    "remote protocol error": (_raise(httpx.RemoteProtocolError), 4),
    "local protocol error": (_raise(httpx.LocalProtocolError), 1),
    "connect timeout": (_raise(httpx.ConnectTimeout), 4),
    "read timeout": (_raise(httpx.ReadTimeout), 4),
    "400 envelope": (_answer(400, "validation_failed"), 4),
    "401 envelope": (_answer(401, "invalid_token"), 3),
    "403 envelope": (_answer(403, "forbidden"), 3),
    "429 envelope": (_answer(429, "rate_limited"), 4),
    "500 envelope": (_answer(500, "internal_error"), 4),
    "503 envelope": (_answer(503, "unavailable"), 4),
    "non-JSON body": (_not_json, 4),
    "refresh refused": (_refresh_then(_answer(401, "invalid_token")), 3),
    "refresh fails": (_refresh_then(_answer(500, "internal_error")), 4),
    "refresh not JSON": (_refresh_then(_not_json), 4),
    "refresh unreachable": (_refresh_then(_raise(httpx.ConnectError)), 4),
}


@pytest.fixture
def stored(home: Path) -> None:
    """Save marked credentials for SERVER, as `kavach login` would."""
    CredentialStore(home).save(SERVER, make_credentials(ACCESS, REFRESH, expires_in=900))
    save_config(home, Config(server=SERVER))


def _kavach(handler: Handler | None, *args: str) -> Result:
    transport = httpx.MockTransport(handler) if handler else None
    runtime = Runtime(transport=transport, stdin_is_terminal=lambda: False)
    return CliRunner().invoke(app, list(args), obj=runtime)


def _assert_clean(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert MARK not in result.stdout
    assert MARK not in result.stderr


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
@pytest.mark.parametrize("case", list(HANDLERS))
def test_no_failure_of_a_stored_login_prints_its_tokens(case: str, verbose: list[str]) -> None:
    handler, code = HANDLERS[case]

    result = _kavach(handler, *verbose, "org", "list")

    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: ")
    _assert_clean(result)


@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
@pytest.mark.parametrize("case", [c for c in HANDLERS if not c.startswith("refresh")])
def test_no_failure_with_kavach_token_prints_it(
    case: str, verbose: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", ACCESS)
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    handler, code = HANDLERS[case]

    result = _kavach(handler, *verbose, "org", "list")

    assert result.exit_code == code, result.output
    _assert_clean(result)


@pytest.mark.parametrize("padding", ["\n", " ", "\r\n", "\t \n"])
def test_surrounding_whitespace_is_dropped_from_kavach_token(
    padding: str, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, _ = api.issue()
    monkeypatch.setenv("KAVACH_TOKEN", f"{padding}{access}{padding}")
    monkeypatch.setenv("KAVACH_SERVER", SERVER)

    result = _kavach(api.handle, "org", "list")

    assert result.exit_code == 0, result.output
    assert {call.authorization for call in api.calls} == {f"Bearer {access}"}


@pytest.mark.parametrize("inside", [" ", "\n", "\x1b", "\x7f", "é", "\u202e", "\u00a0"])
def test_a_malformed_kavach_token_is_refused_without_repeating_it(
    inside: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return _rotated(request)

    monkeypatch.setenv("KAVACH_TOKEN", f"{ACCESS[:8]}{inside}{ACCESS[8:]}\n")
    monkeypatch.setenv("KAVACH_SERVER", SERVER)

    result = _kavach(record, "org", "list")

    assert result.exit_code == 3
    assert result.stderr == (
        "Error: KAVACH_TOKEN is not a valid token (it holds spaces, control or non-ASCII "
        "characters); set KAVACH_TOKEN to the token alone\n"
    )
    assert sent == []  # nothing was sent anywhere
    _assert_clean(result)


def test_stored_tokens_lose_surrounding_whitespace_and_malformed_ones_are_refused(
    home: Path, api: FakeApi
) -> None:
    access, refresh = api.issue()
    store = CredentialStore(home)
    store.save(SERVER, make_credentials(f"{access}\n", f" {refresh} "))
    save_config(home, Config(server=SERVER))

    result = _kavach(api.handle, "org", "list")
    assert result.exit_code == 0, result.output
    assert {call.authorization for call in api.calls} == {f"Bearer {access}"}

    store.save(SERVER, make_credentials(ACCESS, f"{REFRESH[:4]} {REFRESH[4:]}"))
    result = _kavach(api.handle, "org", "list")
    assert result.exit_code == 3
    assert "the stored refresh token is not a valid token" in result.stderr
    _assert_clean(result)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_real_network_and_tls_failures_print_no_token(
    api: FakeApi, verbose: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVACH_TOKEN", ACCESS)
    refused = f"http://127.0.0.1:{_free_port()}"
    with FakeServer(api) as plain:
        # TLS spoken to a plain HTTP server: the handshake fails.
        tls = plain.url.replace("http://", "https://")
        for server in (refused, tls):
            result = _kavach(None, *verbose, "--server", server, "org", "list")
            assert result.exit_code == 4, result.output
            assert f"cannot reach {server}" in result.stderr
            _assert_clean(result)


class _FailingKeyring(KeyringBackend):
    """An OS keyring that holds the login but fails to store anything, quoting what it got."""

    priority = 1
    record = ""

    def get_password(self, service: str, username: str) -> str | None:
        return self.record

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"cannot store {password}")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(f"cannot delete {username}")


@pytest.fixture
def failing_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import json

    record = json.dumps(make_credentials(ACCESS, REFRESH, expires_in=-1).to_dict())
    previous = keyring.get_keyring()
    backend = _FailingKeyring()  # type: ignore[no-untyped-call]
    backend.record = record
    keyring.set_keyring(backend)
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "keyring")
    monkeypatch.setenv("KAVACH_SERVER", SERVER)
    yield
    keyring.set_keyring(previous)


@pytest.mark.usefixtures("failing_keyring")
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_a_failing_keyring_prints_no_token(verbose: list[str]) -> None:
    result = _kavach(_refresh_then(_rotated), *verbose, "org", "list")

    assert result.exit_code == 1, result.output
    assert "the OS keyring failed (PasswordSetError)" in result.stderr
    _assert_clean(result)
