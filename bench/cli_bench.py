"""CLI start-up, in an environment with the command line alone (`pip install kavach`).

Run: `python -m bench.cli_bench`. Times `kavach --help`, and `kavach run -- true` and
`kavach secrets` with a service token in KAVACH_TOKEN against a local server (an
environment of 50 secrets). Wall times measured by hyperfine (warm-up runs, then RUNS runs
each: best, median, mean, CPU time), next to `python -I -c pass` of the same interpreter,
the floor any Python CLI pays; the medians are compared with the targets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from bench.server import Server, running_server
from scripts import cli_venv

RESULTS = Path(__file__).with_name("results")
RUNS = 20
FLOOR = "python -I -c pass"
HELP = "kavach --help"
RUN = "kavach run -- true (service token)"
SECRETS = "kavach secrets (service token)"
TAB_KEPT = "TAB: secret names (names kept)"
TAB_ASKED = "TAB: secret names (server asked)"
TARGETS = {HELP: 0.15, RUN: 0.25, SECRETS: 0.30, TAB_KEPT: 0.20, TAB_ASKED: 0.20}


def _time(
    commands: dict[str, list[str]], env: dict[str, str], prepare: str | None = None
) -> dict[str, dict[str, float]]:
    """Time each command with hyperfine (no shell in between); return seconds per command."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "hyperfine.json")
        line = ["hyperfine", "--shell=none", "--warmup", "3", "--runs", str(RUNS)]
        if prepare is not None:
            line += ["--prepare", prepare]
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
            # CPU time (user + system, mean): what the command costs whatever else runs.
            "cpu_s": entry["user"] + entry["system"],
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
    with (
        running_server("sqlite") as server,
        tempfile.TemporaryDirectory(prefix="kavach-cli-") as tmp,
    ):
        kavach = str(cli_venv.build(Path(tmp, "venv")))
        python = str(Path(kavach).with_name("python"))
        token = _token(server)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
        env.update(KAVACH_HOME=str(Path(tmp, "home")), KAVACH_SERVER=server.url)
        env.update(KAVACH_TOKEN=token)
        # The token travels in the environment, never on a command line.
        load_before = os.getloadavg()[0]
        results = _time(
            {
                FLOOR: [python, "-I", "-c", "pass"],
                HELP: [kavach, "--help"],
                RUN: [kavach, "run", "--", "true"],
                SECRETS: [kavach, "secrets"],
            },
            env,
        )
        # A TAB after `kavach secret get `: bash's completion protocol, as the shell runs it.
        tab = env | {
            "_KAVACH_COMPLETE": "complete_bash",
            "COMP_WORDS": "kavach secret get ",
            "COMP_CWORD": "3",
        }
        # A TAB that answered nothing would be fast and wrong: it must offer the names.
        offered = subprocess.run(
            [kavach, "secret", "get"], env=tab, capture_output=True, text=True, check=True
        ).stdout.split()
        if offered[:2] != ["SECRET_00", "SECRET_01"]:
            raise RuntimeError(f"the TAB offered {offered[:3]}, not the secrets' names")
        results |= _time({TAB_KEPT: [kavach, "secret", "get"]}, tab)
        cache = Path(tmp, "home", "cache", "completion.json")
        results |= _time({TAB_ASKED: [kavach, "secret", "get"]}, tab, prepare=f"rm -f {cache}")
    # Wall times stretch with what else runs on the machine; the load says how much did.
    load = {"before": load_before, "after": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps({"load_average": load, **results}, indent=2))
    floor = results[FLOOR]["median_s"]
    print(f"{'command':<38} {'best':>7} {'median':>7} {'cpu':>7} {'x python':>8}  target")
    for name, figures in results.items():
        median = figures["median_s"]
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else f"≤ {target:.2f}s ({'met' if median <= target else 'MISSED'})"
        )
        print(
            f"{name:<38} {figures['best_s']:>6.3f}s {median:>6.3f}s {figures['cpu_s']:>6.3f}s "
            f"{median / floor:>7.1f}x  {verdict}"
        )
    print(f"load average (1 min): {load['before']:.2f} before, {load['after']:.2f} after")


if __name__ == "__main__":
    main()
