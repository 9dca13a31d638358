"""Fallback files: sealed for one credential and one environment, written atomically, 0600."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kavach.cli.credentials import CredentialStore
from kavach.cli.errors import ExitCode
from kavach.cli.fallback import Choice, Wanted, default_path, find
from kavach.cli.fallback_file import (
    FallbackCorrupt,
    FallbackLocked,
    FallbackMissing,
    FallbackWrongEnvironment,
    age_text,
    open_file,
    seal,
    write,
)
from kavach.cli.session import Session

from .conftest import SERVER, make_credentials

ENV_ID = "3f6c1b52-8a1e-4c55-9d43-0c2b8f1e7a10"
SECRETS = {"API_KEY": "sk_live_0123456789abcdef", "MULTI": "a\nb", "UNICODE": "héllo ✓"}
TOKEN = b"service-token\0kvt_the_token_that_read_it"


def _sealed(credential: bytes = TOKEN, **changes: object) -> str:
    fields: dict[str, object] = {
        "server": SERVER,
        "environment_id": ENV_ID,
        "environment": "acme/web/prod",
        "version": {"id": "abcd1234", "seq": 3},
        "secrets": SECRETS,
    }
    fields.update(changes)
    return seal(credential, **fields)  # type: ignore[arg-type]


def _written(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "fallback" / f"{ENV_ID}.enc"
    write(path, text or _sealed())
    return path


def test_a_sealed_file_opens_with_its_credential_and_shows_no_value(tmp_path: Path) -> None:
    path = _written(tmp_path)

    opened = open_file(path, TOKEN)

    assert opened.secrets == SECRETS
    assert opened.version == {"id": "abcd1234", "seq": 3}
    assert (opened.header.environment_id, opened.header.server) == (ENV_ID, SERVER)
    assert abs((datetime.now(UTC) - opened.header.written_at).total_seconds()) < 5
    text = path.read_text()
    assert not any(value in text for value in ("sk_live", "héllo", "API_KEY"))
    assert json.loads(text)["version"] == 1


def test_it_is_0600_in_a_0700_directory_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = _written(tmp_path)
    write(path, _sealed())  # replaced in place

    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert os.listdir(path.parent) == [path.name]
    # A write that fails (the name is taken by a directory) leaves no temporary file either.
    blocked = path.parent / "blocked.enc"
    blocked.mkdir()
    with pytest.raises(IsADirectoryError):
        write(blocked, _sealed())
    assert sorted(os.listdir(path.parent)) == sorted([path.name, "blocked.enc"])


def test_another_credential_cannot_open_it(tmp_path: Path) -> None:
    path = _written(tmp_path)

    with pytest.raises(FallbackLocked) as refused:
        open_file(path, b"service-token\0kvt_another_token")

    assert refused.value.exit_code == ExitCode.AUTH
    assert refused.value.code == "fallback_locked"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("environment_id", "9e9e9e9e-0000-4000-8000-000000000000"),
        ("environment", "acme/web/dev"),
        ("server", "http://elsewhere.test"),
        # Younger than it is: --fallback-max-age must not be fooled.
        ("written_at", (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")),
    ],
    ids=["environment_id", "environment", "server", "written_at"],  # stable across workers
)
def test_a_changed_header_does_not_open(tmp_path: Path, field: str, value: str) -> None:
    raw = json.loads(_sealed())
    raw[field] = value
    path = _written(tmp_path, json.dumps(raw))

    with pytest.raises(FallbackLocked):
        open_file(path, TOKEN)


def test_a_changed_ciphertext_does_not_open(tmp_path: Path) -> None:
    raw = json.loads(_sealed())
    sealed = bytearray(base64.b64decode(raw["ciphertext"]))
    sealed[0] ^= 1
    raw["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    path = _written(tmp_path, json.dumps(raw))

    with pytest.raises(FallbackLocked):
        open_file(path, TOKEN)


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        '{"format": "something else"}',
        '{"format": "kavach-fallback", "version": 1, "kdf": "hkdf-sha256"}',
        _sealed()[:200],
    ],
)
def test_a_corrupt_file_is_named_as_such(tmp_path: Path, text: str) -> None:
    path = _written(tmp_path, text)

    with pytest.raises(FallbackCorrupt) as refused:
        open_file(path, TOKEN)

    assert refused.value.exit_code == ExitCode.LOCAL
    assert str(path) in refused.value.message


def test_a_newer_format_is_refused_with_its_version(tmp_path: Path) -> None:
    raw = json.loads(_sealed())
    raw["version"] = 2
    path = _written(tmp_path, json.dumps(raw))

    with pytest.raises(FallbackCorrupt, match="format version 2; this kavach reads version 1"):
        open_file(path, TOKEN)


def test_a_missing_file_and_another_environment_are_told_apart(tmp_path: Path) -> None:
    path = _written(tmp_path)
    choice = Choice(file=path)

    found, _ = find(tmp_path, choice, Wanted(SERVER, environment_id=ENV_ID), TOKEN)
    assert found.secrets == SECRETS
    with pytest.raises(FallbackWrongEnvironment, match="holds environment acme/web/prod"):
        find(tmp_path, choice, Wanted(SERVER, name="acme/web/dev"), TOKEN)
    with pytest.raises(FallbackWrongEnvironment):
        find(tmp_path, choice, Wanted("http://elsewhere.test", environment_id=ENV_ID), TOKEN)
    with pytest.raises(FallbackMissing):
        find(tmp_path, Choice(file=tmp_path / "none.enc"), Wanted(SERVER), TOKEN)


def test_offline_the_default_directory_is_searched_by_name(tmp_path: Path) -> None:
    _written(tmp_path)
    home = tmp_path  # _written used home/fallback/<id>.enc
    assert default_path(home, ENV_ID).exists()

    found, path = find(home, Choice(file=None), Wanted(SERVER, name="acme/web/prod"), TOKEN)
    assert (found.secrets, path) == (SECRETS, default_path(home, ENV_ID))
    with pytest.raises(FallbackMissing, match="no fallback for environment acme/web/dev"):
        find(home, Choice(file=None), Wanted(SERVER, name="acme/web/dev"), TOKEN)
    with pytest.raises(FallbackLocked):
        find(home, Choice(file=None), Wanted(SERVER, name="acme/web/prod"), b"login\0other")


def test_a_new_login_writes_fallbacks_the_old_login_cannot_open(
    tmp_path: Path, store: CredentialStore
) -> None:
    old = replace(make_credentials("access-1", "refresh-1"), fallback_seed="old-seed")
    store.save(SERVER, old)
    stolen = Session(SERVER, store).fallback_seed()
    assert stolen == "old-seed"

    # The session is revoked; the user logs in again: a new seed, new fallbacks.
    store.save(SERVER, replace(make_credentials("access-2", "refresh-2"), fallback_seed="new"))
    current = Session(SERVER, store).fallback_seed()
    path = _written(tmp_path, _sealed(f"login\0{current}".encode()))

    assert open_file(path, f"login\0{current}".encode()).secrets == SECRETS
    with pytest.raises(FallbackLocked):
        open_file(path, f"login\0{stolen}".encode())


def test_a_login_keeps_its_seed_through_refreshes_and_an_old_login_gets_one(
    store: CredentialStore,
) -> None:
    store.save(SERVER, make_credentials("access-1", "refresh-1"))  # saved before seeds
    session = Session(SERVER, store)

    seed = session.fallback_seed()
    assert seed is not None and len(seed) >= 40
    assert Session(SERVER, store).fallback_seed() == seed  # saved, so every process agrees

    session.refresh(lambda _refresh: make_credentials("access-2", "refresh-2"))
    rotated = store.load(SERVER)
    assert rotated is not None and rotated.refresh_token == "refresh-2"
    assert rotated.fallback_seed == seed
    assert "seed" not in repr(rotated) and seed not in repr(rotated)


def test_ages_read_as_people_say_them() -> None:
    assert [age_text(s) for s in (0, 45, 720, 11520, 3600, 86400, 183600, -5)] == [
        "0s",
        "45s",
        "12m",
        "3h12m",
        "1h",
        "1d",
        "2d3h",
        "0s",
    ]
