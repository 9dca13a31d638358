"""Files the user names: secrets files read as exact text, exports written private."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from kavach.cli.errors import CliError

PRIVATE_MODE = 0o600
STDIN_NAME = "-"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{where} is not UTF-8 text") from None


def read_stdin_bytes() -> bytes:
    """Return everything on stdin, as bytes."""
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stream.read().encode("utf-8")


def read_text(path: str) -> str:
    """Return the text of file `path` (`-`: stdin) exactly: no newline translation."""
    if path == STDIN_NAME:
        return _decode(read_stdin_bytes(), "standard input")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory") from None
    except PermissionError:
        raise CliError(f"{path}: permission denied") from None
    return _decode(data, path)


def write_private(path: Path, text: str, *, force: bool) -> None:
    """Write `text` to `path` with mode 0600; an existing file is replaced only with `force`."""
    data = text.encode("utf-8")
    if not force:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, PRIVATE_MODE)
        except FileExistsError:
            raise CliError(f"{path} exists; pass --force to overwrite it") from None
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_MODE)
            handle.write(data)
        return
    # Replaced by a rename, so the old file's mode and hard links never carry the secrets.
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise CliError(f"cannot write {path}: {exc.strerror}") from None
        raise
