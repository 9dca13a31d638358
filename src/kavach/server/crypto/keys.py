"""Load the server's three keys, generating them on first start in development mode."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from kavach.server.crypto.envelope import Keyring
from kavach.server.datadir import private_data_dir
from kavach.server.errors import ConfigurationError
from kavach.server.settings import Mode, Settings

KEY_BYTES = 32
KEYS_FILE_NAME = "keys.json"
OLD_KEYS_NAME = "secret_encryption_old_keys"
_PLACEHOLDER_WORDS = ("change", "placeholder", "example", "secret", "xxxx", "todo", "dummy")
_KEY_NAMES = ("jwt_signing_key", "secret_encryption_key", "provider_credential_key")


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """The raw keys; repr never shows them."""

    jwt_signing_key: bytes
    secret_encryption_key: bytes
    provider_credential_key: bytes
    generated: bool
    # Earlier secret-encryption keys: they still unwrap data keys until those are re-wrapped.
    old_secret_encryption_keys: tuple[bytes, ...] = ()

    def secret_keyring(self) -> Keyring:
        """Return the KEK keyring for secrets: the active key and the ones it replaced."""
        return Keyring(self.secret_encryption_key, self.old_secret_encryption_keys)

    def __repr__(self) -> str:
        return f"KeyMaterial(generated={self.generated}, keys=<redacted>)"


def encode_key(raw: bytes) -> str:
    """Encode a key as URL-safe base64, the form settings and files hold."""
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_key(name: str, text: str) -> bytes:
    """Decode and check one key; placeholders and weak keys are refused."""
    stripped = text.strip()
    lowered = stripped.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        raise ConfigurationError(f"{name} looks like a placeholder; generate a random key")
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{name} is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{name} must be {KEY_BYTES} bytes of base64, not {len(raw)}")
    if len(set(raw)) < KEY_BYTES // 2:
        raise ConfigurationError(f"{name} has too little entropy; generate a random key")
    return raw


def generate_key() -> str:
    """Return a new random key in its encoded form."""
    return encode_key(secrets.token_bytes(KEY_BYTES))


def _configured(settings: Settings, name: str) -> str | None:
    value: SecretStr | None = getattr(settings.keys, name)
    path: Path | None = getattr(settings.keys, f"{name}_file")
    if value is not None and path is not None:
        raise ConfigurationError(f"set KAVACH_{name.upper()} or its _FILE variant, not both")
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read {name} file {path}: {exc.strerror}") from exc
    return value.get_secret_value() if value is not None else None


def _read_or_create_file(path: Path) -> dict[str, str]:
    """Read the generated keys file, creating it (0600, atomically) if absent."""
    private_data_dir(path.parent)
    if not path.exists():
        fresh = {name: generate_key() for name in _KEY_NAMES}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(fresh, handle)
        try:
            # link() fails if another process won the race; its file is then the one to use.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"{path} must not be readable by others (chmod 600)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a keys file")
    return {str(k): str(v) for k, v in data.items()}


def load_keys(settings: Settings) -> KeyMaterial:
    """Return the keys from settings, or (development only) from the generated keys file."""
    configured = {name: _configured(settings, name) for name in _KEY_NAMES}
    missing = [name for name, value in configured.items() if value is None]
    generated = False
    stored: dict[str, str] = {}
    if missing:
        if settings.mode is Mode.PRODUCTION:
            names = ", ".join(f"KAVACH_{name.upper()}" for name in missing)
            raise ConfigurationError(f"production mode needs explicit keys; missing: {names}")
        stored = _read_or_create_file(settings.data_dir / KEYS_FILE_NAME)
        for name in missing:
            if name not in stored:
                raise ConfigurationError(f"{name} missing from the keys file")
            configured[name] = stored[name]
        generated = True
    raw = {name: decode_key(name, value or "") for name, value in configured.items()}
    if len(set(raw.values())) != len(raw):
        raise ConfigurationError("the three keys must be different from each other")
    old_keys = settings.keys.secret_encryption_old_keys
    if old_keys is not None:
        old_text = old_keys.get_secret_value()
    elif "secret_encryption_key" in missing:
        old_text = stored.get(OLD_KEYS_NAME, "")
    else:
        old_text = ""
    old = tuple(decode_key(OLD_KEYS_NAME, part) for part in old_text.split(",") if part.strip())
    return KeyMaterial(
        jwt_signing_key=raw["jwt_signing_key"],
        secret_encryption_key=raw["secret_encryption_key"],
        provider_credential_key=raw["provider_credential_key"],
        generated=generated,
        old_secret_encryption_keys=old,
    )


def _write_keys_file(path: Path, data: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def rotate_generated_secret_key(settings: Settings) -> str:
    """Make a new secret-encryption key active in the generated keys file; return its id."""
    from filelock import FileLock

    from kavach.server.crypto.envelope import key_id

    if settings.keys.secret_encryption_key or settings.keys.secret_encryption_key_file:
        raise ConfigurationError(
            "the secret-encryption key is configured, not generated: put the new key in "
            "KAVACH_SECRET_ENCRYPTION_KEY and the old one in KAVACH_SECRET_ENCRYPTION_OLD_KEYS, "
            "restart every instance, then run rotate-key to re-wrap"
        )
    path = settings.data_dir / KEYS_FILE_NAME
    with FileLock(str(path) + ".lock", timeout=30, mode=0o600):
        stored = _read_or_create_file(path)
        old = [part for part in stored.get(OLD_KEYS_NAME, "").split(",") if part]
        old.insert(0, stored["secret_encryption_key"])
        fresh = generate_key()
        _write_keys_file(
            path, {**stored, "secret_encryption_key": fresh, OLD_KEYS_NAME: ",".join(old)}
        )
    return key_id(decode_key("secret_encryption_key", fresh))


def retire_generated_secret_keys(settings: Settings, keep: set[str]) -> list[str]:
    """Drop old secret keys whose ids are not in `keep` from the keys file; return dropped ids."""
    from filelock import FileLock

    from kavach.server.crypto.envelope import key_id

    path = settings.data_dir / KEYS_FILE_NAME
    with FileLock(str(path) + ".lock", timeout=30, mode=0o600):
        stored = _read_or_create_file(path)
        old = [part for part in stored.get(OLD_KEYS_NAME, "").split(",") if part]
        kept = [k for k in old if key_id(decode_key(OLD_KEYS_NAME, k)) in keep]
        dropped = [key_id(decode_key(OLD_KEYS_NAME, k)) for k in old if k not in kept]
        _write_keys_file(path, {**stored, OLD_KEYS_NAME: ",".join(kept)})
    return dropped
