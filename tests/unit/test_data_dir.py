"""The data directory: created private, and refused when group or others can reach it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kavach.server.crypto.keys import load_keys
from kavach.server.db.engine import create_engine
from kavach.server.errors import ConfigurationError
from kavach.server.settings import AuthSettings, DatabaseSettings, KeySettings, Settings


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        db=DatabaseSettings(),
        keys=KeySettings(),
        auth=AuthSettings(enable_local_idp=True),
    )


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o770])
@pytest.mark.parametrize("use", ["keys", "database"])
def test_a_data_directory_others_can_reach_is_refused(tmp_path: Path, mode: int, use: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(mode)
    start = load_keys if use == "keys" else create_engine
    with pytest.raises(ConfigurationError) as refused:
        start(_settings(data_dir))
    assert f"chmod 700 {data_dir}" in refused.value.message
    assert f"(mode {mode:o})" in refused.value.message
    assert list(data_dir.iterdir()) == []  # neither keys nor a database were written there
    assert stat.S_IMODE(data_dir.stat().st_mode) == mode  # left as its owner set it


def test_a_missing_data_directory_is_created_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    first = load_keys(_settings(data_dir))
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    # A private one already there is used as it is.
    assert load_keys(_settings(data_dir)).jwt_signing_key == first.jwt_signing_key
