"""A fake Azure Key Vault (secrets data plane) and Microsoft Entra token endpoint, over HTTPS.

There is no official machine-readable description of the Key Vault data plane in
`../shared/specs/` (see its README): the fake follows what the official clients send and expect
— `azure-keyvault-secrets` for the vault and `azure-identity` (MSAL underneath) for tokens — and
the JSON shapes Key Vault documents for its REST API:

- Every vault request without a valid bearer token answers `401` with
  `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"`; the
  client's challenge policy first sends a body-less copy of its request to elicit that challenge,
  then fetches a token for `<resource>/.default` and sends the real request.
- Tokens come from `POST /{tenant}/oauth2/v2.0/token` (client credentials grant); MSAL first reads
  `GET /{tenant}/v2.0/.well-known/openid-configuration` to find that endpoint.
- Secrets: `PUT /secrets/{name}` (a new version each time, with tags),
  `GET /secrets/{name}/{version?}`, `GET /secrets` (pages of at most `maxresults` ≤ 25 items
  linked by an absolute `nextLink`),
  `DELETE /secrets/{name}` (soft delete: the secret moves to `/deletedsecrets/{name}`, and a later
  `PUT` of that name answers `409 Conflict` with inner code `ObjectIsDeletedButRecoverable`),
  `GET /deletedsecrets/{name}`, `POST /deletedsecrets/{name}/recover` and `DELETE
  /deletedsecrets/{name}` (purge). Every vault request needs `api-version`. Names are
  case-insensitive, as in Key Vault. Errors are `{"error": {"code", "message", "innererror"?}}`.

Script it through `FakeAzureState`: `fail` (status with Retry-After, per path, method or secret,
N times), `slow` (answer late, for client timeouts), `deny` (a missing access-policy permission),
`recovery_polls` (recovery that takes a while), `requests` records what came (never a token or
client secret), and `value(name)` reads back what a secret holds now. As a real server:
`with serve_fake_azure(state) as azure: ...` yields the vault URL, the authority URL and the file
of the CA that signed the fake's certificate (the client must trust it; nothing disables TLS
verification).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import serve_in_thread

# The public cloud's Key Vault resource: what a real vault names in its challenge.
KEY_VAULT_RESOURCE = "https://vault.azure.net"
PERMISSIONS = frozenset({"get", "list", "set", "delete", "recover", "purge"})
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
MAX_PAGE_SIZE = 25  # Key Vault's limit for `maxresults`
MAX_VALUE_BYTES = 25 * 1024
SET_SECRET_FIELDS = frozenset({"value", "tags", "contentType", "attributes"})
RECOVERABLE_DAYS = 90


@dataclass
class FakeSecretVersion:
    """One version of a secret."""

    version: str
    value: str
    tags: dict[str, str]
    content_type: str | None
    created: int
    enabled: bool = True


@dataclass
class FakeSecret:
    """A secret: its versions (newest last) and, when soft-deleted, when that happened."""

    name: str
    versions: list[FakeSecretVersion] = field(default_factory=list)
    deleted_at: int | None = None
    recovering: int = 0  # reads of /secrets/{name} still answering 404 after a recover

    @property
    def current(self) -> FakeSecretVersion:
        """Return the newest version."""
        return self.versions[-1]


@dataclass
class Fault:
    """A scripted answer: match on method, path and secret name; used `times` times.

    A fault without a path applies to vault requests only; the token and discovery endpoints
    fail only when named by path (`state.token_path`).
    """

    status: int | None  # None: answer normally (after `delay`)
    times: int
    method: str | None = None
    path: str | None = None
    secret: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    code: str | None = None
    inner_code: str | None = None
    message: str | None = None

    def matches(self, method: str, path: str, secret: str | None) -> bool:
        """Tell whether this fault applies to a request."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None and self.path.rstrip("/") != path.rstrip("/"):
            return False
        return self.secret is None or (secret is not None and self.secret.lower() == secret.lower())


@dataclass
class RecordedRequest:
    """One request the fake received; tokens and client secrets are never kept."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]
    had_authorization: bool

    def json(self) -> Any:
        """Return the JSON body (None when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass
class FakeAzureState:
    """What the fake vault and token endpoint know and do; tests script it and read it back."""

    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    client_id: str = "0c5be0f2-b83d-4f68-ad52-18a90ea02883"
    client_secret: str = "fake-client-secret-value"
    resource: str = KEY_VAULT_RESOURCE
    # The authority the challenge names; None: the fake's own URL (as the credential is set up).
    challenge_authority: str | None = None
    token_lifetime: int = 3599
    page_size: int = MAX_PAGE_SIZE  # items per list page when the client names no maxresults
    recovery_polls: int = 0  # how many reads a recovered secret stays invisible (still recovering)
    soft_delete: bool = True
    permissions: set[str] = field(default_factory=lambda: set(PERMISSIONS))
    secrets: dict[str, FakeSecret] = field(default_factory=dict)  # by lower-case name
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    faults: list[Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    # Requests the official client would never send (unknown path, no api-version, bad name,
    # unknown body fields): a provider bug. Tests assert this stays empty.
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def token_path(self) -> str:
        """Return the path of the tenant's token endpoint."""
        return f"/{self.tenant_id}/oauth2/v2.0/token"

    # -- scripting -------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        path: str | None = None,
        secret: str | None = None,
        method: str | None = None,
        times: int = 1,
        retry_after: str | int | None = None,
        code: str | None = None,
        inner_code: str | None = None,
        message: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` matching requests answer `status` (after `delay` seconds)."""
        self.faults.append(
            Fault(
                status,
                times,
                method,
                path,
                secret,
                None if retry_after is None else str(retry_after),
                delay,
                code,
                inner_code,
                message,
            )
        )

    def slow(
        self,
        seconds: float,
        *,
        path: str | None = None,
        secret: str | None = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` matching requests wait `seconds` before answering normally."""
        self.faults.append(Fault(None, times, method, path, secret, delay=seconds))

    def deny(self, *permissions: str) -> None:
        """Take secret permissions (get, list, set, delete, recover, purge) from the principal."""
        unknown = set(permissions) - PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permissions: {sorted(unknown)}")
        self.permissions -= set(permissions)

    def revoke_tokens(self) -> None:
        """Forget every issued token, as if they had all expired."""
        with self.lock:
            self.tokens.clear()

    def add_secret(
        self, name: str, value: str, *, tags: dict[str, str] | None = None, deleted: bool = False
    ) -> None:
        """Create a secret directly (one made outside Kavach), optionally already soft-deleted."""
        with self.lock:
            secret = self._write(name, value, tags or {}, None)
            if deleted:
                secret.deleted_at = int(time.time())

    # -- reading back ----------------------------------------------------------------------

    def secret(self, name: str) -> FakeSecret | None:
        """Return a secret, live or soft-deleted, by case-insensitive name."""
        return self.secrets.get(name.lower())

    def value(self, name: str) -> str | None:
        """Return the current value of a live secret (None if absent or soft-deleted)."""
        secret = self.secret(name)
        if secret is None or secret.deleted_at is not None:
            return None
        return secret.current.value

    def tags(self, name: str) -> dict[str, str] | None:
        """Return the tags of a live secret's current version."""
        secret = self.secret(name)
        return None if secret is None or secret.deleted_at is not None else secret.current.tags

    def is_deleted(self, name: str) -> bool:
        """Tell whether a secret is soft-deleted (recoverable)."""
        secret = self.secret(name)
        return secret is not None and secret.deleted_at is not None

    def live_names(self) -> list[str]:
        """Return the names of the live secrets, sorted."""
        return sorted(s.name for s in self.secrets.values() if s.deleted_at is None)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Return the recorded requests to one path (and method)."""
        return [
            r
            for r in self.requests
            if r.path.rstrip("/") == path.rstrip("/") and (method is None or r.method == method)
        ]

    # -- internals ---------------------------------------------------------------------------

    def _write(
        self, name: str, value: str, tags: dict[str, str], content_type: str | None
    ) -> FakeSecret:
        secret = self.secrets.setdefault(name.lower(), FakeSecret(name))
        version = FakeSecretVersion(uuid.uuid4().hex, value, tags, content_type, int(time.time()))
        secret.versions.append(version)
        return secret

    def _take_fault(
        self, method: str, path: str, secret: str | None, *, named_path_only: bool = False
    ) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if named_path_only and fault.path is None:
                    continue  # faults without a path are for the vault, not the authority
                if fault.times > 0 and fault.matches(method, path, secret):
                    fault.times -= 1
                    return fault
        return None


def _kv_error(
    status: int,
    code: str,
    message: str,
    *,
    inner: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Answer the Key Vault way: `{"error": {"code", "message", "innererror"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _aad_error(status: int, error: str, description: str, code: int) -> JSONResponse:
    """Answer the Microsoft Entra token endpoint way (an OAuth 2 error with AADSTS codes)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Timestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return JSONResponse(body, status_code=status)


_STATUS_CODES = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def create_fake_azure(state: FakeAzureState) -> Starlette:
    """Build the fake vault and token endpoint as one ASGI app acting on `state`."""

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def attributes(secret: FakeSecret, version: FakeSecretVersion) -> dict[str, Any]:
        return {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable+Purgeable" if state.soft_delete else "Purgeable",
            "recoverableDays": RECOVERABLE_DAYS if state.soft_delete else 0,
        }

    def bundle(
        request: Request,
        secret: FakeSecret,
        *,
        with_value: bool,
        version: FakeSecretVersion | None = None,
    ) -> dict[str, Any]:
        version = version or secret.current
        body: dict[str, Any] = {
            "id": f"{base(request)}/secrets/{secret.name}/{version.version}",
            "attributes": attributes(secret, version),
            "tags": version.tags,
        }
        if with_value:
            body["value"] = version.value
        if version.content_type is not None:
            body["contentType"] = version.content_type
        return body

    def deleted_bundle(request: Request, secret: FakeSecret) -> dict[str, Any]:
        assert secret.deleted_at is not None
        return bundle(request, secret, with_value=False) | {
            "recoveryId": f"{base(request)}/deletedsecrets/{secret.name}",
            "deletedDate": secret.deleted_at,
            "scheduledPurgeDate": secret.deleted_at + RECOVERABLE_DAYS * 86400,
        }

    def not_found(name: str, *, deleted: bool = False) -> JSONResponse:
        what = "Deleted Secret" if deleted else "A secret with (name/id)"
        return _kv_error(
            404,
            "SecretNotFound",
            f"{what} {name} was not found in this key vault. If you recently deleted this "
            "secret you may be able to recover it using the correct recovery command. For help "
            "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        )

    def forbidden(permission: str) -> JSONResponse:
        return _kv_error(
            403,
            "Forbidden",
            f"The user, group or application 'appid={state.client_id}' does not have secrets "
            f"{permission} permission on key vault 'fake-vault'. For help resolving this issue, "
            "please see https://go.microsoft.com/fwlink/?linkid=2125287",
            inner="AccessDenied",
        )

    def challenge(request: Request) -> dict[str, str]:
        authority = state.challenge_authority or base(request)
        return {
            "WWW-Authenticate": (
                f'Bearer authorization="{authority}/{state.tenant_id}", resource="{state.resource}"'
            )
        }

    async def record(request: Request) -> RecordedRequest:
        raw = await request.body()
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {
                k: v
                for k, v in parse_qsl(raw.decode(), keep_blank_values=True)
                if k != "client_secret"
            }
            raw = urlencode(form).encode()  # the client secret is not kept
        entry = RecordedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k: v for k, v in request.headers.items() if k != "authorization"},
            raw,
            form,
            "authorization" in request.headers,
        )
        with state.lock:
            state.requests.append(entry)
        return entry

    async def scripted(request: Request, secret: str | None, *, aad: bool) -> Response | None:
        fault = state._take_fault(request.method, request.url.path, secret, named_path_only=aad)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
        if aad:
            response = _aad_error(
                fault.status,
                fault.code or "temporarily_unavailable",
                fault.message or "The service is temporarily unavailable.",
                50196,
            )
            response.headers.update(headers)
            return response
        return _kv_error(
            fault.status,
            fault.code or _STATUS_CODES.get(fault.status, "Error"),
            fault.message or "Scripted failure.",
            inner=fault.inner_code,
            headers=headers,
        )

    # -- Microsoft Entra ---------------------------------------------------------------------

    async def openid_configuration(request: Request) -> Response:
        await record(request)
        tenant = request.path_params["tenant"]
        failure = await scripted(request, None, aad=True)
        if failure is not None:
            return failure
        if tenant != state.tenant_id:
            return _aad_error(400, "invalid_tenant", f"Tenant '{tenant}' not found.", 90002)
        root = f"{base(request)}/{tenant}"
        return JSONResponse(
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "issuer": f"{root}/v2.0",
                "jwks_uri": f"{base(request)}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "NA",
            }
        )

    async def token(request: Request) -> Response:
        raw_form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        await record(request)
        failure = await scripted(request, None, aad=True)
        if failure is not None:
            return failure
        tenant = request.path_params["tenant"]
        if tenant != state.tenant_id:
            return _aad_error(400, "invalid_request", f"Tenant '{tenant}' not found.", 90002)
        if raw_form.get("grant_type") != "client_credentials":
            return _aad_error(
                400, "unsupported_grant_type", "The provided grant type is not supported.", 70003
            )
        if raw_form.get("client_id") != state.client_id:
            return _aad_error(
                400,
                "unauthorized_client",
                f"Application with identifier '{raw_form.get('client_id')}' was not found in "
                f"the directory '{tenant}'.",
                700016,
            )
        if not secrets.compare_digest(
            raw_form.get("client_secret", "").encode(), state.client_secret.encode()
        ):
            return _aad_error(
                401,
                "invalid_client",
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{state.client_id}'.",
                7000215,
            )
        scopes = raw_form.get("scope", "").split()
        if f"{state.resource}/.default" not in scopes:
            return _aad_error(
                400,
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid: {scopes}.",
                1002012,
            )
        access_token = f"fake-kv-{secrets.token_urlsafe(24)}"
        with state.lock:
            state.tokens[access_token] = time.monotonic() + state.token_lifetime
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": state.token_lifetime,
                "ext_expires_in": state.token_lifetime,
                "access_token": access_token,
            }
        )

    # -- Key Vault ---------------------------------------------------------------------------

    async def vault(request: Request) -> Response:
        await record(request)
        parts = request.url.path.strip("/").split("/")
        name = parts[1] if len(parts) > 1 and parts[0] in ("secrets", "deletedsecrets") else None
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if not presented:
            return _kv_error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                headers=challenge(request),
            )
        expiry = state.tokens.get(presented)
        if scheme.lower() != "bearer" or expiry is None or expiry < time.monotonic():
            return _kv_error(
                401,
                "Unauthorized",
                "AKV10032: Invalid issuer or token.",
                headers=challenge(request),
            )
        if "api-version" not in request.query_params:
            state.violations.append(f"{request.method} {request.url.path} without api-version")
            return _kv_error(400, "BadParameter", "The api-version query parameter is missing.")
        failure = await scripted(request, name, aad=False)
        if failure is not None:
            return failure
        if name is not None and not SECRET_NAME.match(name):
            state.violations.append(f"{request.method} {request.url.path}: invalid secret name")
            return _kv_error(
                400, "BadParameter", f"The request URI contains an invalid name: {name}"
            )
        method = request.method
        raw = await request.body()
        with state.lock:
            if parts == ["secrets"] and method == "GET":
                return list_secrets(request)
            if parts[0] == "secrets" and name is not None:
                if len(parts) == 2 and method == "PUT":
                    return set_secret(request, name, raw)
                if len(parts) == 2 and method == "DELETE":
                    return delete_secret(request, name)
                if len(parts) in (2, 3) and method == "GET":
                    return get_secret(request, name, parts[2] if len(parts) == 3 else "")
            if parts[0] == "deletedsecrets" and name is not None:
                if len(parts) == 2 and method == "GET":
                    return get_deleted(request, name)
                if len(parts) == 2 and method == "DELETE":
                    return purge(name)
                if parts[2:] == ["recover"] and method == "POST":
                    return recover(request, name)
            state.violations.append(f"{method} {request.url.path}: not a Key Vault secrets path")
        return _kv_error(404, "NotFound", "The requested resource was not found.")

    def list_secrets(request: Request) -> Response:
        if "list" not in state.permissions:
            return forbidden("list")
        size = int(request.query_params.get("maxresults", state.page_size))
        if not 1 <= size <= MAX_PAGE_SIZE:
            return _kv_error(
                400, "BadParameter", f"maxresults must be between 1 and {MAX_PAGE_SIZE}."
            )
        live = sorted(
            (s for s in state.secrets.values() if s.deleted_at is None),
            key=lambda s: s.name.lower(),
        )
        start = int(request.query_params.get("$skiptoken", "0"))
        page = live[start : start + size]
        items = []
        for secret in page:
            version = secret.current
            item: dict[str, Any] = {
                "id": f"{base(request)}/secrets/{secret.name}",
                "attributes": attributes(secret, version),
            }
            if version.tags:
                item["tags"] = version.tags
            if version.content_type is not None:
                item["contentType"] = version.content_type
            items.append(item)
        next_link = None
        if start + size < len(live):
            query = urlencode(
                {
                    "api-version": request.query_params["api-version"],
                    "$skiptoken": str(start + size),
                    "maxresults": str(size),
                }
            )
            next_link = f"{base(request)}/secrets?{query}"
        return JSONResponse({"value": items, "nextLink": next_link})

    def set_secret(request: Request, name: str, raw: bytes) -> Response:
        if "set" not in state.permissions:
            return forbidden("set")
        try:
            body = json.loads(raw)
        except ValueError:
            return _kv_error(400, "BadParameter", "The request body is not valid JSON.")
        value = body.get("value") if isinstance(body, dict) else None
        unknown = set(body) - SET_SECRET_FIELDS if isinstance(body, dict) else set()
        if unknown:
            state.violations.append(f"PUT /secrets/{name}: unknown fields {sorted(unknown)}")
        if not isinstance(value, str):
            return _kv_error(400, "BadParameter", "Property 'value' is required.")
        if len(value.encode()) > MAX_VALUE_BYTES:
            return _kv_error(
                400, "BadParameter", f"The secret value exceeds {MAX_VALUE_BYTES} bytes."
            )
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            return _kv_error(400, "BadParameter", "Tags must map strings to strings.")
        existing = state.secret(name)
        if existing is not None and existing.recovering:
            return _kv_error(
                409,
                "Conflict",
                f"Secret {name} is currently being recovered and cannot be re-created; "
                "retry later.",
                inner="ObjectIsBeingRecovered",
            )
        if existing is not None and existing.deleted_at is not None:
            return _kv_error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        secret = state._write(name, value, tags, body.get("contentType"))
        return JSONResponse(bundle(request, secret, with_value=True))

    def get_secret(request: Request, name: str, version: str) -> Response:
        if "get" not in state.permissions:
            return forbidden("get")
        secret = state.secret(name)
        if secret is not None and secret.recovering:
            secret.recovering -= 1
            return not_found(name)
        if secret is None or secret.deleted_at is not None:
            return not_found(name)
        chosen = next((v for v in secret.versions if v.version == version), None)
        if version and chosen is None:
            return not_found(name)
        return JSONResponse(bundle(request, secret, with_value=True, version=chosen))

    def delete_secret(request: Request, name: str) -> Response:
        if "delete" not in state.permissions:
            return forbidden("delete")
        secret = state.secret(name)
        if secret is None or secret.deleted_at is not None or secret.recovering:
            return not_found(name)
        if not state.soft_delete:
            del state.secrets[name.lower()]
            return JSONResponse(bundle(request, secret, with_value=False))
        secret.deleted_at = int(time.time())
        return JSONResponse(deleted_bundle(request, secret))

    def get_deleted(request: Request, name: str) -> Response:
        if "get" not in state.permissions and "list" not in state.permissions:
            return forbidden("get")
        secret = state.secret(name)
        if secret is None or secret.deleted_at is None:
            return not_found(name, deleted=True)
        return JSONResponse(deleted_bundle(request, secret))

    def recover(request: Request, name: str) -> Response:
        if "recover" not in state.permissions:
            return forbidden("recover")
        secret = state.secret(name)
        if secret is None or secret.deleted_at is None:
            return not_found(name, deleted=True)
        secret.deleted_at = None
        secret.recovering = state.recovery_polls
        return JSONResponse(bundle(request, secret, with_value=False))

    def purge(name: str) -> Response:
        if "purge" not in state.permissions:
            return forbidden("purge")
        secret = state.secret(name)
        if secret is None or secret.deleted_at is None:
            return not_found(name, deleted=True)
        del state.secrets[name.lower()]
        return Response(status_code=204)

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                openid_configuration,
                methods=["GET"],
            ),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/{path:path}", vault, methods=every_method),
        ]
    )


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a CA and a server certificate for 127.0.0.1/localhost into `directory`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kavach test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files


@dataclass(frozen=True)
class FakeAzure:
    """A running fake: where the vault and the authority are, and which CA to trust."""

    vault_url: str
    authority_host: str
    ca_file: str
    state: FakeAzureState


@contextmanager
def serve_fake_azure(state: FakeAzureState | None = None) -> Iterator[FakeAzure]:
    """Run the fake over HTTPS on a free 127.0.0.1 port in a thread; yield its URLs and CA file.

    The vault and the authority share the server: the vault URL is its root, the authority host
    is the same URL (tokens at `/{tenant}/oauth2/v2.0/token`).
    """
    state = state or FakeAzureState()
    with tempfile.TemporaryDirectory(prefix="kavach-fake-azure-") as tmp:
        tls = make_tls_files(Path(tmp))
        with serve_in_thread(
            create_fake_azure(state),
            "the fake Azure server",
            cert_file=tls.cert_file,
            key_file=tls.key_file,
        ) as url:
            yield FakeAzure(url, url, str(tls.ca_file), state)
