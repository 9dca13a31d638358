"""Credentials per server URL, kept in the OS keyring or in a private file, never both."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from kavach.cli.config import atomic_write, ensure_private_dir
from kavach.cli.errors import CliError, NotLoggedIn

if TYPE_CHECKING:
    from filelock import BaseFileLock

STORE_ENV = "KAVACH_CREDENTIAL_STORE"
TOKEN_ENV = "KAVACH_TOKEN"  # noqa: S105 - the variable's name, not a token
KEYRING_SERVICE = "kavach"
CREDENTIALS_FILE = "credentials.json"
LOCK_FILE = "credentials.lock"
LOCK_TIMEOUT = 60.0

StoreMode = Literal["auto", "keyring", "file"]
FALLBACK_SEED_BYTES = 32
# Every token the server issues (JWTs, kvt_ and refresh tokens) is visible ASCII only.
TOKEN_CHARACTERS = frozenset(chr(point) for point in range(0x21, 0x7F))


def well_formed(token: str) -> bool:
    """Tell whether `token` could be sent in an Authorization header as it is."""
    return bool(token) and all(char in TOKEN_CHARACTERS for char in token)


def new_fallback_seed() -> str:
    """Return a fresh random seed for a login's fallback key (see cli.fallback_file)."""
    import secrets  # here: it imports random and hashlib, which most commands never need

    return secrets.token_urlsafe(FALLBACK_SEED_BYTES)


def clean_token(raw: str, source: str, hint: str) -> str:
    """Return `raw` without surrounding whitespace; refuse it if anything else is wrong.

    The message names `source` (where the token came from) and ends with `hint` (what to
    do); it never repeats the token. A newline or space copied along with a token is
    dropped, but one with characters no token has inside it is most likely something else
    pasted by mistake, and is not sent anywhere.
    """
    token = raw.strip()
    if not well_formed(token):
        raise NotLoggedIn(
            f"{source} is not a valid token (it holds spaces, control or non-ASCII "
            f"characters); {hint}"
        )
    return token


@dataclass(frozen=True)
class Credentials:
    """A token pair for one server and the user it belongs to; tokens stay out of repr.

    `fallback_seed` is made at login and kept through refreshes, so it lives exactly as
    long as the login: fallback files are encrypted under a key derived from it.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    user: dict[str, Any] = field(default_factory=dict)
    fallback_seed: str | None = field(default=None, repr=False)

    @property
    def login(self) -> str | None:
        """Return the user's login name, if the server sent one."""
        login = self.user.get("login")
        return login if isinstance(login, str) else None

    def is_expired(self, now: datetime | None = None) -> bool:
        """Tell whether the access token's expiry time has passed."""
        return (now or datetime.now(UTC)) >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form: ISO-8601 UTC expiry, user as the server described it."""
        stored = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            "user": self.user,
        }
        if self.fallback_seed is not None:
            stored["fallback_seed"] = self.fallback_seed
        return stored

    @classmethod
    def from_dict(cls, raw: Any) -> Credentials:
        """Parse the stored form, refusing anything malformed."""
        try:
            expires_at = datetime.fromisoformat(raw["expires_at"])
            user = raw.get("user") or {}
            access, refresh = raw["access_token"], raw["refresh_token"]
            seed = raw.get("fallback_seed")
            if not (
                isinstance(access, str) and isinstance(refresh, str) and isinstance(user, dict)
            ):
                raise TypeError("wrong types")
            if seed is not None and not (isinstance(seed, str) and well_formed(seed)):
                raise TypeError("a fallback seed must be a token")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CliError("stored credentials are unreadable; run `kavach login` again") from exc
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        again = "run `kavach login` again"
        return cls(
            clean_token(access, "the stored access token", again),
            clean_token(refresh, "the stored refresh token", again),
            expires_at,
            cast(dict[str, Any], user),
            seed,
        )

    @classmethod
    def from_token_response(
        cls,
        data: Any,
        *,
        user: dict[str, Any] | None = None,
        now: datetime | None = None,
        fallback_seed: str | None = None,
    ) -> Credentials:
        """Build credentials from a login or refresh answer; `user` fills in a missing user."""
        try:
            lifetime = timedelta(seconds=float(data["expires_in"]))
            access, refresh = data["access_token"], data["refresh_token"]
            if not (isinstance(access, str) and isinstance(refresh, str)):
                raise TypeError("tokens must be strings")
            access, refresh = access.strip(), refresh.strip()
            if not (well_formed(access) and well_formed(refresh)):
                raise ValueError("a token holds characters no token has")
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError("the server's token answer is malformed") from exc
        answered_user = data.get("user")
        resolved = answered_user if isinstance(answered_user, dict) else (user or {})
        expires_at = (now or datetime.now(UTC)) + lifetime
        return cls(access, refresh, expires_at, resolved, fallback_seed)


def _parse_json(text: str) -> Any:
    """Parse a stored record; unreadable text becomes an empty (and so rejected) record."""
    try:
        return json.loads(text)
    except ValueError:
        return {}


class _FileBackend:
    """credentials.json: one record per server URL, 0600 in a 0700 directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise CliError(f"{self.path} is corrupt; delete it and run `kavach login`") from exc
        if not isinstance(raw, dict):
            raise CliError(f"{self.path} is corrupt; delete it and run `kavach login`")
        return raw

    def get(self, server: str) -> Any:
        return self._read().get(server)

    def put(self, server: str, record: dict[str, Any]) -> None:
        records = self._read()
        records[server] = record
        atomic_write(self.path, json.dumps(records, indent=2) + "\n")

    def delete(self, server: str) -> bool:
        records = self._read()
        if records.pop(server, None) is None:
            return False
        if records:
            atomic_write(self.path, json.dumps(records, indent=2) + "\n")
        else:
            self.path.unlink()
        return True


def usable_keyring() -> Any | None:
    """Return the OS keyring backend, or None when keyring only has its fail/null stand-ins."""
    try:
        # Imported here: keyring discovers its backends on import, which is slow.
        import keyring
        from keyring.backends import chainer, fail, null

        backend = keyring.get_keyring()
    except Exception:  # any keyring error means "no keyring" in auto mode
        return None
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    return backend


class CredentialStore:
    """Load, save and delete credentials per server URL.

    Mode (argument, else $KAVACH_CREDENTIAL_STORE, else auto): `keyring` uses the OS keyring
    or fails; `file` uses credentials.json and never touches the keyring; `auto` uses the
    keyring when a real backend works and falls back to the file on any keyring error.
    Saving to the keyring deletes the file's record, so a file record is always the newer.
    """

    def __init__(self, home: Path, mode: str | None = None) -> None:
        chosen = (mode or os.environ.get(STORE_ENV) or "auto").strip().lower()
        if chosen not in ("auto", "keyring", "file"):
            raise CliError(f"{STORE_ENV} must be auto, keyring or file, not {chosen!r}")
        self.home = home
        self.mode: StoreMode = cast(StoreMode, chosen)
        self._file = _FileBackend(home / CREDENTIALS_FILE)
        self._keyring: Any | None = None
        self._keyring_probed = chosen == "file"  # file mode never touches the keyring
        self._lock: BaseFileLock | None = None

    @property
    def location(self) -> str:
        """Say where saved credentials go: "keyring" or the file's path."""
        return "keyring" if self._backend() is not None else str(self._file.path)

    def lock(self) -> BaseFileLock:
        """Return this store's inter-process lock; reentrant, so save() may run inside it."""
        if self._lock is None:
            from filelock import FileLock

            ensure_private_dir(self.home)
            self._lock = FileLock(self.home / LOCK_FILE, timeout=LOCK_TIMEOUT, mode=0o600)
        return self._lock

    def load(self, server: str) -> Credentials | None:
        """Return the credentials saved for `server`, or None."""
        # A file record is always the newer one: saving to the keyring deletes it.
        record = self._file.get(server)
        if record is None and (backend := self._backend()) is not None:
            try:
                raw = backend.get_password(KEYRING_SERVICE, server)
            except Exception as exc:  # backends raise their own types (D-Bus, Keychain, …)
                self._keyring_failed(exc)
            else:
                record = _parse_json(raw) if raw is not None else None
        return None if record is None else Credentials.from_dict(record)

    def check(self, server: str) -> Credentials | None:
        """Return `server`'s saved credentials, once sure this store can keep new ones.

        `kavach login` asks before its device flow: a keyring that was asked for must answer
        now, not once the login has been approved and its tokens have nowhere to go.
        """
        if self.mode == "keyring" and (backend := self._backend()) is not None:
            try:
                backend.get_password(KEYRING_SERVICE, server)
            except Exception as exc:  # see load()
                self._keyring_failed(exc)
        return self.load(server)

    def save(self, server: str, credentials: Credentials) -> None:
        """Save `credentials` for `server` to the keyring if usable, else to the file."""
        record = credentials.to_dict()
        with self.lock():
            if (backend := self._backend()) is not None:
                try:
                    backend.set_password(KEYRING_SERVICE, server, json.dumps(record))
                except Exception as exc:  # see load()
                    self._keyring_failed(exc)
                else:
                    self._file.delete(server)
                    return
            self._file.put(server, record)

    def delete(self, server: str) -> bool:
        """Forget the credentials for `server` wherever they are; tell whether any existed."""
        with self.lock():
            deleted = self._file.delete(server)
            if (backend := self._backend()) is not None:
                try:
                    if backend.get_password(KEYRING_SERVICE, server) is not None:
                        backend.delete_password(KEYRING_SERVICE, server)
                        deleted = True
                except Exception as exc:  # see load()
                    self._keyring_failed(exc)
        return deleted

    def _backend(self) -> Any | None:
        """Return the keyring backend to use, probing it once."""
        if not self._keyring_probed:
            self._keyring_probed = True
            self._keyring = usable_keyring()
            if self._keyring is None and self.mode == "keyring":
                raise CliError(
                    "no usable OS keyring (no Secret Service, KWallet, macOS Keychain or "
                    f"Windows Credential Locker answered); {self._way_out}"
                )
        return self._keyring

    @property
    def _way_out(self) -> str:
        return (
            f"set {STORE_ENV}=file (or auto) to keep credentials in {self._file.path} "
            "instead, readable by you only"
        )

    def _keyring_failed(self, exc: Exception) -> None:
        """Fall back to the file in auto mode; fail when the keyring was asked for."""
        if self.mode == "keyring":
            # Not chained: a backend's error may quote what it was given (--verbose shows it).
            raise CliError(
                f"the OS keyring failed ({type(exc).__name__}); unlock or repair it, or "
                f"{self._way_out}"
            ) from None
        self._keyring = None
