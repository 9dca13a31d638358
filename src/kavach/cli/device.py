"""The device authorization grant (RFC 8628) as `kavach login` runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavach.cli.errors import ApiError, CliError, NotLoggedIn

if TYPE_CHECKING:
    from kavach.cli.client import ApiClient

SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5: add 5 seconds to the interval on slow_down
EXPIRED = "the code expired, run `kavach login` again"


@dataclass(frozen=True)
class DeviceCode:
    """The server's answer to a device authorization request."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float
    # "local", "github" or "oidc" (approved by signing in there); None from older servers.
    identity_provider: str | None = None

    @property
    def url(self) -> str:
        """Return the page to approve on, with the code filled in when the server offers it."""
        return self.verification_uri_complete or self.verification_uri

    @classmethod
    def from_data(cls, data: Any) -> DeviceCode:
        """Parse the /auth/device/code answer."""
        try:
            return cls(
                device_code=str(data["device_code"]),
                user_code=str(data["user_code"]),
                verification_uri=str(data["verification_uri"]),
                verification_uri_complete=data.get("verification_uri_complete") or None,
                expires_in=float(data["expires_in"]),
                interval=float(data.get("interval") or SLOW_DOWN_STEP),
                identity_provider=data.get("identity_provider") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError("the server's device code answer is malformed") from exc


def start(client: ApiClient) -> DeviceCode:
    """Ask the server for a device code and the URL where the user approves it."""
    return DeviceCode.from_data(client.post("/auth/device/code", {}, auth=False))


def _number(data: Any, key: str) -> float | None:
    value = data.get(key) if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def wait_for_token(
    client: ApiClient,
    code: DeviceCode,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Any:
    """Poll until the user approves, then return the token answer's data."""
    deadline = clock() + code.expires_in
    interval = code.interval
    wait = interval
    while clock() < deadline:
        sleep(wait)
        wait = interval
        try:
            return client.post("/auth/device/token", {"device_code": code.device_code}, auth=False)
        except ApiError as exc:
            if exc.error_code == "authorization_pending":
                continue
            if exc.error_code == "slow_down":
                interval = _number(exc.data, "interval") or interval + SLOW_DOWN_STEP
                wait = interval
            elif exc.error_code == "rate_limited":
                wait = max(interval, exc.retry_after or 0.0)
            elif exc.error_code == "expired_token":
                raise NotLoggedIn(EXPIRED, code=exc.error_code) from exc
            elif exc.error_code == "access_denied":
                raise NotLoggedIn("the login was denied", code=exc.error_code) from exc
            elif exc.error_code == "account_not_allowed":
                raise NotLoggedIn(exc.message, code=exc.error_code) from exc
            else:
                raise
    raise NotLoggedIn(EXPIRED, code="expired_token")
