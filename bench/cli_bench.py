"""CLI start-up: `kavach --help` and `kavach run -- true` against a local server.

Run: `python -m bench.cli_bench`. Wall times measured by hyperfine (warm-up runs, then
RUNS runs each: best, median, mean), next to `python -I -c pass`, the floor any Python
CLI pays.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.server import KAVACH, Server, running_server

RESULTS = Path(__file__).with_name("results")
RUNS = 20


def _time(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Time each command with hyperfine (no shell in between); return seconds per command."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "hyperfine.json")
        line = ["hyperfine", "--shell=none", "--warmup", "3", "--runs", str(RUNS)]
        line += ["--export-json", str(report), "--style", "none"]
        for name, command in commands.items():
            line += ["--command-name", name, shlex.join(command)]
        subprocess.run(line, env=env, check=True, stdout=subprocess.DEVNULL)
        measured = json.loads(report.read_text())["results"]
    return {
        entry["command"]: {
            "best_s": entry["min"],
            "median_s": entry["median"],
            "mean_s": entry["mean"],
        }
        for entry in measured
    }


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
        # The token travels in the environment, never on a command line.
        results = _time(
            {
                "python -I -c pass": [sys.executable, "-I", "-c", "pass"],
                "kavach --help": [KAVACH, "--help"],
                "kavach run -- true (service token)": [KAVACH, "run", "--", "true"],
            },
            env,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps(results, indent=2))
    floor = results["python -I -c pass"]["median_s"]
    print(f"{'command':<38} {'best':>8} {'median':>8} {'x python':>9}")
    for name, figures in results.items():
        print(
            f"{name:<38} {figures['best_s']:>7.3f}s {figures['median_s']:>7.3f}s "
            f"{figures['median_s'] / floor:>8.1f}x"
        )


if __name__ == "__main__":
    main()
