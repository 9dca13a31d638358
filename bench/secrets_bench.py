"""Secrets benchmarks: a 1,000-secret commit, and latest reads with 10,000 versions of history.

Run: `python -m bench.secrets_bench [--backend sqlite|postgresql|both] [--history N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench.server import Server, running_server

RESULTS = Path(__file__).with_name("results")


def _tree(server: Server, name: str) -> str:
    org = server.call("POST", "/organizations/", json={"name": name})
    group = server.call("POST", f"/organizations/{org['id']}/secret-groups", json={"name": "g"})
    env = server.call("POST", f"/secret-groups/{group['id']}/environments", json={"name": "e"})
    env_id: str = env["id"]
    return env_id


def _values(count: int) -> dict[str, str]:
    return {f"SECRET_{n:05d}": secrets.token_urlsafe(24) for n in range(count)}


def bench_commit(server: Server, *, count: int = 1000, rounds: int = 7) -> dict[str, float]:
    """Time snapshot commits of `count` secrets through the API (client wall time)."""
    env_id = _tree(server, "commit-bench")
    timings = []
    for _ in range(rounds):
        body = {"message": "bench", "secrets": _values(count), "replace": True}
        started = time.perf_counter()
        server.call("POST", f"/environments/{env_id}/secrets/versions", json=body)
        timings.append(time.perf_counter() - started)
    return {"median_s": statistics.median(timings), "max_s": max(timings), "rounds": rounds}


async def _seed_history(server: Server, env_id: str, versions: int, per_version: int) -> None:
    """Write `versions` versions straight through the server's own storage code (fast seeding)."""
    os.environ.update(server.env)
    from kavach.server.access import Actor
    from kavach.server.crypto.datakeys import SecretKeys
    from kavach.server.crypto.keys import load_keys
    from kavach.server.db.engine import create_engine, create_sessionmaker
    from kavach.server.secrets import service
    from kavach.server.settings import get_settings

    settings = get_settings()
    keys = SecretKeys(load_keys(settings).secret_keyring())
    engine = create_engine(settings)
    actor = Actor(type="system", label="bench")
    try:
        sessions = create_sessionmaker(engine)
        parent = None
        values = _values(per_version)
        done = 0
        while done < versions:
            async with sessions() as session, session.begin():
                for _ in range(min(250, versions - done)):
                    values[f"SECRET_{done % per_version:05d}"] = secrets.token_urlsafe(24)
                    parent = await service.write_version(
                        session,
                        keys,
                        environment_id=uuid.UUID(env_id),
                        new=service.NewVersion(
                            values=dict(values), message="seed", author=actor, parent=parent
                        ),
                    )
                    done += 1
    finally:
        await engine.dispose()


def _read_p50(server: Server, env_id: str, reads: int) -> float:
    path = f"/environments/{env_id}/secrets"
    for _ in range(20):
        server.call("GET", path)
    timings = []
    for _ in range(reads):
        started = time.perf_counter()
        server.call("GET", path)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def bench_history(server: Server, *, history: int, reads: int = 300) -> dict[str, float]:
    """Compare p50 latest-read latency with 1 version against `history` versions."""
    short = _tree(server, "history-one")
    long = _tree(server, "history-many")
    server.call(
        "POST",
        f"/environments/{short}/secrets/versions",
        json={"message": "one", "secrets": _values(50), "replace": True},
    )
    started = time.perf_counter()
    asyncio.run(_seed_history(server, long, history, 50))
    seeded = time.perf_counter() - started
    one = _read_p50(server, short, reads)
    many = _read_p50(server, long, reads)
    return {
        "p50_one_version_ms": one * 1000,
        f"p50_{history}_versions_ms": many * 1000,
        "ratio": many / one,
        "seed_s": seeded,
    }


def main() -> None:
    """Run the benchmarks and print a table; write bench/results/secrets.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--history", type=int, default=10_000)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, Any] = {}
    for backend in backends:
        with running_server(backend) as server:
            results[backend] = {
                "commit_1000": bench_commit(server),
                "history": bench_history(server, history=args.history),
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "secrets.json").write_text(json.dumps(results, indent=2))
    print(
        f"{'backend':<11} {'1000-secret commit (median)':>28} {'p50 1 ver':>10} "
        f"{'p50 N ver':>10} {'ratio':>6}"
    )
    for backend, figures in results.items():
        history = figures["history"]
        many = next(v for k, v in history.items() if k.startswith("p50_") and "one" not in k)
        print(
            f"{backend:<11} {figures['commit_1000']['median_s'] * 1000:>25.0f} ms "
            f"{history['p50_one_version_ms']:>7.2f} ms {many:>7.2f} ms {history['ratio']:>6.2f}"
        )


if __name__ == "__main__":
    main()
