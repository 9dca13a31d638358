"""config.yaml, the private state directory and atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kavach.cli.config import (
    ActiveContext,
    Config,
    atomic_write,
    home_dir,
    load_config,
    normalize_server,
    save_config,
)
from kavach.cli.errors import CliError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_dir_honours_kavach_home(home: Path) -> None:
    assert home_dir() == home


def test_home_dir_defaults_to_dot_kavach(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KAVACH_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_dir() == tmp_path / ".kavach"


def test_missing_config_is_empty(home: Path) -> None:
    assert load_config(home) == Config()


def test_save_then_load_round_trips_with_private_modes(home: Path) -> None:
    config = Config(server="http://kavach.test", context=ActiveContext("acme", "web", None))
    save_config(home, config)

    assert load_config(home) == config
    assert mode(home) == 0o700
    assert mode(home / "config.yaml") == 0o600
    text = (home / "config.yaml").read_text()
    assert "server: http://kavach.test" in text
    assert "organization: acme" in text
    assert "environment: null" in text


def test_save_tightens_an_existing_loose_directory(home: Path) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    save_config(home, Config(server="http://kavach.test"))
    assert mode(home) == 0o700


def test_unknown_keys_survive_a_save(home: Path) -> None:
    home.mkdir()
    (home / "config.yaml").write_text("server: http://a.test\ntelemetry: false\n")
    config = load_config(home)
    config.server = "http://b.test"
    save_config(home, config)
    assert load_config(home).extra == {"telemetry": False}


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_config(home, Config(server="http://old.test"))

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="disk full"):
            save_config(home, Config(server="http://new.test"))

    assert load_config(home).server == "http://old.test"
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]


def test_atomic_write_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "state" / "file.json"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server: [unclosed", "not valid YAML"),
        ("- a list\n", "must hold a mapping"),
        ("server: 42\n", "'server' must be a string"),
        ("context: nope\n", "'context' must be a mapping"),
        ("context: {organization: [x]}\n", "'organization' must be a string"),
    ],
)
def test_malformed_config_is_a_local_error(home: Path, text: str, message: str) -> None:
    home.mkdir()
    (home / "config.yaml").write_text(text)
    with pytest.raises(CliError, match=message) as caught:
        load_config(home)
    assert caught.value.exit_code == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://Kavach.Test:8080/", "http://kavach.test:8080"),
        ("  https://kavach.test  ", "https://kavach.test"),
        ("https://example.com/kavach/", "https://example.com/kavach"),
    ],
)
def test_normalize_server(given: str, expected: str) -> None:
    assert normalize_server(given) == expected


@pytest.mark.parametrize("bad", ["kavach.test", "ftp://kavach.test", "http://", ""])
def test_normalize_server_rejects_non_http_urls(bad: str) -> None:
    with pytest.raises(CliError, match="invalid server URL"):
        normalize_server(bad)
