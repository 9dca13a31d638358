"""Key generation, loading and refusal of weak or placeholder keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kavach.server.crypto.keys import generate_key, load_keys
from kavach.server.errors import ConfigurationError
from kavach.server.settings import AuthSettings, DatabaseSettings, KeySettings, Mode, Settings


def _settings(tmp_path: Path, mode: Mode = Mode.DEVELOPMENT, **keys: object) -> Settings:
    return Settings(
        mode=mode,
        data_dir=tmp_path / "data",
        db=DatabaseSettings(database_url="postgresql://db/kavach"),
        keys=KeySettings(**keys),  # type: ignore[arg-type]
        auth=AuthSettings(enable_local_idp=True),
    )


def test_first_start_generates_three_distinct_keys_in_a_private_file(tmp_path: Path) -> None:
    keys = load_keys(_settings(tmp_path))
    assert keys.generated
    assert (
        len({keys.jwt_signing_key, keys.secret_encryption_key, keys.provider_credential_key}) == 3
    )
    path = tmp_path / "data" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_keys(_settings(tmp_path))
    assert again.jwt_signing_key == keys.jwt_signing_key


def test_repr_never_shows_keys(tmp_path: Path) -> None:
    keys = load_keys(_settings(tmp_path))
    assert "redacted" in repr(keys)
    assert keys.jwt_signing_key.hex() not in repr(keys)


def test_loose_keys_file_is_refused(tmp_path: Path) -> None:
    load_keys(_settings(tmp_path))
    (tmp_path / "data" / "keys.json").chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_keys(_settings(tmp_path))


def test_production_refuses_generated_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KAVACH_JWT_SIGNING_KEY"):
        load_keys(_settings(tmp_path, Mode.PRODUCTION))
    assert not (tmp_path / "data" / "keys.json").exists()


def test_production_accepts_explicit_keys_and_key_files(tmp_path: Path) -> None:
    key_file = tmp_path / "provider.key"
    key_file.write_text(generate_key() + "\n")
    keys = load_keys(
        _settings(
            tmp_path,
            Mode.PRODUCTION,
            jwt_signing_key=generate_key(),
            secret_encryption_key=generate_key(),
            provider_credential_key_file=key_file,
        )
    )
    assert not keys.generated


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("changeme", "placeholder"),
        ("REPLACE_WITH_A_SECRET_KEY_000000000000000000", "placeholder"),
        ("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", "entropy"),
        ("c2hvcnQ=", "32 bytes"),
        ("not base64!!", "base64"),
    ],
)
def test_weak_or_placeholder_keys_are_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_keys(
            _settings(
                tmp_path,
                Mode.PRODUCTION,
                jwt_signing_key=value,
                secret_encryption_key=generate_key(),
                provider_credential_key=generate_key(),
            )
        )


def test_keys_must_differ(tmp_path: Path) -> None:
    same = generate_key()
    with pytest.raises(ConfigurationError, match="different"):
        load_keys(
            _settings(
                tmp_path,
                Mode.PRODUCTION,
                jwt_signing_key=same,
                secret_encryption_key=same,
                provider_credential_key=generate_key(),
            )
        )
