"""CLI start-up: `kavach --help` and `kavach run -- true` against a local server.

Run: `python -m bench.cli_bench`. Wall times over repeated runs (best and median),
next to `python -I -c pass` as the floor any Python CLI pays.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.server import KAVACH, Server, running_server

RESULTS = Path(__file__).with_name("results")
RUNS = 15


def _time(command: list[str], env: dict[str, str]) -> dict[str, float]:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        timings.append(time.perf_counter() - started)
    return {"best_s": min(timings), "median_s": statistics.median(timings)}


def _token(server: Server) -> str:
    org = server.call("POST", "/organizations/", json={"name": "cli-bench"})
    group = server.call("POST", f"/organizations/{org['id']}/secret-groups", json={"name": "g"})
    env = server.call("POST", f"/secret-groups/{group['id']}/environments", json={"name": "e"})
    secrets = {f"SECRET_{n:02d}": f"value-{n}" for n in range(50)}
    server.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        json={"message": "bench", "secrets": secrets, "replace": True},
    )
    made = server.call(
        "POST", f"/environments/{env['id']}/tokens", json={"name": "bench", "role": "viewer"}
    )
    token: str = made["token"]
    return token


def main() -> None:
    """Time the commands and print a table; write bench/results/cli.json."""
    with running_server("sqlite") as server, tempfile.TemporaryDirectory() as home:
        token = _token(server)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
        env.update(KAVACH_HOME=home, KAVACH_SERVER=server.url, KAVACH_TOKEN=token)
        results = {
            "python -I -c pass": _time([sys.executable, "-I", "-c", "pass"], env),
            "kavach --help": _time([KAVACH, "--help"], env),
            "kavach run -- true (service token)": _time([KAVACH, "run", "--", "true"], env),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps(results, indent=2))
    print(f"{'command':<38} {'best':>8} {'median':>8}")
    for name, figures in results.items():
        print(f"{name:<38} {figures['best_s']:>7.3f}s {figures['median_s']:>7.3f}s")


if __name__ == "__main__":
    main()
