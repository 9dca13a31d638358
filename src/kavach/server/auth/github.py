"""GitHub's OAuth device flow (RFC 8628 as GitHub runs it) and the identity it yields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from kavach.server.errors import DeviceFlowError, IdentityProviderError

SCOPE = "read:user user:email"
ORG_SCOPE = "read:org"  # asked for only when organizations decide who may sign in
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
API_VERSION = "2022-11-28"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 5.0  # seconds; a longer Retry-After is not worth holding a login request for

# Token-endpoint answers the caller acts on (keep polling, slow down, start again).
_POLL_ERRORS = {
    "authorization_pending": "The user has not approved the login yet.",
    "slow_down": "Polling too fast; wait longer between polls.",
    "expired_token": "The device code has expired; start the login again.",
    "access_denied": "The user denied the login.",
}
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_backoff = tenacity.wait_exponential(multiplier=0.25, max=2)
# Retry POSTs only where the request surely never reached GitHub: a device code is single-use.
_RETRY_POST = tenacity.retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout))


@dataclass(frozen=True)
class GitHubDeviceCode:
    """What GitHub hands out to start a device-flow login."""

    device_code: str = field(repr=False)  # whoever holds it can claim the token
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class GitHubIdentity:
    """Who the user is on GitHub."""

    provider_id: str
    login: str
    email: str | None
    name: str | None
    avatar_url: str | None
    # Every address GitHub says the user has verified (invites by e-mail match these only).
    verified_emails: tuple[str, ...] = ()


class _TransientStatusError(Exception):
    """A response whose status says that trying again may work."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retry_after(response: httpx.Response) -> float | None:
    """Return the seconds a Retry-After header asks for (GitHub sends seconds), if any."""
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def _should_retry_get(exc: BaseException) -> bool:
    """Retry network trouble and transient statuses, unless asked to wait too long."""
    if isinstance(exc, _TransientStatusError):
        after = _retry_after(exc.response)
        return after is None or after <= MAX_RETRY_AFTER
    return isinstance(exc, httpx.TransportError)


def _wait(state: tenacity.RetryCallState) -> float:
    """Wait what Retry-After asks for, else back off exponentially."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, _TransientStatusError):
        after = _retry_after(exc.response)
        if after is not None:
            return min(after, MAX_RETRY_AFTER)
    return _backoff(state)


def _json(response: httpx.Response, what: str) -> Any:
    """Decode a JSON body or fail as the identity provider's fault."""
    try:
        return response.json()
    except ValueError:
        status = response.status_code
        raise IdentityProviderError(
            f"GitHub sent an unreadable {what} response (HTTP {status})"
        ) from None


def _field(body: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """Return a required field of the given type from a GitHub answer."""
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or value == "":
        raise IdentityProviderError(f"GitHub's {what} response lacks a valid '{key}'")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    """Return a string field, or None when it is absent, null or empty."""
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _error_code(body: Any) -> str | None:
    """Return the OAuth error code of an answer, if it names a sane one."""
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


def _check_login_answer(response: httpx.Response, body: Any, what: str) -> dict[str, Any]:
    """Return a login endpoint's answer, or raise when it is an error or no object."""
    code = _error_code(body)
    if code is not None or not response.is_success or not isinstance(body, dict):
        reason = code or f"HTTP {response.status_code}"
        raise IdentityProviderError(f"GitHub refused the {what} request ({reason})")
    return body


class GitHubClient:
    """Run GitHub's device flow and read the identity behind the token it yields."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None,
        web_url: str,
        api_url: str,
        http: httpx.AsyncClient,
        scope: str = SCOPE,
    ) -> None:
        self._client_id = client_id
        self._scope = scope
        self._client_secret = client_secret
        self._web_url = web_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._http = http

    async def request_device_code(self) -> GitHubDeviceCode:
        """Ask GitHub for a device code and the user code to show."""
        form = {"client_id": self._client_id, "scope": self._scope}
        response = await self._post("/login/device/code", form)
        body = _check_login_answer(response, _json(response, "device code"), "device code")
        interval = body.get("interval", 5)
        return GitHubDeviceCode(
            device_code=_field(body, "device_code", str, "device code"),
            user_code=_field(body, "user_code", str, "device code"),
            verification_uri=_field(body, "verification_uri", str, "device code"),
            expires_in=_field(body, "expires_in", int, "device code"),
            interval=interval if isinstance(interval, int) and interval > 0 else 5,
        )

    async def poll_device_token(self, device_code: str) -> str:
        """Ask once whether the user approved; return GitHub's access token if so."""
        form = {
            "client_id": self._client_id,
            "device_code": device_code,
            "grant_type": DEVICE_GRANT_TYPE,
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        response = await self._post("/login/oauth/access_token", form)
        body = _json(response, "token")
        code = _error_code(body)
        if code in _POLL_ERRORS:
            interval = body.get("interval")
            data = {"interval": interval} if type(interval) is int else None
            raise DeviceFlowError(code, _POLL_ERRORS[code], data=data)
        if code == "incorrect_device_code":
            raise DeviceFlowError("invalid_grant", "The device code is unknown or already used.")
        token: str = _field(
            _check_login_answer(response, body, "token"), "access_token", str, "token"
        )
        return token

    async def fetch_identity(self, access_token: str) -> GitHubIdentity:
        """Read the user behind an access token, and the addresses they have verified.

        The profile's email is the public one, which a GitHub Enterprise Server without
        email verification does not vouch for: only /user/emails says which are verified.
        """
        response = await self._get("/user", access_token)
        self._check_api_status(response, "/user")
        body = _json(response, "user")
        if not isinstance(body, dict):
            raise IdentityProviderError("GitHub's user response is not an object")
        primary, verified = await self._verified_emails(access_token)
        return GitHubIdentity(
            provider_id=str(_field(body, "id", int, "user")),
            login=_field(body, "login", str, "user"),
            email=_optional_str(body, "email") or primary,
            name=_optional_str(body, "name"),
            avatar_url=_optional_str(body, "avatar_url"),
            verified_emails=verified,
        )

    async def _verified_emails(self, access_token: str) -> tuple[str | None, tuple[str, ...]]:
        """Return the primary verified email and every verified one (none if GitHub withholds)."""
        response = await self._get("/user/emails", access_token)
        if response.status_code in (403, 404):
            return None, ()  # a GitHub App token without the email permission: none known
        self._check_api_status(response, "/user/emails")
        body = _json(response, "emails")
        if not isinstance(body, list):
            raise IdentityProviderError("GitHub's emails response is not a list")
        verified = [
            entry for entry in body if isinstance(entry, dict) and entry.get("verified") is True
        ]
        addresses = tuple(
            address for entry in verified if (address := _optional_str(entry, "email"))
        )
        primary = next(
            (_optional_str(entry, "email") for entry in verified if entry.get("primary")), None
        )
        return primary, addresses

    async def is_active_member(self, access_token: str, org: str) -> bool:
        """Say whether the token's user is an active (not merely invited) member of an org."""
        # GitHub: 200 with the membership for active and pending members, 404 when the user
        # is not affiliated, 403 when the organization blocks this app or the scope lacks
        # read:org. Only an active membership of this very organization admits.
        response = await self._get(f"/user/memberships/orgs/{quote(org, safe='')}", access_token)
        if response.status_code in (403, 404):
            return False
        self._check_api_status(response, "/user/memberships/orgs/{org}")
        body = _json(response, "membership")
        found = body.get("organization") if isinstance(body, dict) else None
        name = found.get("login") if isinstance(found, dict) else None
        return (
            isinstance(body, dict)
            and body.get("state") == "active"
            and isinstance(name, str)
            and name.lower() == org.lower()
        )

    @staticmethod
    def _check_api_status(response: httpx.Response, path: str) -> None:
        """Turn a failed API answer into an IdentityProviderError."""
        if response.status_code == 401:
            raise IdentityProviderError("GitHub rejected the access token")
        if not response.is_success:
            raise IdentityProviderError(f"GitHub answered HTTP {response.status_code} for {path}")

    async def _post(self, path: str, form: dict[str, str]) -> httpx.Response:
        """POST a form to a login endpoint, retrying only connection failures."""
        headers = {"Accept": "application/json"}
        return await self._send("POST", f"{self._web_url}{path}", headers, form, _RETRY_POST)

    async def _get(self, path: str, access_token: str) -> httpx.Response:
        """GET an API path with the user's token, retrying transient failures."""
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {access_token}",
        }
        retry = tenacity.retry_if_exception(_should_retry_get)
        return await self._send("GET", f"{self._api_url}{path}", headers, None, retry)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        form: dict[str, str] | None,
        retry: tenacity.retry_base,
    ) -> httpx.Response:
        """Send one request with retries; network failures become IdentityProviderError."""
        stop = tenacity.stop_after_attempt(MAX_ATTEMPTS)
        retrying = tenacity.AsyncRetrying(stop=stop, wait=_wait, retry=retry, reraise=True)
        # Exceptions are re-raised "from None" so that no request (and its token) rides along.
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._http.request(method, url, headers=headers, data=form)
                    if method == "GET" and response.status_code in RETRY_STATUSES:
                        raise _TransientStatusError(response)
                    return response
        except _TransientStatusError as exc:
            return exc.response
        except httpx.TimeoutException:
            raise IdentityProviderError("GitHub did not answer in time") from None
        except httpx.HTTPError as exc:
            raise IdentityProviderError(f"Could not reach GitHub ({type(exc).__name__})") from None
        raise IdentityProviderError("GitHub could not be reached")  # pragma: no cover
