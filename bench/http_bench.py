"""HTTP benchmarks under wrk: Kavach's read and write paths, a bare baseline, and OpenBao.

Every server runs pinned to one core (`SERVER_CPU`), wrk to the other; all three keep their
data in the same PostgreSQL. Each figure is the median of several runs, the servers
measured in turn. Run: `python -m bench.http_bench [--seconds N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.openbao import OpenBao, running_openbao
from bench.server import Server, free_port, pinned, running_server

RESULTS = Path(__file__).with_name("results")
SERVER_CPU = "0"
LOAD_CPU = "1"
CONNECTIONS = (1, 64)
SECRET_COUNT = 50
# Generous, so the benchmark measures serving rather than refusals; the check still runs.
BENCH_RATE_LIMIT = "100000000/minute"
READ_TARGETS = {"vs baseline": 0.6, "vs OpenBao": 2.0}
WRITE_TARGET = 1.0

# Each request sets every name to a new value, so each commit or write is a real change.
_WRITE_LUA = """
local counter = 0
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local parts = {}
  for i = 0, SECRET_LAST do
    parts[#parts + 1] = string.format('"SECRET_%02d":"value-%08d-%02d-0123456789"', i, counter, i)
  end
  local body = BODY_START .. table.concat(parts, ",") .. BODY_END
  return wrk.format("POST", nil, nil, body)
end
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses plus socket errors


def _find(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk's report has no {pattern!r}:\n{text}")
    return found


def _milliseconds(text: str) -> float:
    number, unit = _find(r"^([\d.]+)(us|ms|s)$", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, latency percentiles and errors from wrk's --latency report."""
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return WrkResult(
        requests_per_s=float(_find(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_milliseconds(_find(r"^\s+50%\s+(\S+)\s*$", output).group(1)),
        p99_ms=_milliseconds(_find(r"^\s+99%\s+(\S+)\s*$", output).group(1)),
        requests=int(_find(r"(\d+) requests in", output).group(1)),
        errors=errors,
    )


def run_wrk(
    url: str, *, connections: int, seconds: int, header: str, script: Path | None = None
) -> WrkResult:
    """Run wrk (one thread, pinned to the load core) against a URL; fail on any error."""
    command = [*pinned(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--latency", "--timeout", "10s", "-H", header]
    if script is not None:
        command += ["-s", str(script)]
    # Not check=True: the error would print the command, and with it the token.
    done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed against {url}: {done.stderr.strip()}")
    output = done.stdout
    result = parse_wrk(output)
    if result.errors:
        raise RuntimeError(f"{result.errors} failed requests against {url}:\n{output}")
    return result


def write_script(directory: Path, *, field: str, extra: str = "") -> Path:
    """Write the Lua script that posts a 50-key change, its values new on every request."""
    start = "{" + extra + f'"{field}":{{'
    lua = (
        _WRITE_LUA.replace("SECRET_LAST", str(SECRET_COUNT - 1))
        .replace("BODY_START", json.dumps(start))
        .replace("BODY_END", json.dumps("}}"))
    )
    path = directory / f"write-{field}.lua"
    path.write_text(lua)
    return path


def _seed(server: Server) -> str:
    org = server.call("POST", "/organizations/", json={"name": "http-bench"})
    group = server.call("POST", f"/organizations/{org['id']}/secret-groups", json={"name": "g"})
    env = server.call("POST", f"/secret-groups/{group['id']}/environments", json={"name": "e"})
    values = {f"SECRET_{n:02d}": secrets.token_urlsafe(24) for n in range(SECRET_COUNT)}
    server.call(
        "POST",
        f"/environments/{env['id']}/secrets/versions",
        json={"message": "seed", "set": values},
    )
    env_id: str = env["id"]
    return env_id


@contextmanager
def running_baseline(server: Server, read_path: str) -> Iterator[str]:
    """Run the bare baseline app pinned like Kavach, on Kavach's database and keys."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.baseline_app:create_app"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen([*pinned(SERVER_CPU), *command], env=server.env)
    try:
        deadline = time.monotonic() + 30
        headers = {"Authorization": server.client.headers["Authorization"]}
        while True:
            try:
                if httpx.get(url + read_path, headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the baseline did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


Table = dict[str, dict[str, WrkResult]]


@dataclass(frozen=True)
class Target:
    """One thing measured: a name, a URL, the credential header and, for writes, a script."""

    name: str
    url: str
    header: str
    script: Path | None = None


def _median(runs: list[WrkResult]) -> WrkResult:
    """The run with the median rate (the middle one of an odd number of runs)."""
    return sorted(runs, key=lambda run: run.requests_per_s)[len(runs) // 2]


def _rounds(targets: list[Target], seconds: int, rounds: int, table: Table) -> None:
    """Measure the targets in turn, round after round; each figure is the median run.

    Taking the targets in turn, rather than one after the other, lets each see the
    machine's changing speed alike, so ratios between them hold better than single runs.
    """
    runs: dict[tuple[str, int], list[WrkResult]] = {}
    for target in targets:  # warm-up
        run_wrk(target.url, connections=8, seconds=2, header=target.header, script=target.script)
    for number in range(1, rounds + 1):
        for target in targets:
            for connections in CONNECTIONS:
                result = run_wrk(
                    target.url,
                    connections=connections,
                    seconds=seconds,
                    header=target.header,
                    script=target.script,
                )
                runs.setdefault((target.name, connections), []).append(result)
                print(
                    f"  round {number}  {target.name:<26} c={connections:<3} "
                    f"{result.requests_per_s:9.1f} req/s",
                    flush=True,
                )
    for (name, connections), found in runs.items():
        table.setdefault(name, {})[f"c{connections}"] = _median(found)


def bench_http(seconds: int, rounds: int) -> dict[str, Table]:
    """Measure reads on all three servers and writes on Kavach and OpenBao."""
    reads: Table = {}
    writes: Table = {}
    with (
        tempfile.TemporaryDirectory(prefix="kavach-wrk-") as tmp,
        running_server(
            "postgresql", cpu=SERVER_CPU, KAVACH_RATE_LIMIT_API=BENCH_RATE_LIMIT
        ) as kavach,
    ):
        env_id = _seed(kavach)
        read_path = f"/api/v1/environments/{env_id}/secrets"
        bearer = f"Authorization: {kavach.client.headers['Authorization']}"
        kavach_read = Target("kavach read", kavach.url + read_path, bearer)
        bao: OpenBao
        with (
            running_baseline(kavach, read_path) as baseline,
            running_openbao(keys=SECRET_COUNT, cpu=SERVER_CPU) as bao,
        ):
            bao_header = f"X-Vault-Token: {bao.token}"
            readers = [
                kavach_read,
                Target("baseline read", baseline + read_path, bearer),
                Target("openbao read", bao.url + bao.read_path, bao_header),
            ]
            _rounds(readers, seconds, rounds, reads)
            # Writes after every read: they add versions to the environment read above.
            commit = write_script(Path(tmp), field="set", extra='"message":"bench",')
            put = write_script(Path(tmp), field="data")
            writers = [
                Target(
                    "kavach commit (50 keys)", f"{kavach.url}{read_path}/versions", bearer, commit
                ),
                Target("openbao write (50 keys)", bao.url + bao.read_path, bao_header, put),
            ]
            _rounds(writers, seconds, rounds, writes)
    return {"read": reads, "write": writes}


def ratios(results: dict[str, Table]) -> dict[str, dict[str, float]]:
    """Return Kavach's requests/s over each competitor's, per connection count."""
    reads, writes = results["read"], results["write"]
    found: dict[str, dict[str, float]] = {}
    for level in (f"c{c}" for c in CONNECTIONS):
        kavach = reads["kavach read"][level].requests_per_s
        found[f"read {level}"] = {
            "vs baseline": kavach / reads["baseline read"][level].requests_per_s,
            "vs OpenBao": kavach / reads["openbao read"][level].requests_per_s,
        }
        found[f"write {level}"] = {
            "vs OpenBao": writes["kavach commit (50 keys)"][level].requests_per_s
            / writes["openbao write (50 keys)"][level].requests_per_s
        }
    return found


def print_table(results: dict[str, Table], found: dict[str, dict[str, float]]) -> None:
    """Print each figure, then the ratios against their targets."""
    print(f"\n{'server':<28} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for table in results.values():
        for name, levels in table.items():
            for level, r in levels.items():
                print(
                    f"{name:<28} {level[1:]:>5} {r.requests_per_s:9.1f} "
                    f"{r.p50_ms:8.2f} {r.p99_ms:8.2f}"
                )
    print(f"\n{'ratio (Kavach : other)':<28} {'value':>7} {'target':>8}")
    for what, against in found.items():
        for other, value in against.items():
            target = WRITE_TARGET if what.startswith("write") else READ_TARGETS[other]
            verdict = "met" if value >= target else "MISSED"
            print(f"{what + ' ' + other:<28} {value:7.2f} {'>= ' + str(target):>8} {verdict}")


def main() -> None:
    """Run the HTTP benchmarks, print the table and ratios, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=6, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each figure (median)")
    args = parser.parse_args()
    results = bench_http(args.seconds, args.rounds)
    found = ratios(results)
    print_table(results, found)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "http.json"
    plain = {
        kind: {n: {lv: asdict(r) for lv, r in t.items()} for n, t in table.items()}
        for kind, table in results.items()
    }
    out.write_text(json.dumps({"results": plain, "ratios": found}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
