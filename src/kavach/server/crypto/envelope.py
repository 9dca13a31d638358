"""AES-256-GCM sealing, and the keyring of key-encryption keys (KEKs) addressed by id."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
DATA_KEY_BYTES = 32


class DecryptionFailed(Exception):
    """A ciphertext did not authenticate: wrong key, wrong associated data, or tampering."""

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.index = index  # which of several (unseal_all) failed


def key_id(key: bytes) -> str:
    """Return a stable, non-secret id for a key (a truncated hash of it)."""
    return hashlib.sha256(b"kavach-key-id:" + key).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _cipher(key: bytes) -> AESGCM:
    # Setting up a key schedule costs more than sealing a short value: reuse it per key.
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt under a fresh random nonce; return nonce + ciphertext + tag."""
    nonce = os.urandom(NONCE_BYTES)  # what secrets.token_bytes reads, without its layers
    return nonce + _cipher(key).encrypt(nonce, plaintext, aad)


def seal_all(key: bytes, items: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Seal each (plaintext, aad) under one key, as seal() does, drawing all nonces at once."""
    nonces = os.urandom(NONCE_BYTES * len(items))  # one read of the system's source, not one each
    cipher = _cipher(key)
    sealed = []
    for i, (plaintext, aad) in enumerate(items):
        nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
        sealed.append(nonce + cipher.encrypt(nonce, plaintext, aad))
    return sealed


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt what seal() produced with the same key and associated data."""
    return unseal_all(key, [(sealed, aad)])[0]


def unseal_all(key: bytes, items: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """Decrypt each (sealed, aad) under one key, as unseal() does; the first failure stops it."""
    decrypt = _cipher(key).decrypt
    opened = []
    for index, (sealed, aad) in enumerate(items):
        try:
            opened.append(decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad))
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailed("ciphertext failed authentication", index) from exc
    return opened


def new_data_key() -> bytes:
    """Return a fresh random data key."""
    return secrets.token_bytes(DATA_KEY_BYTES)


@dataclass(frozen=True, repr=False)
class Keyring:
    """Key-encryption keys by id: the active one wraps, every one unwraps."""

    active: bytes
    retired: tuple[bytes, ...] = ()
    by_id: dict[str, bytes] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for key in (self.active, *self.retired):
            self.by_id[key_id(key)] = key

    def __repr__(self) -> str:
        return f"Keyring(active={self.active_id}, known={sorted(self.by_id)})"

    @property
    def active_id(self) -> str:
        """Return the id of the key that wraps new data keys."""
        return key_id(self.active)

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        """Wrap a data key under the active KEK; return (kek id, wrapped)."""
        return self.active_id, seal(self.active, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Unwrap a data key; KeyError if this keyring does not hold that KEK."""
        return unseal(self.by_id[kek_id], wrapped, aad)
