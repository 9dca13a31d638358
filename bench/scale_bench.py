"""Scale benchmark: listings, whoami, a read and a commit at 1 and at N resources; memory.

One organization owned by "bench" is measured first with one secret group, one environment
and a few rows per listing, then grown to N environments over N/100 groups, N users with
direct grants, N/10 user groups and 10*N audit events (seeded through the server's own
models and code, in batches), and measured again. Every measured request goes through
the HTTP API of a real server; each listing is asked for its first page of 100
(`?limit=100`). Last,
the server's memory is read before and after one read by each of N service tokens.
Run: `python -m bench.scale_bench [--scale N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.scale_seed import SECRET_COUNT, Layout, Shape, Tree, seed
from bench.server import Server, running_server
from kavach.server.rbac.cache import MAX_ENTRIES

RESULTS = Path(__file__).with_name("results")
# Generous, so the benchmark measures serving rather than refusals; the check still runs.
BENCH_RATE_LIMIT = "100000000/minute"
LISTING_TARGET_MS = 20.0
SAME_AS_ONE = 1.10  # reads and commits at N: within 10% of their figures at 1
PAGE = {"limit": 100}
BUDGET_S = 10.0

LISTINGS = {
    "organizations": "/organizations/",
    "secret groups of the org": "/organizations/{org}/secret-groups",
    "environments of a group": "/secret-groups/{group}/environments",
    "members of the org": "/organizations/{org}/members",
    "members of a group": "/secret-groups/{group}/members",
    "members of an environment": "/environments/{env}/members",
    "user groups of the org": "/user-groups/?organization_id={org}",
    "members of a user group": "/user-groups/{user_group}/members",
    "service tokens of an environment": "/environments/{env}/tokens",
    "providers of an environment": "/environments/{env}/providers/",
    "versions of an environment": "/environments/{env}/secrets/versions",
    "sync runs of an environment": "/environments/{env}/sync-runs",
    "audit events of the org": "/audit?organization_id={org}",
}


@dataclass(frozen=True)
class Figure:
    """Latencies of one request, in milliseconds."""

    p50_ms: float
    p99_ms: float
    samples: int


def _create(server: Server) -> Tree:
    """Create, through the API, the organization, group, environment and user group measured."""
    owner = server.call("GET", "/auth/whoami")["user"]["id"]
    org = server.call("POST", "/organizations/", json={"name": "scale"})["id"]
    group = server.call("POST", f"/organizations/{org}/secret-groups", json={"name": "g"})["id"]
    env = server.call("POST", f"/secret-groups/{group}/environments", json={"name": "e"})["id"]
    body = {"organization_id": org, "name": "measured"}
    user_group = server.call("POST", "/user-groups/", json=body)["id"]
    grant = {"user_group": "measured", "role": "editor"}
    server.call("POST", f"/environments/{env}/members", json=grant)
    values = {f"SECRET_{n:02d}": secrets.token_urlsafe(24) for n in range(SECRET_COUNT)}
    body = {"message": "first", "secrets": values, "replace": True}
    server.call("POST", f"/environments/{env}/secrets/versions", json=body)
    ids = [uuid.UUID(value) for value in (owner, org, group, env, user_group)]
    return Tree(*ids)


def _percentile(timings: list[float], share: float) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _time(send: Callable[[], httpx.Response], samples: int) -> Figure:
    """Time up to `samples` requests (after three unmeasured), stopping at the time budget."""
    for _ in range(3):
        _checked(send())
    timings: list[float] = []
    deadline = time.perf_counter() + BUDGET_S
    while len(timings) < samples and time.perf_counter() < deadline:
        started = time.perf_counter()
        response = send()
        timings.append((time.perf_counter() - started) * 1000)
        _checked(response)
    return Figure(statistics.median(timings), _percentile(timings, 0.99), len(timings))


def _checked(response: httpx.Response) -> None:
    if not response.is_success:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")


def _listing(server: Server, tree: Tree, path: str) -> Figure:
    """Time the first page of a listing (its own query kept: httpx's params would replace it)."""
    url = "/api/v1" + path.format(**asdict(tree))
    paged = f"{url}{'&' if '?' in url else '?'}{urlencode(PAGE)}"
    return _time(lambda: server.client.get(paged), 100)


def _commit(server: Server, env: str) -> Callable[[], httpx.Response]:
    url = f"/api/v1/environments/{env}/secrets/versions"
    counter = itertools.count()

    def send() -> httpx.Response:
        body = {"message": "scale", "set": {"SECRET_00": f"value-{next(counter):09d}"}}
        return server.client.post(url, json=body)

    return send


def measure(server: Server, tree: Tree) -> dict[str, Figure]:
    """Measure every listing, whoami, a read and a commit."""
    figures = {name: _listing(server, tree, path) for name, path in LISTINGS.items()}
    figures["whoami"] = _time(lambda: server.client.get("/api/v1/auth/whoami"), 200)
    read = f"/api/v1/environments/{tree.env}/secrets"
    figures["secret read (50 secrets)"] = _time(lambda: server.client.get(read), 200)
    figures["commit (1 of 50 secrets)"] = _time(_commit(server, str(tree.env)), 200)
    return figures


def rss_kib(pid: int) -> int:
    """Return a process's resident memory (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def warm_up(server: Server, layout: Layout) -> dict[str, int]:
    """Read the measured environment once with each service token; RSS before and after."""
    before = rss_kib(server.pid)
    url = f"{server.url}/api/v1/environments/{layout.tree.env}/secrets"
    with httpx.Client(timeout=60) as client:
        for token in layout.tokens:
            _checked(client.get(url, headers={"Authorization": f"Bearer {token}"}))
    return {
        "callers": len(layout.tokens),
        "rss_before_kib": before,
        "rss_after_kib": rss_kib(server.pid),
    }


def audit_chain(server: Server, tree: Tree) -> dict[str, Any]:
    """Verify the organization's audit chain (untimed): the seeded events are real links."""
    report = server.call("GET", "/audit/verify", params={"organization_id": str(tree.org)})
    return {"events": report["events"], "intact": report["intact"]}


def _target(name: str, one: Figure, many: Figure) -> tuple[str, bool | None]:
    if name in LISTINGS:
        return f"≤ {LISTING_TARGET_MS:.0f} ms p50 at N", many.p50_ms <= LISTING_TARGET_MS
    if name.startswith(("secret read", "commit")):
        return "≤ 1.10 x p50 at 1", many.p50_ms <= SAME_AS_ONE * one.p50_ms
    return "", None


def rows(one: dict[str, Figure], many: dict[str, Figure]) -> list[dict[str, Any]]:
    """Pair each figure at 1 with its figure at N, with its target and whether it was met."""
    found: list[dict[str, Any]] = []
    for name, first in one.items():
        last = many[name]
        target, met = _target(name, first, last)
        found.append(
            {"name": name, "at_1": asdict(first), "at_n": asdict(last)}
            | {"ratio": last.p50_ms / first.p50_ms, "target": target, "met": met}
        )
    return found


def print_table(scale: int, table: list[dict[str, Any]], memory: dict[str, int]) -> None:
    """Print the figures, targets and memory."""
    print(
        f"{'request':<34} {'p50 @1':>8} {'p99 @1':>8} {f'p50 @{scale}':>10} "
        f"{f'p99 @{scale}':>10} {'ratio':>6}  target"
    )
    for row in table:
        one, many = row["at_1"], row["at_n"]
        verdict = {True: "met", False: "MISSED", None: ""}[row["met"]]
        print(
            f"{row['name']:<34} {one['p50_ms']:>8.2f} {one['p99_ms']:>8.2f} "
            f"{many['p50_ms']:>10.2f} {many['p99_ms']:>10.2f} {row['ratio']:>6.2f}  "
            f"{row['target']} {verdict}".rstrip()
        )
    before, after = memory["rss_before_kib"], memory["rss_after_kib"]
    print(
        f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after one read "
        f"by each of {memory['callers']:,} service tokens "
        f"({(after - before) / max(memory['callers'], 1):.1f} KiB per caller)"
    )
    print(
        f"access cache caps: {MAX_ENTRIES:,} principals and {MAX_ENTRIES:,} grants per process "
        "(each emptied whole when full)"
    )


def run(scale: int) -> dict[str, Any]:
    """Measure at 1 resource, seed to `scale`, measure again, warm up across the callers."""
    started = time.perf_counter()
    with running_server("postgresql", KAVACH_RATE_LIMIT_API=BENCH_RATE_LIMIT) as server:
        tree = _create(server)
        asyncio.run(seed(server, tree, Shape.small(), "one"))
        one = measure(server, tree)
        seeding = time.perf_counter()
        layout = asyncio.run(seed(server, tree, Shape.of(scale), "many"))
        seed_s = time.perf_counter() - seeding
        many = measure(server, tree)
        memory = warm_up(server, layout)
        chain = audit_chain(server, tree)
    return {
        "scale": scale,
        "page_size": PAGE["limit"],
        "figures": rows(one, many),
        "memory": memory | {"access_cache_max_entries": MAX_ENTRIES},
        "audit_chain": chain,
        "seed_s": seed_s,
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    """Run the benchmark, print a table and write bench/results/scale.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=10_000, help="environments (default 10,000)")
    args = parser.parse_args()
    results = run(args.scale)
    print_table(args.scale, results["figures"], results["memory"])
    chain = results["audit_chain"]
    intact = "intact" if chain["intact"] else "BROKEN"
    print(f"audit chain of the organization: {chain['events']:,} events, {intact}")
    print(f"seeded in {results['seed_s']:.0f} s; whole run {results['wall_s']:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
