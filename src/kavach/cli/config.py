"""Local state in ~/.kavach: the private directory, atomic writes and config.yaml."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kavach.cli.errors import CliError

HOME_ENV = "KAVACH_HOME"
CONFIG_FILE = "config.yaml"
DIR_MODE = 0o700
FILE_MODE = 0o600


def home_dir() -> Path:
    """Return the state directory: $KAVACH_HOME or ~/.kavach."""
    override = os.environ.get(HOME_ENV)
    return Path(override).expanduser() if override else Path.home() / ".kavach"


def _home_named(home: Path) -> tuple[str, str]:
    """Return how to name `home` in a message, and the way out of a problem with it."""
    if os.environ.get(HOME_ENV):
        return (
            f"{HOME_ENV} ({home})",
            f"set {HOME_ENV} to a directory you can write to (it is created if missing)",
        )
    return (
        str(home),
        f"move it aside, or set {HOME_ENV} to a directory you can write to",
    )


def check_home(home: Path) -> None:
    """Make sure `home` is, or can become, a private directory this user writes to.

    Each problem is named with the way out, before anything is sent anywhere: a login must
    not be approved only to find that its credentials cannot be saved.
    """
    import tempfile  # here, as in atomic_write: it imports random and hashlib

    named, way_out = _home_named(home)
    try:
        if home.exists() and not home.is_dir():
            raise CliError(f"{named} is a file, not a directory; {way_out}")
        if home.is_dir() and not os.access(home, os.W_OK | os.X_OK):
            raise CliError(f"{named} is not writable by you; {way_out}")
        ensure_private_dir(home)
        with tempfile.TemporaryFile(dir=home):
            pass  # a read-only file system, a full disk or a quota shows here
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CliError(f"{named} cannot be used ({reason}); {way_out}") from None


def ensure_private_dir(path: Path) -> Path:
    """Create `path` if needed and make it readable by its owner only."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing directory.
    path.chmod(DIR_MODE)
    return path


def atomic_write(path: Path, text: str, *, mode: int = FILE_MODE, private_dir: bool = True) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half of one.

    The directory is made private too unless `private_dir` is False (a project's own).
    """
    import tempfile  # here: most commands write nothing, and it imports random and hashlib

    if private_dir:
        ensure_private_dir(path.parent)
    # mkstemp creates the file 0600 in the same directory, so the rename stays on one filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def normalize_server(url: str) -> str:
    """Return `url` as a canonical http(s) base URL, the key credentials are stored under."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"invalid server URL {url!r}: expected http(s)://host[:port]")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"


@dataclass
class ActiveContext:
    """The organization, secret group and environment commands use by default (names)."""

    organization: str | None = None
    secret_group: str | None = None
    environment: str | None = None


@dataclass
class Config:
    """The contents of config.yaml."""

    server: str | None = None
    context: ActiveContext = field(default_factory=ActiveContext)
    # Keys this version does not know, kept so a newer CLI's settings survive a save.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML document for this config."""
        context = {
            "organization": self.context.organization,
            "secret_group": self.context.secret_group,
            "environment": self.context.environment,
        }
        return {**self.extra, "server": self.server, "context": context}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Config:
        """Build a config from a parsed YAML document, rejecting wrong types."""
        server = raw.get("server")
        context = raw.get("context") or {}
        if not isinstance(context, dict):
            raise CliError("config.yaml: 'context' must be a mapping")
        names = {key: context.get(key) for key in ("organization", "secret_group", "environment")}
        for key, value in {"server": server, **names}.items():
            if value is not None and not isinstance(value, str):
                raise CliError(f"config.yaml: {key!r} must be a string")
        extra = {k: v for k, v in raw.items() if k not in ("server", "context")}
        return cls(server=server, context=ActiveContext(**names), extra=extra)


def load_config(home: Path) -> Config:
    """Read config.yaml from `home`; a missing file is an empty config."""
    # Imported here: yaml is slow to import and `kavach --help` must stay fast.
    import yaml

    path = home / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except NotADirectoryError:
        check_home(home)  # names what is wrong with the home directory
        raise
    except PermissionError:
        raise CliError(f"cannot read {path}: permission denied") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        return Config()
    if not isinstance(raw, dict):
        raise CliError(f"{path} must hold a mapping")
    return Config.from_dict(raw)


def save_config(home: Path, config: Config) -> None:
    """Write config.yaml atomically, readable by its owner only."""
    import yaml

    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    atomic_write(home / CONFIG_FILE, text)
