"""The bare baseline for the read benchmark: Starlette + asyncpg + AES-GCM + orjson + HS256.

It serves the same `GET /api/v1/environments/{id}/secrets` from the same Kavach database
with the same keys, doing only what the read needs: check the JWT, run one query, decrypt,
serialise. No sessions, roles, audit or rate limits: it is the floor Kavach is measured
against. Run by `bench.http_bench` with the bench server's environment:
`uvicorn --factory bench.baseline_app:create_app`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import jwt
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.crypto.keys import load_keys
from kavach.server.secrets.models import DataKey
from kavach.server.secrets.service import value_aad
from kavach.server.settings import get_settings

_LATEST = """
SELECT v.id, v.seq, s.name, s.value_encrypted, v.data_key_id
FROM (SELECT id, seq, data_key_id FROM secret_versions WHERE environment_id = $1
      ORDER BY seq DESC LIMIT 1) AS v
JOIN secrets AS s ON s.version_id = v.id
ORDER BY s.name
"""


def _json(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app() -> Starlette:
    """Build the baseline app from the Kavach settings in the environment."""
    settings = get_settings()
    keys = load_keys(settings)
    secret_keys = SecretKeys(keys.secret_keyring())
    ciphers: dict[uuid.UUID, AESGCM] = {}
    url = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(url, min_size=5, max_size=10)
        assert pool is not None
        # Data keys never change: unwrap them once, as Kavach's own cache does.
        for row in await pool.fetch(
            "SELECT id, environment_id, kek_id, wrapped_key FROM data_keys"
        ):
            record = DataKey(**dict(row))
            ciphers[row["id"]] = AESGCM(secret_keys.unwrap(record))
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    async def read_secrets(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(
                header.removeprefix("Bearer "),
                keys.jwt_signing_key,
                algorithms=["HS256"],
                audience=settings.auth.jwt_audience,
                issuer=settings.auth.jwt_issuer,
            )
        except jwt.PyJWTError:
            return _json(401, {"success": False, "error_code": "invalid_token"})
        if claims.get("typ") != "access":
            return _json(401, {"success": False, "error_code": "invalid_token"})
        env_id = uuid.UUID(request.path_params["id"])
        rows = await request.app.state.pool.fetch(_LATEST, env_id)
        values = {}
        for row in rows:
            sealed = row["value_encrypted"]
            aad = value_aad(env_id, row["id"], row["name"])
            plain = ciphers[row["data_key_id"]].decrypt(sealed[:12], sealed[12:], aad)
            values[row["name"]] = plain.decode()
        version = {"id": rows[0]["id"], "seq": rows[0]["seq"]} if rows else None
        return _json(200, {"success": True, "data": {"version": version, "secrets": values}})

    return Starlette(
        routes=[Route("/api/v1/environments/{id}/secrets", read_secrets)], lifespan=lifespan
    )
