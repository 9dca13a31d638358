"""How sync plans, results and runs are shown: per secret, never a value."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from kavach.cli import render
from kavach.cli.resources import Object

if TYPE_CHECKING:
    from kavach.cli.app import App

WRITES = ("create", "update", "delete")
DONE = ("succeeded", "unchanged")  # the statuses of a secret that is where it should be
PLAN_WORDS = {
    "create": "to create",
    "update": "to update",
    "delete": "to delete",
    "unchanged": "unchanged",
    "unmanaged": "unmanaged",
}
PLAN_COLUMNS = [
    ("action", "Action"),
    ("name", "Name"),
    ("remote_name", "Remote name"),
    ("note", "Note"),
]
RESULT_COLUMNS = [
    ("name", "Name"),
    ("remote_name", "Remote name"),
    ("action", "Action"),
    ("status", "Status"),
    ("attempts", "Attempts"),
    ("detail", "Error / note"),
]
RUN_COLUMNS = [
    ("short_id", "Run"),
    ("created_at", "Started (UTC)"),
    ("target", "Target"),
    ("version_id", "Version"),
    ("mode", "Mode"),
    ("status", "Status"),
    ("summary", "Secrets"),
    ("by", "By"),
]


def items(run: Object) -> list[Object]:
    """Return a run's per-secret items (those that are objects)."""
    found = run.get("items")
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def writes(run: Object) -> list[Object]:
    """Return the items that write to the target (create, update, delete)."""
    return [item for item in items(run) if item.get("action") in WRITES]


def _count(words: dict[str, str], counts: Counter[str]) -> str:
    parts = [f"{counts[key]} {word}" for key, word in words.items() if counts[key]]
    return ", ".join(parts) or "nothing"


def plan_summary(run: Object) -> str:
    """Return e.g. `2 to create, 1 to delete, 3 unchanged` for a plan."""
    return _count(PLAN_WORDS, Counter(str(item.get("action")) for item in items(run)))


def write_summary(run: Object) -> str:
    """Return the planned writes alone, e.g. `2 to create, 1 to delete`."""
    words = {key: PLAN_WORDS[key] for key in WRITES}
    return _count(words, Counter(str(item.get("action")) for item in items(run)))


def outcome_counts(run: Object) -> Counter[str]:
    """Count a finished run's items by outcome: written, deleted, unchanged, failed, refused."""
    counts: Counter[str] = Counter()
    for item in items(run):
        status = item.get("status")
        if status == "succeeded":
            counts["deleted" if item.get("action") == "delete" else "written"] += 1
        elif status in ("unchanged", "failed", "refused"):
            counts[str(status)] += 1
        else:
            counts["not done"] += 1
    return counts


def result_summary(run: Object) -> str:
    """Return e.g. `2 written, 3 unchanged, 1 failed` for a finished run."""
    words = {key: key for key in ("written", "deleted", "unchanged", "failed", "refused")}
    words["not done"] = "not done"
    return _count(words, outcome_counts(run))


def complete(run: Object) -> bool:
    """Tell whether every secret of a run succeeded or was unchanged."""
    finished = all(item.get("status") in DONE for item in items(run))
    return run.get("status") == "succeeded" and finished


def label(run: Object) -> str:
    """Return e.g. `version abcd1234 -> github:octo/app`."""
    return f"version {run.get('version_id')} -> {run.get('target')}"


def show_plan(cli: App, run: Object, *, title: str) -> None:
    """Print the plan: what happens to each secret, with the server's notes."""
    cli.out.print(title, markup=False, soft_wrap=True)
    render.table(cli, items(run), PLAN_COLUMNS, empty="No secrets to sync.")
    cli.out.print(f"Plan: {plan_summary(run)}.", markup=False, soft_wrap=True)


def _result_rows(run: Object) -> list[Object]:
    return [
        {
            **item,
            # Only writes are attempted: an unchanged or refused secret shows none.
            "attempts": item.get("attempts") if item.get("action") in WRITES else None,
            "detail": item.get("error") or item.get("note"),
        }
        for item in items(run)
    ]


def show_results(cli: App, run: Object, *, title: str) -> None:
    """Print each secret's outcome: status, attempts, and the error when it failed."""
    cli.out.print(title, markup=False, soft_wrap=True)
    render.table(cli, _result_rows(run), RESULT_COLUMNS, empty="No secrets.")


def _mode(run: Object) -> str:
    words = ["dry run" if run.get("dry_run") else "sync"]
    words += [flag for flag in ("prune", "adopt") if run.get(flag)]
    return ", ".join(words)


def _by(run: Object) -> Any:
    actor = run.get("actor")
    return (actor.get("label") or actor.get("type")) if isinstance(actor, dict) else None


def _counts_text(run: Object) -> str:
    counts = run.get("counts")
    if not isinstance(counts, dict):
        return render.EMPTY_CELL
    if run.get("dry_run"):
        planned = Counter({str(k): int(v) for k, v in counts.items() if isinstance(v, int)})
        return _count(PLAN_WORDS, planned)
    done = Counter(
        {
            "written": int(counts.get("succeeded") or 0),
            "unchanged": int(counts.get("unchanged") or 0),
            "failed": int(counts.get("failed") or 0),
            "refused": int(counts.get("unmanaged") or 0),
        }
    )
    return _count({key: key for key in done}, done)


def _short_date(value: Any) -> Any:
    from datetime import UTC, datetime

    parsed = render.when(value)
    if isinstance(parsed, datetime) and parsed.tzinfo is not None:
        return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return parsed


def run_rows(runs: list[Object]) -> list[Object]:
    """Return runs as table rows: short id, date, mode, counts, who."""
    return [
        {
            **run,
            "short_id": str(run.get("id") or "")[:8],
            "created_at": _short_date(run.get("created_at")),
            "mode": _mode(run),
            "summary": _counts_text(run),
            "by": _by(run),
        }
        for run in runs
    ]


def show_run(cli: App, run: Object) -> None:
    """Print one run: what, who, when, how it ended, and each secret's outcome."""
    render.fields(
        cli,
        [
            ("Run", run.get("id")),
            ("Provider", run.get("provider")),
            ("Target", run.get("target")),
            ("Version", run.get("version_id")),
            ("Mode", _mode(run)),
            ("Status", run.get("status")),
            ("Error", run.get("error")),
            ("By", _by(run)),
            ("Started", render.when(run.get("created_at"))),
            ("Finished", render.when(run.get("finished_at"))),
        ],
        title=f"Sync run {str(run.get('id') or '')[:8]}",
    )
    if run.get("dry_run"):
        show_plan(cli, run, title="Plan:")
    else:
        show_results(cli, run, title="Secrets:")
