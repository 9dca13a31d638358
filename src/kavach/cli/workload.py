"""Workload identity: a CI job or a pod signs in with its platform's OIDC token.

With no KAVACH_TOKEN, the platform's token comes from `--oidc-token-file PATH`, then
KAVACH_OIDC_TOKEN (the token itself), then KAVACH_OIDC_TOKEN_FILE (a file read at each run:
Kubernetes rotates projected tokens), and, when no login is stored either, from GitHub
Actions' ID token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`, set in a job with
`permissions: id-token: write`) for the audience KAVACH_OIDC_AUDIENCE, by default the
server's URL. It is exchanged (`POST /auth/oidc-token`) for a short-lived service token of
the environment the command works on, which stays in this process's memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from kavach.cli.credentials import TOKEN_ENV, clean_token
from kavach.cli.errors import ApiError, CliError, NetworkError, NotLoggedIn

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.client import ApiClient
    from kavach.cli.context import EnvRef

OIDC_TOKEN_ENV = "KAVACH_OIDC_TOKEN"  # noqa: S105 - the variable's name, not a token
OIDC_TOKEN_FILE_ENV = "KAVACH_OIDC_TOKEN_FILE"  # noqa: S105
OIDC_AUDIENCE_ENV = "KAVACH_OIDC_AUDIENCE"
OIDC_TRUST_ENV = "KAVACH_OIDC_TRUST"
ACTIONS_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
ACTIONS_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105
EXCHANGE_PATH = "/auth/oidc-token"
ACTIONS_TIMEOUT = 30.0
# A JWT of any platform is a few kilobytes; a file much larger is not one.
MAX_TOKEN_FILE_BYTES = 64 * 1024

Kind = Literal["option", "variable", "file", "github-actions"]


@dataclass(frozen=True)
class Source:
    """Where a workload's platform token comes from; its values stay out of repr."""

    kind: Kind
    file: Path | None = None
    value: str | None = field(default=None, repr=False)
    request_url: str | None = None
    request_token: str | None = field(default=None, repr=False)

    @property
    def explicit(self) -> bool:
        """Tell whether it was asked for (it then wins over a stored login)."""
        return self.kind != "github-actions"

    @property
    def label(self) -> str:
        """Say where the token came from, for messages."""
        if self.kind == "github-actions":
            return "GitHub Actions' ID token"
        if self.kind == "variable":
            return OIDC_TOKEN_ENV
        return f"the OIDC token file {self.file}"


@dataclass(frozen=True)
class Exchanged:
    """The service token a workload got, and what the server said of it."""

    token: str = field(repr=False)
    environment_id: str
    role: str
    trust: str
    expires_in: int


def find_source(environ: Mapping[str, str], option_file: Path | None = None) -> Source | None:
    """Return where a platform token is to be had, or None; never when KAVACH_TOKEN is set."""
    if (environ.get(TOKEN_ENV) or "").strip():
        return None
    if option_file is not None:
        return Source("option", file=option_file)
    value = (environ.get(OIDC_TOKEN_ENV) or "").strip()
    if value:
        return Source("variable", value=value)
    path = (environ.get(OIDC_TOKEN_FILE_ENV) or "").strip()
    if path:
        return Source("file", file=Path(path))
    url = (environ.get(ACTIONS_URL_ENV) or "").strip()
    request_token = (environ.get(ACTIONS_TOKEN_ENV) or "").strip()
    if url and request_token:
        return Source("github-actions", request_url=url, request_token=request_token)
    return None


def chosen_source(cli: App) -> Source | None:
    """Return where a workload's OIDC token comes from, if this command signs in with one.

    Never with KAVACH_TOKEN; a token or file asked for wins over a stored login, and
    GitHub Actions' ID token is used only when no login is stored.
    """
    source = find_source(os.environ, cli.oidc_token_file)
    if source is None or source.explicit:
        return source
    session = cli.client.session
    return source if session is None or session.credentials() is None else None


def platform_token(source: Source, *, audience: str) -> str:
    """Return the platform's token: the variable's, the file's now, or a new one from GitHub."""
    if source.value is not None:
        return clean_token(source.value, OIDC_TOKEN_ENV, f"set {OIDC_TOKEN_ENV} to the token alone")
    if source.file is not None:
        return _from_file(source.file)
    if source.request_url is None or source.request_token is None:
        raise CliError("no OIDC token source")  # find_source never makes one
    return _from_actions(source.request_url, source.request_token, audience)


def _from_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NotLoggedIn(f"cannot read the OIDC token file {path}: {reason}") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise NotLoggedIn(f"the OIDC token file {path} is too large to hold a token")
    hint = "it must hold the platform's token alone"
    return clean_token(raw.decode("utf-8", "replace"), f"the OIDC token file {path}", hint)


def _from_actions(url: str, request_token: str, audience: str) -> str:
    """Ask GitHub Actions for an ID token with this audience (`{"value": JWT}`)."""
    import httpx

    from kavach.cli.client import USER_AGENT, redact, tls_verification

    separator = "&" if "?" in url else "?"
    asked = f"{url}{separator}audience={quote(audience, safe='')}"
    what = "GitHub Actions' ID token endpoint"
    try:
        response = httpx.get(
            asked,
            headers={
                "Authorization": f"Bearer {request_token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=ACTIONS_TIMEOUT,
            verify=tls_verification(url),
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        detail = redact(str(exc), (request_token,))
        raise NetworkError(f"cannot reach {what} ({ACTIONS_URL_ENV}): {detail}") from None
    if response.status_code != 200:
        raise NotLoggedIn(
            f"{what} refused a token (HTTP {response.status_code}); the job needs "
            "`permissions: id-token: write`"
        )
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str):
        raise NotLoggedIn(f"{what} answered without a token")
    return clean_token(value, f"the token of {what}", "retry the job")


def exchange(client: ApiClient, platform: str, ref: EnvRef, trust: str | None) -> Exchanged:
    """Exchange a platform token for a service token of the environment `ref` names."""
    body: dict[str, Any] = {
        "token": platform,
        "organization": ref.organization,
        "secret_group": ref.secret_group,
        "environment": ref.environment,
    }
    if trust:
        body["trust"] = trust
    try:
        data = client.request("POST", EXCHANGE_PATH, json=body, auth=False, hide=(platform,))
    except ApiError as exc:
        if exc.status == 401:
            raise NotLoggedIn(
                f"{client.server} refused the workload's OIDC token: {exc.message}",
                code=exc.error_code,
            ) from None
        raise
    return _exchanged(data)


def _exchanged(data: Any) -> Exchanged:
    try:
        token, env_id = data["access_token"], data["environment_id"]
        role, trust, expires_in = data["role"], data["trust"], int(data["expires_in"])
        if not all(isinstance(item, str) for item in (token, env_id, role, trust)):
            raise TypeError("not strings")
    except (KeyError, TypeError, ValueError):
        raise CliError("the server's answer to the OIDC token exchange is malformed") from None
    return Exchanged(
        clean_token(token, "the exchanged token", "retry"), env_id, role, trust, expires_in
    )


def sign_in(cli: App, source: Source, ref: EnvRef) -> Exchanged:
    """Sign this process in as a workload on `ref`'s environment; return what it got."""
    audience = (os.environ.get(OIDC_AUDIENCE_ENV) or "").strip() or cli.server_url()
    platform = platform_token(source, audience=audience)
    trust = (os.environ.get(OIDC_TRUST_ENV) or "").strip() or None
    client = cli.client
    exchanged = exchange(client, platform, ref, trust)
    if client.session is not None:
        client.session.adopt(exchanged.token)
    cli.log(
        f"signed in as a workload with {source.label}: trust {exchanged.trust!r}, "
        f"role {exchanged.role}, for {exchanged.expires_in} s"
    )
    return exchanged
