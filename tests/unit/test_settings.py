"""Settings: defaults, URL normalisation and the production-mode refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavach.server.errors import ConfigurationError
from kavach.server.settings import (
    AuthSettings,
    DatabaseSettings,
    Mode,
    Settings,
    check_startable,
    get_settings,
)


def test_defaults_use_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KAVACH_DATABASE_URL", raising=False)
    monkeypatch.setenv("KAVACH_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/kavach.db"
    assert settings.auth.identity_provider == "local"
    assert settings.auth.local_idp_enabled


def test_environment_selects_postgresql_and_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVACH_DATABASE_URL", "postgresql://u@h:5433/db")
    monkeypatch.setenv("KAVACH_GITHUB_CLIENT_ID", "Iv1.abc")
    monkeypatch.setenv("KAVACH_GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    settings = get_settings()
    assert settings.database_url == "postgresql+asyncpg://u@h:5433/db"
    assert settings.auth.identity_provider == "github"
    assert not settings.auth.local_idp_enabled
    assert settings.auth.github_api_url == "https://ghe.example.com/api/v3"


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "kavach.env"
    env_file.write_text("KAVACH_ACCESS_TOKEN_TTL_SECONDS=60\nKAVACH_MODE=development\n")
    monkeypatch.setenv("KAVACH_ENV_FILE", str(env_file))
    assert get_settings().auth.access_token_ttl_seconds == 60


def _production(**auth: object) -> Settings:
    return Settings(
        mode=Mode.PRODUCTION,
        db=DatabaseSettings(database_url="postgresql://db/kavach"),
        auth=AuthSettings(**auth),  # type: ignore[arg-type]
    )


def test_production_refuses_sqlite() -> None:
    settings = Settings(
        mode=Mode.PRODUCTION, db=DatabaseSettings(), auth=AuthSettings(github_client_id="x")
    )
    with pytest.raises(ConfigurationError, match="SQLite"):
        check_startable(settings)


def test_production_refuses_local_idp_unless_enabled() -> None:
    with pytest.raises(ConfigurationError, match="KAVACH_ENABLE_LOCAL_IDP"):
        check_startable(_production())
    check_startable(_production(enable_local_idp=True))
    check_startable(_production(github_client_id="Iv1.abc"))


def test_development_allows_everything() -> None:
    check_startable(Settings(db=DatabaseSettings(), auth=AuthSettings()))
