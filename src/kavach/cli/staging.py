"""Staged secret changes, one file per server and environment, until they are committed.

`~/.kavach/staging/<server-host>/<environment-id>.json` (KAVACH_HOME honoured), 0600 in
0700 directories, replaced atomically. It holds the staged values in clear text, like an
explicit export would, and nothing else reads or writes it but `kavach secret` commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kavach.cli.config import atomic_write, ensure_private_dir
from kavach.cli.errors import CliError

STAGING_DIR = "staging"
FORMAT_VERSION = 1
LOCK_TIMEOUT = 30.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def host_dir_name(server: str) -> str:
    """Return the directory name for `server`: its host and port, made file-name safe."""
    netloc = urlsplit(server).netloc.lower() or "server"
    return _SAFE.sub("_", netloc)


@dataclass
class Staged:
    """Changes staged for one environment on top of `base_version` (None: nothing then)."""

    server: str
    environment_id: str
    environment: str | None
    base_version: str | None
    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Tell whether nothing is staged."""
        return not (self.set or self.unset)

    @property
    def count(self) -> int:
        """Return how many names have a staged change."""
        return len(self.set) + len(self.unset)

    def stage_value(self, name: str, value: str) -> None:
        """Stage `name` = `value` (replacing a staged removal of it)."""
        if name in self.unset:
            self.unset.remove(name)
        self.set[name] = value

    def stage_removal(self, name: str) -> None:
        """Stage the removal of `name` (replacing a staged value for it)."""
        self.set.pop(name, None)
        if name not in self.unset:
            self.unset.append(name)
            self.unset.sort()

    def unstage(self, name: str) -> None:
        """Forget any staged change to `name`."""
        self.set.pop(name, None)
        if name in self.unset:
            self.unset.remove(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "format": FORMAT_VERSION,
            "server": self.server,
            "environment_id": self.environment_id,
            "environment": self.environment,
            "base_version": self.base_version,
            "set": dict(sorted(self.set.items())),
            "unset": sorted(self.unset),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Staged:
        """Parse the stored form, refusing anything malformed."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
            raise ValueError("not a staging file of this version")
        values, unset = raw.get("set"), raw.get("unset")
        texts = [raw.get("server"), raw.get("environment_id")]
        optional = [raw.get("environment"), raw.get("base_version")]
        if not (
            isinstance(values, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
            and isinstance(unset, list)
            and all(isinstance(name, str) for name in unset)
            and all(isinstance(text, str) for text in texts)
            and all(item is None or isinstance(item, str) for item in optional)
        ):
            raise ValueError("wrong types")
        return cls(
            server=str(texts[0]),
            environment_id=str(texts[1]),
            environment=optional[0],
            base_version=optional[1],
            set=dict(values),
            unset=sorted(unset),
        )


class StagingArea:
    """The staging file of one environment on one server."""

    def __init__(self, home: Path, server: str, environment_id: str) -> None:
        if _ID.fullmatch(environment_id) is None:
            raise CliError("the server sent an environment id that cannot name a file")
        self.home = home
        self.server = server
        self.environment_id = environment_id
        self.directory = home / STAGING_DIR / host_dir_name(server)
        self.path = self.directory / f"{environment_id}.json"

    def _private_dirs(self) -> None:
        # Each level 0700: mkdir(parents=True) would create parents with the umask's mode.
        for path in (self.home, self.home / STAGING_DIR, self.directory):
            ensure_private_dir(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the inter-process lock of this staging file (read-modify-write safely)."""
        from filelock import FileLock, Timeout

        self._private_dirs()
        lock = FileLock(self.directory / f"{self.environment_id}.lock", mode=0o600)
        try:
            with lock.acquire(timeout=LOCK_TIMEOUT):
                yield
        except Timeout as exc:
            raise CliError(f"another kavach process holds {lock.lock_file}") from exc

    def load(self) -> Staged | None:
        """Return the staged changes, or None when nothing is staged."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return Staged.from_dict(json.loads(text))
        except ValueError:
            # Never the file's text in the message: it holds secret values.
            raise CliError(
                f"{self.path} is unreadable; `kavach secret reset` discards it"
            ) from None

    def new(self, environment: str | None, base_version: str | None) -> Staged:
        """Return an empty staging for this environment on top of `base_version`."""
        return Staged(self.server, self.environment_id, environment, base_version)

    def save(self, staged: Staged) -> None:
        """Write `staged` atomically (0600), or remove the file when nothing is staged."""
        if staged.empty:
            self.clear()
            return
        self._private_dirs()
        atomic_write(self.path, json.dumps(staged.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def clear(self) -> bool:
        """Delete the staging file; tell whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
