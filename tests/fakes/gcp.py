"""A fake GCP Secret Manager (REST, v1) and its OAuth token endpoint, for the official client.

Requests are routed by the paths of the discovery document kept beside the repository
(`shared/specs/secretmanager.v1.json`); a path that is not there is a 404 and a recorded
violation. Request bodies and query parameters are checked against the document's method
parameters and `schemas` (types, formats, enums, no unknown or output-only properties, the
required fields listed below), and so is every body the fake answers with. Violations land in
`state.violations` (and fail the request) so tests can assert there were none.

Authentication follows Google: a bearer token is either a self-signed JWT of a service account
(what the client library sends for service-account keys: RS256, `kid` = the key id, iss = sub =
the account's email, `aud` = the API or a `scope` claim) or an access token that the fake's
token endpoint (`POST /token`, the JWT-bearer grant) issued. Keys are trusted with `state.trust`;
`new_service_account` makes a key file whose `token_uri` points at the fake.

Script it through `FakeGCPState`: `fail` (status, Retry-After, N times, per operation and/or per
secret id), `slow` (delay answers), `deny` (permissions), `max_page_size`; read back `requests`,
`latest_value`, `versions_of`, `secret`; `reset` between tests sharing one server. Resource
names in answers carry the project *number*, as GCP's do. Only a real server works for the
client (it speaks HTTP through `requests`): `with serve_fake_gcp(state) as url: ...`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import serve_in_thread

SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "secretmanager.v1.json"
)
API_AUDIENCE = "https://secretmanager.googleapis.com/"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_PAYLOAD = 64 * 1024
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
# Fields the API requires that the discovery document only says in prose.
REQUEST_REQUIRED: dict[str, tuple[str, ...]] = {"AddSecretVersionRequest": ("payload",)}
RESPONSE_REQUIRED: dict[str, tuple[str, ...]] = {
    "Secret": ("name", "createTime", "etag"),
    "SecretVersion": ("name", "createTime", "state", "etag"),
    "AccessSecretVersionResponse": ("name", "payload"),
}
REQUIRED_QUERY: dict[str, tuple[str, ...]] = {
    "secrets.create": ("secretId",),
    "secrets.patch": ("updateMask",),
}
# The system parameter the generated REST clients add (`$alt=json;enum-encoding=int`).
SYSTEM_QUERY = {"$alt"}
PERMISSIONS = {
    "secrets.list": "secretmanager.secrets.list",
    "secrets.create": "secretmanager.secrets.create",
    "secrets.get": "secretmanager.secrets.get",
    "secrets.patch": "secretmanager.secrets.update",
    "secrets.delete": "secretmanager.secrets.delete",
    "secrets.addVersion": "secretmanager.versions.add",
    "secrets.versions.list": "secretmanager.versions.list",
    "secrets.versions.get": "secretmanager.versions.get",
    "secrets.versions.access": "secretmanager.versions.access",
    "secrets.versions.enable": "secretmanager.versions.enable",
    "secrets.versions.disable": "secretmanager.versions.disable",
    "secrets.versions.destroy": "secretmanager.versions.destroy",
}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
_FORMATS: dict[str, re.Pattern[str]] = {
    "int64": re.compile(r"^-?\d+$"),
    "uint64": re.compile(r"^\d+$"),
    "google-datetime": _DATETIME,
    "google-duration": re.compile(r"^-?\d+(\.\d{1,9})?s$"),
    "google-fieldmask": re.compile(r"^([A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*)?$"),
}


def crc32c(data: bytes) -> int:
    """Return the CRC32C (Castagnoli) of data; written out so the fake checks independently."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Discovery:
    """The discovery document: routes requests to methods and validates JSON against schemas."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.schemas: dict[str, Any] = doc["schemas"]
        self.routes: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []
        self._collect(doc)

    def _collect(self, node: dict[str, Any]) -> None:
        for resource in node.get("resources", {}).values():
            for method in resource.get("methods", {}).values():
                pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/:]+)", re.escape(method["flatPath"]))
                self.routes.append((method["httpMethod"], re.compile(pattern), method))
            self._collect(resource)

    def match(self, http_method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """Return the method a request path calls and its path parameters, if documented."""
        for verb, pattern, method in self.routes:
            found = pattern.fullmatch(path.lstrip("/"))
            if verb == http_method and found:
                return method, found.groupdict()
        return None

    def check_query(self, method: dict[str, Any], query: list[tuple[str, str]]) -> list[str]:
        """Check query parameters: documented (method or global), of the right type."""
        errors: list[str] = []
        for key, value in query:
            if key in SYSTEM_QUERY:
                continue
            spec = method["parameters"].get(key) or self.doc["parameters"].get(key)
            if spec is None or spec.get("location") != "query":
                errors.append(f"query parameter {key!r} is not documented for {method['id']}")
                continue
            if spec["type"] == "integer" and not re.fullmatch(r"-?\d+", value):
                errors.append(f"query parameter {key!r} is not an integer")
            elif spec["type"] == "boolean" and value not in ("true", "false"):
                errors.append(f"query parameter {key!r} is not a boolean")
            elif "enum" in spec and value not in spec["enum"]:
                errors.append(f"query parameter {key!r} is not one of {spec['enum']}")
            elif spec.get("format") in _FORMATS and not _FORMATS[spec["format"]].match(value):
                errors.append(f"query parameter {key!r} is not a valid {spec['format']}")
        return errors

    def check(
        self, value: Any, schema: dict[str, Any], where: str, *, request: bool, int_enums: bool
    ) -> list[str]:
        """Validate a JSON value against a discovery schema; return the problems found."""
        if "$ref" in schema:
            name = schema["$ref"]
            errors = self.check(
                value, self.schemas[name], where, request=request, int_enums=int_enums
            )
            required = (REQUEST_REQUIRED if request else RESPONSE_REQUIRED).get(name, ())
            if isinstance(value, dict):
                errors += [
                    f"{where}: {name} lacks required {f!r}" for f in required if f not in value
                ]
            return errors
        kind = schema.get("type")
        if kind == "object":
            return self._check_object(value, schema, where, request=request, int_enums=int_enums)
        if kind == "array":
            if not isinstance(value, list):
                return [f"{where}: expected an array"]
            return [
                problem
                for index, item in enumerate(value)
                for problem in self.check(
                    item, schema["items"], f"{where}[{index}]", request=request, int_enums=int_enums
                )
            ]
        if kind == "string":
            return self._check_string(value, schema, where, int_enums=int_enums)
        if kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and schema.get("format") == "int32":
                ok = -(2**31) <= value < 2**31
            return [] if ok else [f"{where}: expected an {schema.get('format', 'integer')}"]
        if kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return [] if ok else [f"{where}: expected a number"]
        if kind == "boolean":
            return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
        return []  # "any"

    def _check_object(
        self, value: Any, schema: dict[str, Any], where: str, *, request: bool, int_enums: bool
    ) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        errors: list[str] = []
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                sub = properties[key]
                if request and sub.get("readOnly"):
                    errors.append(f"{where}.{key}: output-only field sent in a request")
                errors += self.check(
                    item, sub, f"{where}.{key}", request=request, int_enums=int_enums
                )
            elif additional is not None:
                errors += self.check(
                    item, additional, f"{where}[{key!r}]", request=request, int_enums=int_enums
                )
            else:
                errors.append(f"{where}.{key}: unknown property")
        return errors

    def _check_string(
        self, value: Any, schema: dict[str, Any], where: str, *, int_enums: bool
    ) -> list[str]:
        enum = schema.get("enum")
        if enum is not None and int_enums and isinstance(value, int):
            return [] if 0 <= value < len(enum) else [f"{where}: enum number out of range"]
        if not isinstance(value, str):
            return [f"{where}: expected a string"]
        if enum is not None and value not in enum:
            return [f"{where}: {value!r} is not one of {enum}"]
        fmt = schema.get("format")
        if fmt == "byte":
            try:
                base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
            except binascii.Error:
                return [f"{where}: not base64"]
        elif fmt in _FORMATS and not _FORMATS[fmt].match(value):
            return [f"{where}: not a valid {fmt}"]
        return []


_DISCOVERY: Discovery | None = None


def discovery() -> Discovery:
    """Load (once) the Secret Manager discovery document kept beside the repository."""
    global _DISCOVERY
    if _DISCOVERY is None:
        _DISCOVERY = Discovery(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
    return _DISCOVERY


@dataclass
class RecordedRequest:
    """One request the fake received; tokens and assertions are not kept, only whether they came."""

    method: str
    path: str
    operation: str | None
    query: dict[str, str]
    body: Any
    had_authorization: bool


@dataclass
class Fault:
    """A scripted misbehaviour: delay, then answer `status` (None: answer normally)."""

    status: int | None
    times: int
    operation: str | None
    secret: str | None
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class FakeVersion:
    """One secret version, with the plaintext as stored."""

    number: int
    data: bytes
    state: str
    create_time: str
    etag: str
    client_checksum: bool
    destroy_time: str | None = None


@dataclass
class FakeSecret:
    """One secret (global when `location` is None)."""

    project: str
    location: str | None
    secret_id: str
    labels: dict[str, str]
    replication: dict[str, Any] | None
    create_time: str
    etag: str
    seq: int
    versions: list[FakeVersion] = field(default_factory=list)


@dataclass
class ServiceAccount:
    """A trusted service-account key."""

    email: str
    public_key: Any


@dataclass
class FakeGCPState:
    """What the fake knows and does; tests script it and read it back."""

    projects: dict[str, int] = field(default_factory=lambda: {"kavach-test": 123456789012})
    secrets: dict[tuple[str, str, str], FakeSecret] = field(default_factory=dict)
    keys: dict[str, ServiceAccount] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    max_page_size: int = 25000
    faults: list[Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        """Forget everything (secrets, keys, faults, records), as a fresh state would."""
        fresh = FakeGCPState()
        with self.lock:
            for item in fields(self):
                if item.name != "lock":
                    setattr(self, item.name, getattr(fresh, item.name))

    def trust(self, key_id: str, email: str, public_key: Any) -> None:
        """Accept JWTs signed by this service-account key."""
        self.keys[key_id] = ServiceAccount(email, public_key)

    def deny(self, *permissions: str) -> None:
        """Refuse these IAM permissions (e.g. `secretmanager.versions.add`) to every caller."""
        self.denied.update(permissions)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        operation: str | None = None,
        secret: str | None = None,
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` matching calls answer `status` (operation e.g. `secrets.create`,
        `secrets.versions.list` or `token`; secret: a secret id)."""
        with self.lock:
            self.faults.append(Fault(status, times, operation, secret, retry_after, delay))

    def slow(
        self,
        seconds: float,
        *,
        times: int = 1,
        operation: str | None = None,
        secret: str | None = None,
    ) -> None:
        """Make the next `times` matching calls wait `seconds` before answering normally."""
        with self.lock:
            self.faults.append(Fault(None, times, operation, secret, delay=seconds))

    def take_fault(self, operation: str | None, secret: str | None) -> Fault | None:
        """Use up one matching scripted fault, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.operation not in (None, operation) or fault.secret not in (None, secret):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def next_seq(self) -> int:
        return next(self._seq)

    def new_etag(self) -> str:
        return f'"{time.time_ns():x}{self.next_seq():04x}"'

    def secret(self, project: str, name: str, location: str | None = None) -> FakeSecret | None:
        """Return a stored secret by project id and secret id."""
        return self.secrets.get((project, location or "", name))

    def seed(
        self,
        project: str,
        name: str,
        *values: str,
        labels: dict[str, str] | None = None,
        location: str | None = None,
    ) -> FakeSecret:
        """Create a secret directly (as someone else would have), with enabled versions."""
        with self.lock:
            stored = FakeSecret(
                project,
                location,
                name,
                dict(labels or {}),
                None if location else {"automatic": {}},
                _now(),
                self.new_etag(),
                self.next_seq(),
            )
            self.secrets[(project, location or "", name)] = stored
            for value in values:
                stored.versions.append(
                    FakeVersion(
                        len(stored.versions) + 1,
                        value.encode(),
                        "ENABLED",
                        _now(),
                        self.new_etag(),
                        False,
                    )
                )
            return stored

    def latest_value(self, project: str, name: str, location: str | None = None) -> str | None:
        """Return the plaintext of a secret's newest version (None if no secret or version)."""
        stored = self.secret(project, name, location)
        if stored is None or not stored.versions:
            return None
        return stored.versions[-1].data.decode()

    def versions_of(
        self, project: str, name: str, location: str | None = None
    ) -> list[tuple[str, str]]:
        """Return (state, plaintext) of every version, oldest first."""
        stored = self.secret(project, name, location)
        return [(v.state, v.data.decode()) for v in stored.versions] if stored else []

    def requests_to(self, operation: str) -> list[RecordedRequest]:
        """Return the recorded requests of one operation (e.g. `secrets.addVersion`)."""
        return [r for r in self.requests if r.operation == operation]


def new_service_account(
    state: FakeGCPState,
    base_url: str,
    *,
    project_id: str = "kavach-test",
    email: str | None = None,
    trusted: bool = True,
    key: rsa.RSAPrivateKey | None = None,
) -> dict[str, Any]:
    """Return a service-account key file (for `key`, else a new RSA key), trusted by the fake."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_id = secrets.token_hex(20)
    email = email or f"kavach-sync@{project_id}.iam.gserviceaccount.com"
    if trusted:
        state.trust(key_id, email, key.public_key())
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": f"{base_url}/o/oauth2/auth",
        "token_uri": f"{base_url}/token",
        "auth_provider_x509_cert_url": f"{base_url}/oauth2/v1/certs",
        "client_x509_cert_url": f"{base_url}/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }


class _Refusal(Exception):
    """An API error answer (raised inside handlers)."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """Return a google.rpc error envelope as the JSON APIs send it."""
    return {"error": {"code": code, "message": message, "status": status or STATUS_NAMES[code]}}


def _operation(method: dict[str, Any]) -> str:
    """`secretmanager.projects.locations.secrets.create` -> `secrets.create`."""
    method_id = str(method["id"])
    return method_id.removeprefix("secretmanager.projects.").replace("locations.", "", 1)


class _Api:
    """The handlers, acting on one state."""

    def __init__(self, state: FakeGCPState) -> None:
        self.state = state

    def project_of(self, given: str) -> str:
        for project, number in self.state.projects.items():
            if given in (project, str(number)):
                return project
        raise _Refusal(403, f"Permission denied on resource project {given}.")

    def parent(self, project: str, location: str | None) -> str:
        number = self.state.projects[project]
        return f"projects/{number}" + (f"/locations/{location}" if location else "")

    def find(self, params: dict[str, str]) -> FakeSecret:
        project = self.project_of(params["projectsId"])
        location = params.get("locationsId")
        stored = self.state.secret(project, params["secretsId"], location)
        if stored is None:
            name = f"{self.parent(project, location)}/secrets/{params['secretsId']}"
            raise _Refusal(404, f"Secret [{name}] not found.")
        return stored

    def find_version(self, params: dict[str, str]) -> tuple[FakeSecret, FakeVersion]:
        stored = self.find(params)
        wanted = params["versionsId"]
        live = [v for v in stored.versions if v.state != "DESTROYED"]
        if wanted == "latest" and live:
            return stored, live[-1]
        for version in stored.versions:
            if str(version.number) == wanted:
                return stored, version
        name = f"{self.secret_json(stored)['name']}/versions/{wanted}"
        raise _Refusal(404, f"Secret Version [{name}] not found.")

    def secret_json(self, stored: FakeSecret) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"{self.parent(stored.project, stored.location)}/secrets/{stored.secret_id}",
            "createTime": stored.create_time,
            "etag": stored.etag,
        }
        if stored.replication is not None:
            body["replication"] = stored.replication
        if stored.labels:
            body["labels"] = dict(stored.labels)
        return body

    def version_json(self, stored: FakeSecret, version: FakeVersion) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"{self.secret_json(stored)['name']}/versions/{version.number}",
            "createTime": version.create_time,
            "state": version.state,
            "etag": version.etag,
            "clientSpecifiedPayloadChecksum": version.client_checksum,
        }
        if stored.replication is not None:
            body["replicationStatus"] = {"automatic": {}}
        if version.destroy_time:
            body["destroyTime"] = version.destroy_time
        return body

    @staticmethod
    def page(items: list[Any], query: dict[str, str], cap: int) -> tuple[list[Any], str | None]:
        size = int(query.get("pageSize") or 0)
        size = min(size or 25000, 25000, cap)
        start = 0
        if query.get("pageToken"):
            try:
                start = int(base64.urlsafe_b64decode(query["pageToken"]).decode().split(":")[1])
            except (ValueError, IndexError, binascii.Error):
                raise _Refusal(400, "Invalid page token.") from None
        chunk = items[start : start + size]
        more = start + size < len(items)
        token = base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode() if more else None
        return chunk, token

    @staticmethod
    def check_labels(labels: Any) -> None:
        if not isinstance(labels, dict):
            return
        if len(labels) > 64:
            raise _Refusal(400, "No more than 64 labels can be assigned to a given resource.")
        for key, value in labels.items():
            if not LABEL_KEY.match(key) or not LABEL_VALUE.match(str(value)):
                raise _Refusal(400, f"Invalid label: {key!r}.")

    def handle(
        self, operation: str, params: dict[str, str], query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        handler = getattr(self, "op_" + operation.replace(".", "_"), None)
        if handler is None:
            raise _Refusal(501, f"The fake does not implement {operation}.")
        result: dict[str, Any] = handler(params, query, body)
        return result

    def op_secrets_list(
        self, params: dict[str, str], query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        project = self.project_of(params["projectsId"])
        location = params.get("locationsId")
        if query.get("filter"):
            raise _Refusal(400, "The fake supports no filter on secrets.list.")
        found = sorted(
            (
                s
                for s in self.state.secrets.values()
                if (s.project, s.location) == (project, location)
            ),
            key=lambda s: -s.seq,
        )
        chunk, token = self.page(found, query, self.state.max_page_size)
        body: dict[str, Any] = {"totalSize": len(found)}
        if chunk:
            body["secrets"] = [self.secret_json(s) for s in chunk]
        if token:
            body["nextPageToken"] = token
        return body

    def op_secrets_create(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        project = self.project_of(params["projectsId"])
        location = params.get("locationsId")
        secret_id = query.get("secretId", "")
        if not SECRET_ID.match(secret_id):
            raise _Refusal(400, f"Invalid secret id {secret_id!r}.")
        body = body or {}
        replication = body.get("replication")
        if location is None:
            if not isinstance(replication, dict) or len(replication) != 1:
                raise _Refusal(400, "Field [replication] is required.")
        elif replication is not None:
            raise _Refusal(400, "Replication policy cannot be set for regional secrets.")
        self.check_labels(body.get("labels"))
        key = (project, location or "", secret_id)
        if key in self.state.secrets:
            name = f"{self.parent(project, location)}/secrets/{secret_id}"
            raise _Refusal(409, f"Secret [{name}] already exists.")
        stored = FakeSecret(
            project,
            location,
            secret_id,
            dict(body.get("labels") or {}),
            replication,
            _now(),
            self.state.new_etag(),
            self.state.next_seq(),
        )
        self.state.secrets[key] = stored
        return self.secret_json(stored)

    def op_secrets_get(
        self, params: dict[str, str], _query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        return self.secret_json(self.find(params))

    def op_secrets_patch(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        stored = self.find(params)
        body = body or {}
        if body.get("etag") and body["etag"] != stored.etag:
            raise _Refusal(400, "The etag does not match the current etag.", "FAILED_PRECONDITION")
        for path in query.get("updateMask", "").split(","):
            if path == "labels":
                self.check_labels(body.get("labels"))
                stored.labels = dict(body.get("labels") or {})
            elif path:
                raise _Refusal(400, f"The fake cannot update {path!r}.")
        stored.etag = self.state.new_etag()
        return self.secret_json(stored)

    def op_secrets_delete(
        self, params: dict[str, str], query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        stored = self.find(params)
        if query.get("etag") and query["etag"] != stored.etag:
            raise _Refusal(400, "The etag does not match the current etag.", "FAILED_PRECONDITION")
        del self.state.secrets[(stored.project, stored.location or "", stored.secret_id)]
        return {}

    def op_secrets_addVersion(  # noqa: N802 - named after the API method
        self, params: dict[str, str], _query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        stored = self.find(params)
        payload = (body or {}).get("payload")
        if payload is None:
            raise _Refusal(400, "Field [payload] is required.")
        data = base64.b64decode(payload.get("data", ""))
        if len(data) > MAX_PAYLOAD:
            raise _Refusal(400, "Secret Payload cannot be larger than 64KiB.")
        checksum = payload.get("dataCrc32c")
        if checksum is not None and int(checksum) != crc32c(data):
            raise _Refusal(400, "Checksum mismatch: the payload was corrupted in transit.")
        version = FakeVersion(
            len(stored.versions) + 1,
            data,
            "ENABLED",
            _now(),
            self.state.new_etag(),
            checksum is not None,
        )
        stored.versions.append(version)
        return self.version_json(stored, version)

    def op_secrets_versions_list(
        self, params: dict[str, str], query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        stored = self.find(params)
        versions = list(reversed(stored.versions))
        wanted = query.get("filter", "")
        if wanted:
            found = re.fullmatch(r"state:(ENABLED|DISABLED|DESTROYED)", wanted)
            if not found:
                raise _Refusal(400, f"The fake does not understand the filter {wanted!r}.")
            versions = [v for v in versions if v.state == found.group(1)]
        chunk, token = self.page(versions, query, self.state.max_page_size)
        body: dict[str, Any] = {"totalSize": 0 if wanted else len(versions)}
        if chunk:
            body["versions"] = [self.version_json(stored, v) for v in chunk]
        if token:
            body["nextPageToken"] = token
        return body

    def op_secrets_versions_get(
        self, params: dict[str, str], _query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        return self.version_json(*self.find_version(params))

    def op_secrets_versions_access(
        self, params: dict[str, str], _query: dict[str, str], _body: Any
    ) -> dict[str, Any]:
        stored, version = self.find_version(params)
        name = self.version_json(stored, version)["name"]
        if version.state != "ENABLED":
            raise _Refusal(
                400, f"Secret Version [{name}] is in {version.state} state.", "FAILED_PRECONDITION"
            )
        data = {
            "data": base64.b64encode(version.data).decode(),
            "dataCrc32c": str(crc32c(version.data)),
        }
        return {"name": name, "payload": data}

    def _set_state(self, params: dict[str, str], body: Any, state: str) -> dict[str, Any]:
        stored, version = self.find_version(params)
        if (body or {}).get("etag") and body["etag"] != version.etag:
            raise _Refusal(400, "The etag does not match the current etag.", "FAILED_PRECONDITION")
        if version.state == "DESTROYED":
            raise _Refusal(400, "The version is destroyed.", "FAILED_PRECONDITION")
        version.state = state
        version.etag = self.state.new_etag()
        if state == "DESTROYED":
            version.data = b""
            version.destroy_time = _now()
        return self.version_json(stored, version)

    def op_secrets_versions_disable(
        self, params: dict[str, str], _query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        return self._set_state(params, body, "DISABLED")

    def op_secrets_versions_enable(
        self, params: dict[str, str], _query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        return self._set_state(params, body, "ENABLED")

    def op_secrets_versions_destroy(
        self, params: dict[str, str], _query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        return self._set_state(params, body, "DESTROYED")


def _authenticate(state: FakeGCPState, header: str) -> str | None:
    """Return the service account behind a bearer token (self-signed JWT or issued token)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    if token in state.access_tokens:
        return state.access_tokens[token]
    claims = _verify_jwt(state, token)
    if claims is None:
        return None
    scopes = str(claims.get("scope", "")).split()
    if claims.get("aud") != API_AUDIENCE and CLOUD_PLATFORM not in scopes:
        return None
    return str(claims["iss"])


def _verify_jwt(state: FakeGCPState, token: str) -> dict[str, Any] | None:
    """Verify a JWT signed by a trusted service-account key; return its claims or None."""
    try:
        header = jwt.get_unverified_header(token)
        account = state.keys.get(str(header.get("kid")))
        if account is None or header.get("alg") != "RS256":
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            account.public_key,
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["exp", "iat", "iss"]},
            leeway=60,
        )
    except jwt.PyJWTError:
        return None
    if claims["iss"] != account.email or claims.get("sub", account.email) != account.email:
        return None
    if claims["exp"] - claims["iat"] > 3600:
        return None
    return claims


def create_fake_gcp(state: FakeGCPState) -> Starlette:
    """Build the fake Secret Manager (and token endpoint) as an ASGI app acting on `state`."""
    spec = discovery()
    api = _Api(state)

    def answer(code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(body, code, headers, media_type="application/json; charset=UTF-8")

    def refuse(refusal: _Refusal, headers: dict[str, str] | None = None) -> Response:
        return answer(
            refusal.code, error_body(refusal.code, refusal.message, refusal.status), headers
        )

    async def apply_fault(fault: Fault | None) -> Response | None:
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        message = {
            429: "Quota exceeded for quota metric 'Secret Manager API requests' and limit "
            "'Secret Manager API requests per minute' of service 'secretmanager.googleapis.com'.",
            500: "Internal error encountered.",
            503: "The service is currently unavailable.",
        }.get(fault.status, "Scripted failure.")
        return refuse(_Refusal(fault.status, message), headers)

    async def token(request: Request) -> Response:
        raw = await request.body()
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        recorded = {k: v for k, v in form.items() if k != "assertion"}
        state.requests.append(
            RecordedRequest("POST", request.url.path, "token", recorded, None, "assertion" in form)
        )
        fault = await apply_fault(state.take_fault("token", None))
        if fault is not None:
            return fault
        if form.get("grant_type") != JWT_BEARER:
            return answer(
                400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
            )
        claims = _verify_jwt(state, form.get("assertion", ""))
        # google-auth addresses grants to Google's token URI whatever the key file says.
        audiences = (TOKEN_AUDIENCE, f"{str(request.base_url).rstrip('/')}{request.url.path}")
        if claims is None or claims.get("aud") not in audiences or not claims.get("scope"):
            return answer(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        access = f"ya29.fake-{secrets.token_urlsafe(24)}"
        state.access_tokens[access] = str(claims["iss"])
        return answer(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        query_items = parse_qsl(request.url.query, keep_blank_values=True)
        query = dict(query_items)
        found = spec.match(request.method, request.url.path)
        operation = _operation(found[0]) if found else None
        params = found[1] if found else {}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<invalid JSON>"
        state.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                operation,
                query,
                body,
                "authorization" in request.headers,
            )
        )
        if found is None:
            state.violations.append(f"undocumented call {request.method} {request.url.path}")
            return refuse(_Refusal(404, f"Method not found: {request.method} {request.url.path}."))
        method = found[0]
        fault = await apply_fault(state.take_fault(operation, params.get("secretsId")))
        if fault is not None:
            return fault
        if _authenticate(state, request.headers.get("authorization", "")) is None:
            return refuse(
                _Refusal(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                )
            )
        int_enums = "enum-encoding=int" in query.get("$alt", "")
        problems = spec.check_query(method, query_items)
        problems += [
            f"query parameter {name!r} is required for {method['id']}"
            for name in REQUIRED_QUERY.get(str(operation), ())
            if name not in query
        ]
        if "request" in method:
            problems += spec.check(
                body if body is not None else {},
                method["request"],
                "request",
                request=True,
                int_enums=int_enums,
            )
        elif raw:
            problems.append(f"{method['id']} takes no request body")
        if problems:
            state.violations.extend(problems)
            return refuse(_Refusal(400, "; ".join(problems)))
        try:
            with state.lock:
                project = api.project_of(params["projectsId"])
                permission = PERMISSIONS.get(str(operation), "secretmanager.unknown")
                if permission in state.denied:
                    resource = api.parent(project, params.get("locationsId"))
                    raise _Refusal(
                        403,
                        f"Permission '{permission}' denied for resource '{resource}' "
                        "(or it may not exist).",
                    )
                result = api.handle(str(operation), params, query, body)
        except _Refusal as refusal:
            return refuse(refusal)
        problems = spec.check(
            result, method["response"], "response", request=False, int_enums=False
        )
        if problems:
            state.violations.extend(problems)
            return refuse(
                _Refusal(500, "The fake's answer broke the schema: " + "; ".join(problems))
            )
        return answer(200, result)

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/{path:path}", endpoint, methods=every_method),
        ]
    )


@contextmanager
def serve_fake_gcp(state: FakeGCPState | None = None) -> Iterator[str]:
    """Run the fake on a free 127.0.0.1 port in a thread; yield its base URL.

    Point the client at it with `api_endpoint=<url>`; key files from `new_service_account`
    use `<url>/token` as their token URI.
    """
    app = create_fake_gcp(state or FakeGCPState())
    with serve_in_thread(app, "the fake GCP server") as url:
        yield url
