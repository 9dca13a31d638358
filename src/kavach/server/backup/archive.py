"""The backup file: a gzip'd tar of a manifest and one JSON-lines member per table."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from kavach.server.backup.columns import Kind
from kavach.server.backup.errors import FileExists, NotABackup

FORMAT = "kavach-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MANIFEST_LIMIT = 16 * 1024 * 1024
# Table data stays in memory up to this size, then in an unnamed file beside the backup.
_SPOOL_BYTES = 8 * 1024 * 1024
_DAMAGED = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableEntry(_Strict):
    """One table: its columns with their kinds, its rows and where they are."""

    name: str
    columns: list[tuple[str, Kind]]
    rows: int
    member: str
    sha256: str


class KeyIds(_Strict):
    """Ids of keys, per kind of key; never the keys."""

    secret_encryption: list[str] = []
    provider_credential: list[str] = []
    audit: list[str] = []

    def missing_from(self, held: KeyIds) -> dict[str, list[str]]:
        """Return, per kind, the ids here that `held` does not have."""
        found = {}
        for kind in ("secret_encryption", "provider_credential", "audit"):
            absent = sorted(set(getattr(self, kind)) - set(getattr(held, kind)))
            if absent:
                found[kind] = absent
        return found


class Manifest(_Strict):
    """What a backup holds and what restoring it needs."""

    format: Literal["kavach-backup"]
    format_version: int
    kavach_version: str
    schema_revision: str
    created_at: datetime
    database: Literal["sqlite", "postgresql"]
    tables: list[TableEntry]
    # The keys the data needs that the server taking the backup held: a restore needs them.
    keys: KeyIds
    # Key ids the data refers to that the server taking it did not hold either (data already
    # unreadable or unverifiable there), and provider credentials no held key decrypts.
    keys_unavailable: KeyIds = KeyIds()
    unreadable_provider_credentials: int = 0


@dataclass
class TableData:
    """A table's rows as they are written: JSON lines, counted and hashed."""

    name: str
    columns: list[tuple[str, Kind]]
    spool: IO[bytes]
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, row: list[Any]) -> None:
        """Append one encoded row."""
        line = orjson.dumps(row) + b"\n"
        self.spool.write(line)
        self.digest.update(line)
        self.rows += 1

    def entry(self, position: int) -> TableEntry:
        """Describe this table for the manifest."""
        return TableEntry(
            name=self.name,
            columns=self.columns,
            rows=self.rows,
            member=f"tables/{position:03d}_{self.name}.jsonl",
            sha256=self.digest.hexdigest(),
        )


def new_table(directory: Path, name: str, columns: list[tuple[str, Kind]]) -> TableData:
    """Start collecting a table's rows, spilling to an unnamed file in `directory`."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, dir=str(directory))  # noqa: SIM115
    return TableData(name=name, columns=columns, spool=spool)


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    return info


def check_writable(path: Path, *, force: bool) -> None:
    """Refuse early a destination that exists (without --force) or is not a file."""
    if path.is_dir():
        raise FileExists(f"{path} is a directory; name the backup file to create")
    if path.exists() and not force:
        raise FileExists(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise FileExists(f"the directory {path.parent} does not exist")


def write_archive(path: Path, manifest: Manifest, tables: list[TableData], *, force: bool) -> None:
    """Write the backup: a 0600 file from its creation, moved into place when complete."""
    check_writable(path, force=force)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            mtime = manifest.created_at.timestamp()
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                body = manifest.model_dump_json(indent=1).encode()
                tar.addfile(_member(MANIFEST, len(body), mtime), io.BytesIO(body))
                for table, entry in zip(tables, manifest.tables, strict=True):
                    size = table.spool.tell()
                    table.spool.seek(0)
                    tar.addfile(_member(entry.member, size, mtime), table.spool)
            raw.flush()
            os.fsync(raw.fileno())
        _move_into_place(partial, path, force=force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _move_into_place(partial: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(partial, path)
    else:
        try:
            # link() never replaces: a file created meanwhile is kept and reported.
            os.link(partial, path)
        except FileExistsError:
            raise FileExists(f"{path} exists; pass --force to replace it") from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Reader:
    """Read a backup in one pass: the manifest, then each table's rows in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, mode="r|gz")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise NotABackup(f"{path} does not exist") from None
        except IsADirectoryError:
            raise NotABackup(f"{path} is a directory, not a backup file") from None
        except _DAMAGED as error:
            raise self._damaged(error) from None
        self.manifest = self._read_manifest()

    def _damaged(self, error: BaseException) -> NotABackup:
        reason = type(error).__name__
        return NotABackup(f"{self.path} is not a Kavach backup or is damaged ({reason})")

    def _next(self) -> tuple[tarfile.TarInfo, IO[bytes]]:
        try:
            info = self._tar.next()
            handle = self._tar.extractfile(info) if info is not None else None
        except _DAMAGED as error:
            raise self._damaged(error) from None
        if info is None or handle is None:
            raise NotABackup(f"{self.path} ends before all its tables")
        return info, handle

    def _read_manifest(self) -> Manifest:
        info, handle = self._next()
        if info.name != MANIFEST or info.size > _MANIFEST_LIMIT:
            raise NotABackup(f"{self.path} is not a Kavach backup (no manifest first)")
        try:
            data = orjson.loads(handle.read())
        except (orjson.JSONDecodeError, *_DAMAGED) as error:
            raise self._damaged(error) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotABackup(f"{self.path} is not a Kavach backup")
        if data.get("format_version") != FORMAT_VERSION:
            raise NotABackup(
                f"{self.path} is a backup in format version {data.get('format_version')!r}; "
                f"this Kavach reads version {FORMAT_VERSION}"
            )
        try:
            return Manifest.model_validate(data)
        except ValidationError as error:
            fields = sorted({".".join(map(str, e["loc"])) for e in error.errors()})
            raise NotABackup(
                f"{self.path} has a malformed manifest ({', '.join(fields)})"
            ) from None

    def rows(self, entry: TableEntry) -> Iterator[Any]:
        """Yield a table's rows as JSON values, checking their count and checksum."""
        info, handle = self._next()
        if info.name != entry.member:
            raise NotABackup(f"{self.path} holds {info.name} where {entry.member} belongs")
        digest = hashlib.sha256()
        count = 0
        try:
            for line in handle:
                digest.update(line)
                count += 1
                yield orjson.loads(line)
        except (orjson.JSONDecodeError, *_DAMAGED) as error:
            raise self._damaged(error) from None
        if count != entry.rows or digest.hexdigest() != entry.sha256:
            raise NotABackup(f"the rows of {entry.name} in {self.path} do not match its manifest")

    def close(self) -> None:
        """Close the file."""
        self._tar.close()
