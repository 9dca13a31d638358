"""`kavach run --watch`: time from a commit to the command running with the new value.

Run: `python -m bench.watch_bench [--backend sqlite|postgresql] [--commits N]
[--via-reference]`. A local server, an environment of 10 secrets and a service token
(with --via-reference, its VALUE is `${shared.VALUE}` and the commits go to the
environment `shared` it refers to); `kavach run --watch` runs a tiny
Python command that writes the value it got and the moment it started (CLOCK_MONOTONIC,
shared by every process of the machine). Each commit goes through the API; the figure is
from just before it is sent to the new command's start: the feed noticing (at most one
poll interval, 0.2 s), the CLI reading the secrets again, stopping the old command and
starting the new one. Median and max against the target; JSON to bench/results/watch.json.
"""

from __future__ import annotations

import argparse
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
TARGET_S = 1.0
PAUSE_S = 0.5  # between commits, so each finds the watcher waiting on the feed again
CHILD = """
import os, sys, time
with open(sys.argv[1], "a") as out:
    out.write(f"{os.environ['VALUE']} {time.monotonic()}\\n")
while True:
    time.sleep(1)
"""


def _environment(server: Server, via_reference: bool) -> tuple[str, str, str]:
    """Create an environment of 10 secrets; return its id, a viewer service token and the
    id of the environment the commits go to (itself, or the one its VALUE refers to)."""
    org = server.call("POST", "/organizations/", json={"name": "watch-bench"})
    group = server.call("POST", f"/organizations/{org['id']}/secret-groups", json={"name": "g"})
    env = server.call("POST", f"/secret-groups/{group['id']}/environments", json={"name": "e"})
    committed_to = str(env["id"])
    value = "start"
    if via_reference:
        shared = server.call(
            "POST", f"/secret-groups/{group['id']}/environments", json={"name": "shared"}
        )
        server.call(
            "POST",
            f"/environments/{shared['id']}/secrets/versions",
            json={"message": "bench", "set": {"VALUE": "start"}},
        )
        committed_to, value = str(shared["id"]), "${shared.VALUE}"
    secrets = {f"SECRET_{n:02d}": f"value-{n}" for n in range(10)} | {"VALUE": value}
    server.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        json={"message": "bench", "secrets": secrets, "replace": True},
    )
    made = server.call(
        "POST", f"/environments/{env['id']}/tokens", json={"name": "watch", "role": "viewer"}
    )
    return str(env["id"]), str(made["token"]), committed_to


def _started(out: Path, value: str, timeout: float = 30.0) -> float:
    """Wait for the command started with `value`; return when it started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines() if out.exists() else []:
            got, _, at = line.partition(" ")
            if got == value:
                return float(at)
        time.sleep(0.005)
    raise RuntimeError(f"the command never started with {value!r}")


def main() -> None:
    """Time the commits and print median and max; write bench/results/watch.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument(
        "--via-reference",
        action="store_true",
        help="commit to an environment the watched one refers to",
    )
    args = parser.parse_args()
    with (
        running_server(args.backend) as server,
        tempfile.TemporaryDirectory(prefix="kavach-watch-") as tmp,
    ):
        _env_id, token, committed_to = _environment(server, args.via_reference)
        out, script = Path(tmp, "starts"), Path(tmp, "child.py")
        script.write_text(CHILD)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAVACH_")}
        env.update(KAVACH_HOME=str(Path(tmp, "home")), KAVACH_SERVER=server.url)
        env.update(KAVACH_TOKEN=token)  # in the environment, never on a command line
        watcher = subprocess.Popen(
            [KAVACH, "run", "--watch", "--", sys.executable, str(script), str(out)],
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _started(out, "start")
            time.sleep(PAUSE_S)
            delays = []
            for n in range(args.commits):
                value = f"v{n}"
                sent = time.monotonic()
                server.call(
                    "POST",
                    f"/environments/{committed_to}/secrets/versions",
                    json={"message": value, "set": {"VALUE": value}},
                )
                delays.append(_started(out, value) - sent)
                time.sleep(PAUSE_S)
        finally:
            watcher.terminate()
            watcher.wait(timeout=15)
    median, worst = statistics.median(delays), max(delays)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "watch.json").write_text(
        json.dumps(
            {
                "backend": args.backend,
                "via_reference": args.via_reference,
                "delays_s": delays,
                "median_s": median,
                "max_s": worst,
            },
            indent=2,
        )
    )
    verdict = "met" if worst <= TARGET_S else "MISSED"
    how = ", through a reference" if args.via_reference else ""
    print(f"commit to restarted command ({args.backend}{how}, {len(delays)} commits):")
    print(f"  median {median:.3f} s, max {worst:.3f} s (target ≤ {TARGET_S:.1f} s: {verdict})")


if __name__ == "__main__":
    main()
