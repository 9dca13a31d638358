"""The bearer token for one server, and the one place that rotates it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from kavach.cli.credentials import (
    TOKEN_ENV,
    Credentials,
    CredentialStore,
    clean_token,
    new_fallback_seed,
)
from kavach.cli.errors import NotLoggedIn


class Session:
    """Hand out the access token for `server` and refresh it safely across processes."""

    def __init__(self, server: str, store: CredentialStore, *, env_token: str | None = None):
        self.server = server
        self.store = store
        # Empty or blank counts as unset; surrounding whitespace (a newline from a file or
        # `echo`) is dropped; anything else wrong is refused before it is sent anywhere.
        token = (env_token or "").strip()
        hint = f"set {TOKEN_ENV} to the token alone"
        self.env_token = clean_token(token, TOKEN_ENV, hint) if token else None
        self._held: Credentials | None = None
        self._loaded = False
        # A token a workload got for its platform's OIDC token: in memory only.
        self._workload_token: str | None = None

    @property
    def can_refresh(self) -> bool:
        """Tell whether a refresh could help: never for a token given in the environment."""
        if self.env_token is not None or self._workload_token is not None:
            return False
        return self.credentials() is not None

    def adopt(self, token: str) -> None:
        """Use a workload's exchanged service token from now on (kept in memory, never saved)."""
        self._workload_token = token

    def credentials(self) -> Credentials | None:
        """Return the stored credentials this process works with (read once, then kept)."""
        if not self._loaded:
            self._held = self.store.load(self.server)
            self._loaded = True
        return self._held

    def access_token(self) -> str | None:
        """Return the bearer token to send, or None when not logged in."""
        if self.env_token is not None:
            return self.env_token
        if self._workload_token is not None:
            return self._workload_token
        held = self.credentials()
        return held.access_token if held else None

    def refresh(self, exchange: Callable[[str], Credentials]) -> str:
        """Rotate the token pair with `exchange(refresh_token)` and return the new access token.

        Refresh tokens are single-use and the server revokes the whole session when one comes
        back, so two processes must never both spend the same one: under the lock, a stored
        refresh token that differs from ours means another process already rotated it, and we
        adopt its result instead of calling the server (unless that result has expired too, in
        which case the stored refresh token, the newest one, is the one to spend).
        """
        held = self.credentials()
        with self.store.lock():
            stored = self.store.load(self.server)
            if stored is None:
                raise NotLoggedIn(f"not logged in to {self.server}; run `kavach login`")
            rotated_elsewhere = held is None or stored.refresh_token != held.refresh_token
            if rotated_elsewhere and not stored.is_expired():
                self._held = stored
                return stored.access_token
            # The seed belongs to the login, not to one token pair: it survives the rotation.
            rotated = replace(exchange(stored.refresh_token), fallback_seed=stored.fallback_seed)
            self.store.save(self.server, rotated)
            self._held = rotated
            return rotated.access_token

    def fallback_seed(self) -> str | None:
        """Return the stored login's fallback seed (None when not logged in).

        A login saved before seeds existed gets one now, under the store's lock, so every
        process of that login derives the same key.
        """
        held = self.credentials()
        if held is None or held.fallback_seed is not None:
            return None if held is None else held.fallback_seed
        with self.store.lock():
            stored = self.store.load(self.server)
            if stored is None:
                return None
            if stored.fallback_seed is None:
                stored = replace(stored, fallback_seed=new_fallback_seed())
                self.store.save(self.server, stored)
            self._held, self._loaded = stored, True
            return stored.fallback_seed
