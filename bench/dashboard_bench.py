"""Server time to render the dashboard's pages of an environment of 500 secrets.

    python -m bench.dashboard_bench [--secrets 500] [--samples 200]

The app runs in this process on SQLite (a fresh data directory); each page is requested
through ASGI (no network), as a signed-in owner with the browser's session cookie, and the
time from request to the last byte of the answer is taken. Prints p50 and p99 per page and
the size of each answer (before compression, and without htmx, which is cached).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from kavach.server.access import SYSTEM, RequestOrigin
from kavach.server.app import create_app
from kavach.server.auth import approval
from kavach.server.crypto.keys import KeyMaterial
from kavach.server.settings import AuthSettings, DatabaseSettings, KeySettings, Settings

TARGET_MS = 20.0
LIMITS = {"rate_limit_api": "1000000/minute", "rate_limit_device_code": "1000/minute"}


async def _signed_in(client: httpx.AsyncClient, app: object) -> str:
    started = (await client.post("/api/v1/auth/device/code", json={})).json()["data"]
    runtime = app.state.runtime  # type: ignore[attr-defined]
    async with runtime.sessionmaker() as session, session.begin():
        await approval.decide_as_operator(
            session,
            user_code=started["user_code"],
            approve=True,
            login="owner",
            actor=SYSTEM,
            origin=RequestOrigin(client_address="local"),
        )
    body = {"device_code": started["device_code"]}
    token: str = (await client.post("/api/v1/auth/device/token", json=body)).json()["data"][
        "access_token"
    ]
    return token


async def run(secrets: int, samples: int) -> dict[str, tuple[float, float, int]]:
    """Return p50 ms, p99 ms and answer bytes of each page."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = Settings(
            data_dir=data,
            log_level="WARNING",
            db=DatabaseSettings(),
            keys=KeySettings(),
            auth=AuthSettings(**LIMITS),  # type: ignore[arg-type]
        )
        keys = KeyMaterial(
            jwt_signing_key=b"k" * 32,
            secret_encryption_key=b"s" * 32,
            provider_credential_key=b"p" * 32,
            generated=False,
        )
        app = create_app(settings, keys=keys)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                token = await _signed_in(client, app)
                api = {"Authorization": f"Bearer {token}"}
                org = await client.post("/api/v1/organizations/", json={"name": "o"}, headers=api)
                org_id = org.json()["data"]["id"]
                group = await client.post(
                    f"/api/v1/organizations/{org_id}/secret-groups", json={"name": "g"}, headers=api
                )
                group_id = group.json()["data"]["id"]
                env = await client.post(
                    f"/api/v1/secret-groups/{group_id}/environments",
                    json={"name": "e"},
                    headers=api,
                )
                env_id = env.json()["data"]["id"]
                values = {f"SECRET_{i:04d}": f"value-{i}-" + "x" * 32 for i in range(secrets)}
                for message in ("first", "second"):
                    await client.post(
                        f"/api/v1/environments/{env_id}/secrets/versions",
                        json={"message": message, "secrets": values, "replace": True}
                        if message == "first"
                        else {"message": message, "set": {"SECRET_0000": "changed"}},
                        headers=api,
                    )
                client.cookies.set("kavach_session", token)
                pages = {
                    "environment": f"/ui/environments/{env_id}/",
                    "history": f"/ui/environments/{env_id}/history",
                    "organizations": "/ui/",
                }
                results = {}
                for name, path in pages.items():
                    for _ in range(10):  # warm up
                        await client.get(path)
                    took, size = [], 0
                    for _ in range(samples):
                        started = time.perf_counter()
                        answer = await client.get(path)
                        took.append((time.perf_counter() - started) * 1000)
                        assert answer.status_code == 200, answer.text[:200]
                        size = len(answer.content)
                    took.sort()
                    results[name] = (
                        statistics.median(took),
                        took[int(len(took) * 0.99) - 1],
                        size,
                    )
                return results


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secrets", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    results = asyncio.run(run(args.secrets, args.samples))
    print(f"dashboard pages, an environment of {args.secrets} secrets (SQLite, in-process)")
    print(f"{'page':<15}{'p50 ms':>9}{'p99 ms':>9}{'bytes':>9}")
    for name, (p50, p99, size) in results.items():
        print(f"{name:<15}{p50:>9.2f}{p99:>9.2f}{size:>9}")
    environment = results["environment"][0]
    verdict = "meets" if environment <= TARGET_MS else "misses"
    print(f"environment page p50 {environment:.2f} ms {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
