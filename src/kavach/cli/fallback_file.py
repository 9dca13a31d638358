"""A fallback file: an environment's secrets as last read, sealed under the caller's credential.

The file is JSON: a header in the clear (format version, server, environment id and name,
when it was written, the KDF's salt, the nonce) and the secrets sealed with AES-256-GCM.
The whole header is the cipher's associated data, so changing any of it (the environment,
or `written_at` to look younger than `--fallback-max-age` allows) makes the file fail to
open, as a wrong key does.

The key is HKDF-SHA256 of the credential's secret (a service token, or the random seed made
at login and kept with the login's tokens) with a random salt per file. A slow KDF such as
scrypt stretches a guessable password; these inputs are random and at least 256 bits
strong, so stretching would only slow every `kavach run` without making a guess harder.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kavach.cli.config import atomic_write
from kavach.cli.errors import CliError, ExitCode

FORMAT = "kavach-fallback"
VERSION = 1
KDF = "hkdf-sha256"
KEY_BYTES = 32  # AES-256
SALT_BYTES = 16
NONCE_BYTES = 12
INFO = b"kavach fallback file v1"
TEXT_FIELDS = ("server", "environment_id", "environment", "written_at")


class FallbackError(CliError):
    """A fallback file that cannot be used; `code` says which way."""

    kind = "fallback_error"


class FallbackMissing(FallbackError):
    """No fallback file where one was looked for."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="fallback_missing")


class FallbackLocked(FallbackError):
    """The caller's credential does not open the file (another credential, or altered)."""

    exit_code = ExitCode.AUTH

    def __init__(self, message: str) -> None:
        super().__init__(message, code="fallback_locked")


class FallbackWrongEnvironment(FallbackError):
    """The file holds another environment (or another server's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="fallback_wrong_environment")


class FallbackTooOld(FallbackError):
    """The file is older than `--fallback-max-age` allows."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="fallback_too_old")


class FallbackCorrupt(FallbackError):
    """The file is not a fallback this version can read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="fallback_corrupt")


@dataclass(frozen=True)
class Header:
    """What a fallback file says about itself, readable without the key."""

    server: str
    environment_id: str
    environment: str  # the name it was read under, e.g. `acme/web/prod`
    written_at: datetime
    salt: bytes
    nonce: bytes

    def associated_data(self) -> bytes:
        """Return the bytes AES-GCM authenticates with the secrets: the whole header."""
        return _canonical(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Return the header as stored."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "kdf": KDF,
            "server": self.server,
            "environment_id": self.environment_id,
            "environment": self.environment,
            "written_at": self.written_at.astimezone(UTC).isoformat(timespec="seconds"),
            "salt": _b64(self.salt),
            "nonce": _b64(self.nonce),
        }


@dataclass(frozen=True)
class Fallback:
    """An opened fallback: its header, the version it holds and the secrets."""

    header: Header
    version: dict[str, Any] | None
    secrets: dict[str, str]


def derive_key(credential: bytes, salt: bytes) -> bytes:
    """Return the AES-256 key for `credential`'s fallbacks with this `salt`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=INFO).derive(
        credential
    )


def seal(
    credential: bytes,
    *,
    server: str,
    environment_id: str,
    environment: str,
    version: dict[str, Any] | None,
    secrets: dict[str, str],
    now: datetime | None = None,
) -> str:
    """Return the text of a fallback file holding `secrets`, sealed under `credential`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = Header(
        server=server,
        environment_id=environment_id,
        environment=environment,
        written_at=(now or datetime.now(UTC)).replace(microsecond=0),
        salt=os.urandom(SALT_BYTES),
        nonce=os.urandom(NONCE_BYTES),
    )
    plaintext = _canonical({"version": version, "secrets": secrets})
    sealed = AESGCM(derive_key(credential, header.salt)).encrypt(
        header.nonce, plaintext, header.associated_data()
    )
    return json.dumps({**header.to_dict(), "ciphertext": _b64(sealed)}, indent=2) + "\n"


def write(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically: 0600, in a 0700 directory, fsynced first."""
    atomic_write(path, text)


def read_header(path: Path) -> tuple[Header, bytes]:
    """Return the header of the fallback at `path` and its sealed secrets, without the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FallbackMissing(f"no fallback file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise FallbackCorrupt(f"cannot read the fallback file {path} ({reason})") from None
    return parse(text, path)


def parse(text: str, path: Path) -> tuple[Header, bytes]:
    """Return the header and sealed secrets in a fallback file's `text`."""
    broken = FallbackCorrupt(f"{path} is not a Kavach fallback file this version can read")
    try:
        raw = json.loads(text)
    except ValueError:
        raise broken from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise broken
    if raw.get("version") != VERSION or raw.get("kdf") != KDF:
        raise FallbackCorrupt(
            f"{path} is a fallback of format version {raw.get('version')!r}; this kavach "
            f"reads version {VERSION}"
        )
    try:
        texts = {name: raw[name] for name in TEXT_FIELDS}
        if not all(isinstance(value, str) and value for value in texts.values()):
            raise TypeError("a header field is not text")
        written_at = datetime.fromisoformat(texts["written_at"])
        if written_at.tzinfo is None:
            raise ValueError("written_at has no time zone")
        header = Header(
            server=texts["server"],
            environment_id=texts["environment_id"],
            environment=texts["environment"],
            written_at=written_at,
            salt=_unb64(raw["salt"]),
            nonce=_unb64(raw["nonce"]),
        )
        sealed = _unb64(raw["ciphertext"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise broken from None
    if len(header.salt) != SALT_BYTES or len(header.nonce) != NONCE_BYTES:
        raise broken
    return header, sealed


def unseal(header: Header, sealed: bytes, credential: bytes, path: Path) -> Fallback:
    """Return the secrets in a fallback, refusing a wrong credential or an altered file."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plaintext = AESGCM(derive_key(credential, header.salt)).decrypt(
            header.nonce, sealed, header.associated_data()
        )
    except InvalidTag:
        raise FallbackLocked(
            f"your credential does not open the fallback {path}: it was written with another "
            "login or token (log in or set KAVACH_TOKEN as when it was written), or it was "
            "altered"
        ) from None
    try:
        payload = json.loads(plaintext)
        version, secrets = payload["version"], payload["secrets"]
        if version is not None and not isinstance(version, dict):
            raise TypeError("version")
        if not isinstance(secrets, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in secrets.items()
        ):
            raise TypeError("secrets")
    except (ValueError, KeyError, TypeError):
        raise FallbackCorrupt(f"{path} holds no secrets this version can read") from None
    return Fallback(header, version, secrets)


def open_file(path: Path, credential: bytes) -> Fallback:
    """Read and open the fallback at `path` with `credential`."""
    header, sealed = read_header(path)
    return unseal(header, sealed, credential, path)


def age_text(seconds: float) -> str:
    """Return an age as people say it: `45s`, `12m`, `3h12m`, `2d5h`."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)
