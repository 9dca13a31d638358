"""HTTP client for the Kavach API: envelope decoding, typed errors, token refresh."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from kavach import __version__
from kavach.cli.credentials import Credentials
from kavach.cli.errors import ApiError, CliError, NetworkError, NotLoggedIn
from kavach.cli.session import Session

API_PREFIX = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
USER_AGENT = f"kavach-cli/{__version__}"
# The only answer a refresh can fix; other 401s (revoked, invalid) need a new login.
REFRESHABLE = "token_expired"
REDACTED = "[redacted]"

Params = Mapping[str, Any] | None


def tls_verification(server: str) -> ssl.SSLContext | bool:
    """Return how to check the server's certificate: the default trust store for https.

    A plain-http server is never reached over TLS (requests go to its paths, and redirects
    are not followed), so its client gets a context that trusts no certificate, failing
    closed, instead of reading the CA bundle: that costs a command a tenth of its start.
    """
    if server.startswith("https:"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return `text` with each of `secrets` replaced by REDACTED."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _shown_cause(exc: BaseException, secrets: Iterable[str | None]) -> BaseException | None:
    """Return `exc` to chain as a cause (--verbose prints it), or None if any link quotes a
    secret."""
    hidden = [secret for secret in secrets if secret]
    link: BaseException | None = exc
    while link is not None:
        if any(secret in str(link) for secret in hidden):
            return None
        link = link.__cause__ or link.__context__
    return exc


def _body(response: httpx.Response) -> Any:
    """Return the parsed JSON body, or None when there is none."""
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response, data: Any) -> float | None:
    """Return how long the server asked us to wait, from Retry-After or the error data."""
    candidates = [response.headers.get("Retry-After")]
    if isinstance(data, dict):
        candidates.append(data.get("retry_after"))
    for value in candidates:
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            continue  # absent, or an HTTP date: try the next source
    return None


def decode(response: httpx.Response, hide: Iterable[str | None] = ()) -> Any:
    """Return the envelope's data, or raise ApiError for an error or non-envelope answer.

    The error message never holds any of `hide` (the credentials the request carried),
    even from a proxy that echoes requests back.
    """
    status = response.status_code
    body = _body(response)
    if not isinstance(body, dict) or "success" not in body:
        message = f"unexpected answer from the server (HTTP {status})"
        raise ApiError(status, "unexpected_response", message)
    if body["success"] is True and response.is_success:
        return body.get("data")
    data = body.get("data")
    raise ApiError(
        status,
        str(body.get("error_code") or "error"),
        redact(str(body.get("error") or response.reason_phrase or "request failed"), hide),
        data,
        retry_after=_retry_after(response, data),
    )


class ApiClient:
    """Call `server`'s /api/v1 with the session's bearer token; refresh once on expiry."""

    def __init__(
        self,
        server: str,
        session: Session | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.session = session
        self._log = log
        self._http = httpx.Client(
            base_url=server,
            transport=transport,
            verify=tls_verification(server),
            timeout=TIMEOUT,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(
        self, path: str, *, params: Params = None, auth: bool = True, wait: float | None = None
    ) -> Any:
        """GET an /api/v1 path and return the envelope's data.

        `wait`: seconds the server may take to answer (a long poll), instead of TIMEOUT's.
        """
        return self.request("GET", path, params=params, auth=auth, wait=wait)

    def post(self, path: str, json: Any = None, *, auth: bool = True) -> Any:
        """POST JSON to an /api/v1 path and return the envelope's data."""
        return self.request("POST", path, json=json, auth=auth)

    def put(self, path: str, json: Any = None, *, auth: bool = True) -> Any:
        """PUT JSON to an /api/v1 path and return the envelope's data."""
        return self.request("PUT", path, json=json, auth=auth)

    def patch(self, path: str, json: Any = None, *, auth: bool = True) -> Any:
        """PATCH an /api/v1 path with JSON and return the envelope's data."""
        return self.request("PATCH", path, json=json, auth=auth)

    def delete(self, path: str, *, params: Params = None, auth: bool = True) -> Any:
        """DELETE an /api/v1 path and return the envelope's data."""
        return self.request("DELETE", path, params=params, auth=auth)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params = None,
        auth: bool = True,
        hide: tuple[str, ...] = (),
        wait: float | None = None,
    ) -> Any:
        """Send a request to API_PREFIX + `path`; `auth` requires a login and sends the token.

        `hide` names credentials in the body, kept out of any error message like the token.
        """
        token = self._token() if auth else None
        url = API_PREFIX + path
        sent = {"json": json, "params": params, "hide": hide, "wait": wait}
        response = self._transmit(method, url, token=token, **sent)
        session = self.session
        if token is not None and session is not None and self._is_expired_answer(response):
            token = session.refresh(self._exchange)
            response = self._transmit(method, url, token=token, **sent)
        return decode(response, (token, *hide))

    def health(self) -> tuple[int, Any]:
        """GET /healthz (plain JSON, no envelope) and return its status code and body."""
        response = self._transmit("GET", "/healthz", json=None, params=None, token=None, hide=())
        return response.status_code, _body(response)

    def _token(self) -> str:
        token = self.session.access_token() if self.session else None
        if token is None:
            raise NotLoggedIn(f"not logged in to {self.server}; run `kavach login`")
        return token

    def _is_expired_answer(self, response: httpx.Response) -> bool:
        if response.status_code != 401 or self.session is None or not self.session.can_refresh:
            return False
        body = _body(response)
        return isinstance(body, dict) and body.get("error_code") == REFRESHABLE

    def _exchange(self, refresh_token: str) -> Credentials:
        """Trade `refresh_token` for a new pair (called by Session.refresh, under its lock)."""
        held = self.session.credentials() if self.session else None
        try:
            body = {"refresh_token": refresh_token}
            hide = (refresh_token,)
            data = self.request("POST", "/auth/refresh", json=body, auth=False, hide=hide)
        except ApiError as exc:
            if exc.status in (400, 401):
                message = "your session has ended; run `kavach login`"
                raise NotLoggedIn(message, code=exc.error_code) from exc
            raise
        return Credentials.from_token_response(data, user=held.user if held else None)

    def _transmit(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        params: Params,
        token: str | None,
        hide: tuple[str, ...] = (),
        wait: float | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        if self._log:
            self._log(f"{method} {self.server}{url}")
        timeout = TIMEOUT if wait is None else httpx.Timeout(wait, connect=TIMEOUT.connect)
        try:
            response = self._http.request(
                method, url, json=json, params=params, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            cause = _shown_cause(exc, (token, *hide))
            raise NetworkError(f"{self.server} did not answer in time") from cause
        except httpx.LocalProtocolError:
            # The request itself could not be written (its text may quote a header): not the
            # network's fault, and nothing of it is shown, not even with --verbose.
            message = f"the request to {self.server} could not be sent (malformed request)"
            raise CliError(message) from None
        except httpx.RequestError as exc:
            detail = redact(str(exc), (token, *hide))
            cause = _shown_cause(exc, (token, *hide))
            raise NetworkError(f"cannot reach {self.server}: {detail}") from cause
        if self._log:
            self._log(f"{method} {self.server}{url} -> {response.status_code}")
        return response
