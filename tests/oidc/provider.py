"""Start and drive a real OpenID Connect provider (node-oidc-provider) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

PROVIDER_DIR = Path(__file__).parent / "provider"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProviderAccount:
    """One user of the provider; `login` is what is typed at its login form."""

    login: str
    sub: str
    email: str
    name: str
    preferred_username: str
    groups: tuple[str, ...] = ()
    email_verified: bool = True

    def claims(self) -> dict[str, Any]:
        """The account's claims as the provider's accounts file holds them."""
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "preferred_username": self.preferred_username,
            "groups": list(self.groups),
        }


def _write_json(path: Path, value: Any) -> None:
    """Write whole or not at all: the provider may read the file at any moment."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)


def write_accounts(path: Path, accounts: Iterable[ProviderAccount]) -> None:
    """Write the accounts file the provider reads on each account look-up."""
    _write_json(path, {account.login: account.claims() for account in accounts})


def new_signing_key(kid: str) -> dict[str, Any]:
    """Return a fresh private RSA JWK (RS256, the provider's default ID token algorithm)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)
    # PyJWT marks the key "sign" only; the provider would publish that on its public half,
    # where it would forbid verifying (RFC 7517 4.3). Providers publish "use" alone.
    jwk.pop("key_ops", None)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def public_jwk(private: dict[str, Any]) -> dict[str, Any]:
    """The public half of a private RSA JWK."""
    return {name: private[name] for name in ("kty", "kid", "use", "alg", "n", "e")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OidcProvider:
    """One provider process; restartable on the same port, so with the same issuer."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._port = 0
        self._clients: list[dict[str, Any]] = []
        self._keys: list[dict[str, Any]] = []
        self._require_pkce = True
        # The provider's discovery document, read at each start.
        self.metadata: dict[str, Any] = {}

    @property
    def issuer(self) -> str:
        if not self._port:
            raise RuntimeError("the provider has not been started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def accounts_file(self) -> Path:
        return self._files()[0]

    def start(
        self,
        tmp_dir: Path,
        clients: list[dict[str, Any]],
        accounts: Iterable[ProviderAccount],
        keys: list[dict[str, Any]],
        *,
        require_pkce: bool = True,
    ) -> str:
        """Start the provider with these clients, accounts and private JWKs; return its issuer.

        `clients` are node-oidc-provider client metadata; `keys` private JWKs (new_signing_key),
        the first of which signs. Without `require_pkce` only public clients must use PKCE.
        """
        if self._process is not None:
            raise RuntimeError("the provider is already running")
        self._dir = tmp_dir
        self._clients = list(clients)
        self.set_accounts(accounts)
        self._keys = list(keys)
        self._require_pkce = require_pkce
        self._port = _free_port()
        return self._launch()

    def restart(
        self,
        *,
        keys: list[dict[str, Any]] | None = None,
        clients: list[dict[str, Any]] | None = None,
    ) -> str:
        """Stop and start again on the same port, with other keys or clients if given.

        Sessions, codes and tokens live in the process: none survives a restart.
        """
        if self._dir is None:
            raise RuntimeError("the provider has not been started")
        self.stop()
        self._keys = self._keys if keys is None else list(keys)
        self._clients = self._clients if clients is None else list(clients)
        return self._launch()

    def set_accounts(self, accounts: Iterable[ProviderAccount]) -> None:
        """Replace the accounts; the running provider sees them at its next look-up."""
        write_accounts(self._files()[0], accounts)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the port and files are kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _files(self) -> tuple[Path, Path, Path, Path]:
        if self._dir is None:
            raise RuntimeError("the provider has not been started")
        return (
            self._dir / "oidc-accounts.json",
            self._dir / "oidc-jwks.json",
            self._dir / "oidc-config.json",
            self._dir / "oidc-provider.log",
        )

    def _launch(self) -> str:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH: the OpenID Connect provider needs Node.js")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"{PROVIDER_DIR}/node_modules is missing: run `make node-fixtures`")
        accounts_file, jwks_file, config_file, log_file = self._files()
        _write_json(jwks_file, {"keys": self._keys})
        config = {
            "port": self._port,
            "issuer": self.issuer,
            "clients": self._clients,
            "accounts_file": str(accounts_file),
            "jwks_file": str(jwks_file),
            "require_pkce": self._require_pkce,
        }
        _write_json(config_file, config)
        with log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [node, str(PROVIDER_DIR / "server.mjs"), str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_until_ready(log_file)
        return self.issuer

    def _wait_until_ready(self, log_file: Path) -> None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2) as client:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    self._process = None
                    raise RuntimeError(
                        f"the OpenID Connect provider exited at start; its output:\n"
                        f"{_tail(log_file)}"
                    )
                try:
                    response = client.get(url)
                    # Another server that took the port between two starts has another issuer.
                    if response.status_code == 200 and response.json()["issuer"] == self.issuer:
                        self.metadata = response.json()
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the OpenID Connect provider did not answer {url} within "
                        f"{START_TIMEOUT:.0f} s; its output:\n{_tail(log_file)}"
                    )
                time.sleep(0.05)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
