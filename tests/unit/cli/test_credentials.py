"""Credential storage: file modes, keyring selection, never in both places."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import chainer, fail

from kavach.cli.credentials import Credentials, CredentialStore
from kavach.cli.errors import CliError

from .conftest import make_credentials

SERVER = "http://kavach.test"


class MemoryKeyring:
    """A working OS keyring stand-in (duck-typed like a keyring backend)."""

    def __init__(self, *, broken: bool = False) -> None:
        self.items: dict[tuple[str, str], str] = {}
        self.broken = broken

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("D-Bus said no")

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        del self.items[(service, username)]


def use_keyring(monkeypatch: pytest.MonkeyPatch, backend: Any) -> None:
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)


def file_records(home: Path) -> dict[str, Any]:
    path = home / "credentials.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_file_store_round_trip_with_private_modes(home: Path) -> None:
    store = CredentialStore(home, "file")
    credentials = make_credentials("acc-1", "ref-1")
    store.save(SERVER, credentials)

    assert store.load(SERVER) == credentials
    assert store.load("http://other.test") is None
    assert stat.S_IMODE((home / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    record = file_records(home)[SERVER]
    assert record["refresh_token"] == "ref-1"
    assert record["user"]["login"] == "alice"
    assert datetime.fromisoformat(record["expires_at"]).utcoffset() == timedelta(0)


def test_file_store_keeps_servers_apart_and_deletes_one(home: Path) -> None:
    store = CredentialStore(home, "file")
    store.save(SERVER, make_credentials("a", "r"))
    store.save("http://other.test", make_credentials("b", "s"))

    assert store.delete(SERVER) is True
    assert store.delete(SERVER) is False
    assert store.load(SERVER) is None
    other = store.load("http://other.test")
    assert other is not None
    assert other.access_token == "b"


def test_deleting_the_last_record_removes_the_file(home: Path) -> None:
    store = CredentialStore(home, "file")
    store.save(SERVER, make_credentials("a", "r"))
    store.delete(SERVER)
    assert not (home / "credentials.json").exists()


def test_repr_never_shows_tokens() -> None:
    credentials = make_credentials("access-secret-value", "refresh-secret-value")
    text = repr(credentials) + str(credentials)
    assert "access-secret-value" not in text
    assert "refresh-secret-value" not in text
    assert "alice" in text


def test_expiry() -> None:
    now = datetime.now(UTC)
    assert make_credentials("a", "r", expires_in=-1).is_expired(now)
    assert not make_credentials("a", "r", expires_in=60).is_expired(now)


def test_from_token_response_computes_expiry_and_keeps_a_known_user() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    answer = {"access_token": "a", "refresh_token": "r", "expires_in": 900}
    credentials = Credentials.from_token_response(answer, user={"login": "bob"}, now=now)
    assert credentials.expires_at == now + timedelta(seconds=900)
    assert credentials.login == "bob"


def test_corrupt_credentials_file_is_a_local_error(home: Path) -> None:
    home.mkdir()
    (home / "credentials.json").write_text("{not json")
    with pytest.raises(CliError, match="corrupt") as caught:
        CredentialStore(home, "file").load(SERVER)
    assert caught.value.exit_code == 1


def test_auto_uses_a_working_keyring_and_removes_the_file_copy(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CredentialStore(home, "file").save(SERVER, make_credentials("old", "old-r"))
    memory = MemoryKeyring()
    use_keyring(monkeypatch, memory)
    store = CredentialStore(home, "auto")

    store.save(SERVER, make_credentials("new", "new-r"))

    stored = json.loads(memory.items[("kavach", SERVER)])
    assert stored["access_token"] == "new"
    assert SERVER not in file_records(home)
    loaded = store.load(SERVER)
    assert loaded is not None
    assert loaded.access_token == "new"
    assert store.location == "keyring"


def test_auto_falls_back_to_the_file_when_keyring_is_the_fail_backend(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keyring(monkeypatch, fail.Keyring())  # type: ignore[no-untyped-call]
    store = CredentialStore(home, "auto")
    store.save(SERVER, make_credentials("a", "r"))
    assert file_records(home)[SERVER]["access_token"] == "a"
    assert store.location.endswith("credentials.json")


def test_auto_treats_an_empty_chainer_as_no_keyring(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    use_keyring(monkeypatch, chainer.ChainerBackend())  # type: ignore[no-untyped-call]
    CredentialStore(home, "auto").save(SERVER, make_credentials("a", "r"))
    assert SERVER in file_records(home)


def test_auto_falls_back_to_the_file_when_the_keyring_errors(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keyring(monkeypatch, MemoryKeyring(broken=True))
    store = CredentialStore(home, "auto")
    store.save(SERVER, make_credentials("a", "r"))
    loaded = store.load(SERVER)
    assert loaded is not None
    assert loaded.access_token == "a"


def test_keyring_mode_refuses_to_fall_back(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_keyring(monkeypatch, fail.Keyring())  # type: ignore[no-untyped-call]
    with pytest.raises(CliError, match="no usable OS keyring"):
        CredentialStore(home, "keyring").save(SERVER, make_credentials("a", "r"))
    use_keyring(monkeypatch, MemoryKeyring(broken=True))
    with pytest.raises(CliError, match="keyring failed"):
        CredentialStore(home, "keyring").save(SERVER, make_credentials("a", "r"))
    assert not (home / "credentials.json").exists()


def test_file_mode_never_touches_the_keyring(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> None:
        raise AssertionError("the keyring was consulted")

    monkeypatch.setattr(keyring, "get_keyring", forbidden)
    store = CredentialStore(home, "file")
    store.save(SERVER, make_credentials("a", "r"))
    assert store.load(SERVER) is not None
    assert store.delete(SERVER) is True


def test_a_file_record_wins_over_an_older_keyring_record(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryKeyring()
    use_keyring(monkeypatch, memory)
    CredentialStore(home, "auto").save(SERVER, make_credentials("from-keyring", "r1"))
    # Later, someone logged in with KAVACH_CREDENTIAL_STORE=file.
    CredentialStore(home, "file").save(SERVER, make_credentials("from-file", "r2"))

    loaded = CredentialStore(home, "auto").load(SERVER)
    assert loaded is not None
    assert loaded.access_token == "from-file"


def test_delete_clears_both_places(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = MemoryKeyring()
    use_keyring(monkeypatch, memory)
    CredentialStore(home, "auto").save(SERVER, make_credentials("k", "r1"))
    CredentialStore(home, "file").save(SERVER, make_credentials("f", "r2"))

    assert CredentialStore(home, "auto").delete(SERVER) is True
    assert memory.items == {}
    assert not (home / "credentials.json").exists()


def test_mode_comes_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "keyring")
    assert CredentialStore(home).mode == "keyring"
    monkeypatch.setenv("KAVACH_CREDENTIAL_STORE", "vault")
    with pytest.raises(CliError, match="must be auto, keyring or file"):
        CredentialStore(home)


def test_an_unreadable_keyring_record_is_a_local_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryKeyring()
    memory.items[("kavach", SERVER)] = "{truncated"
    use_keyring(monkeypatch, memory)
    with pytest.raises(CliError, match="run `kavach login` again"):
        CredentialStore(home, "auto").load(SERVER)
