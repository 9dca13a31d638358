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


def test_no_proxy_is_trusted_by_default_and_entries_must_be_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().proxy_list == []
    monkeypatch.setenv("KAVACH_TRUSTED_PROXIES", " 10.1.2.3, 10.1.0.0/24,::1 ")
    assert get_settings().proxy_list == ["10.1.2.3", "10.1.0.0/24", "::1"]
    monkeypatch.setenv("KAVACH_TRUSTED_PROXIES", "10.1.2.3,nginx")
    with pytest.raises(ValueError, match="not an IP address or network: 'nginx'"):
        get_settings()


def test_production_refuses_trusting_every_address() -> None:
    settings = _production(github_client_id="Iv1.abc")
    settings.trusted_proxies = "10.0.0.1,*"
    with pytest.raises(ConfigurationError, match=r"KAVACH_TRUSTED_PROXIES=\*"):
        check_startable(settings)


def test_production_refuses_a_server_nobody_can_log_in_to() -> None:
    with pytest.raises(ConfigurationError, match="nobody could log in"):
        check_startable(_production(enable_local_idp=False))


@pytest.mark.parametrize("value", ["true", "false"])
def test_the_removed_device_page_setting_is_refused_in_every_mode(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("KAVACH_DEVICE_PAGE_ALLOW_REMOTE", value)
    with pytest.raises(ConfigurationError, match="KAVACH_DEVICE_PAGE_ALLOW_REMOTE no longer"):
        check_startable(get_settings())


def test_github_allow_lists_are_names_compared_without_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAVACH_GITHUB_ALLOWED_ORGS", "Acme-Corp, platform ")
    monkeypatch.setenv("KAVACH_GITHUB_ALLOWED_LOGINS", "Octocat")
    auth = get_settings().auth
    assert auth.allowed_github_orgs == {"acme-corp", "platform"}
    assert auth.allowed_github_logins == {"octocat"}
    monkeypatch.setenv("KAVACH_GITHUB_ALLOWED_LOGINS", "octo cat")
    with pytest.raises(ValueError, match="not GitHub account names: octo cat"):
        get_settings()


@pytest.mark.parametrize("address", ["9464", ":9464", "host:", "host:0", "host:65536", "h:x"])
def test_a_metrics_address_needs_a_host_and_a_port(address: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        Settings(metrics_addr=address)


def test_metrics_are_off_by_default_and_a_listener_keeps_them_off_the_api_port() -> None:
    assert not Settings().metrics_on
    on_api = Settings(metrics_enabled=True)
    assert on_api.metrics_on and on_api.metrics_on_api_port
    for elsewhere in (
        Settings(metrics_addr="[::1]:9464"),
        Settings(metrics_enabled=True, metrics_addr="0.0.0.0:9464"),
    ):
        assert elsewhere.metrics_on and not elsewhere.metrics_on_api_port
