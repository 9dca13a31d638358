"""Changes to an environment's secrets: computed from staging or snapshots, and shown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavach.cli import render
from kavach.formats.diff import diff

if TYPE_CHECKING:
    from kavach.cli.app import App
    from kavach.cli.staging import Staged

ARROW = " → "
COLUMNS = [("change", "Change"), ("name", "Name"), ("value", "Value")]
ORDER = {"added": 0, "modified": 1, "removed": 2, "unchanged": 3, "not set": 4}


@dataclass(frozen=True)
class Change:
    """One name's change: added, modified, removed; `unchanged`/`not set` for no-op stages."""

    name: str
    kind: str
    old: str | None = None
    new: str | None = None
    hidden: bool = False  # the values exist but were not fetched (no --reveal)

    def _shown(self, value: str | None, reveal: bool) -> str:
        if value is None and self.hidden:
            return render.MASK
        return render.mask(value, reveal=reveal)

    def cell(self, reveal: bool) -> str:
        """Return the value column: the new value, the old one, or `old → new`."""
        if self.kind == "modified":
            return self._shown(self.old, reveal) + ARROW + self._shown(self.new, reveal)
        if self.kind == "removed":
            return self._shown(self.old, reveal)
        if self.kind == "not set":
            return render.EMPTY_CELL
        return self._shown(self.new, reveal)

    def to_json(self, reveal: bool) -> dict[str, Any]:
        """Return the JSON form: values only with --reveal."""
        return {
            "name": self.name,
            "change": self.kind,
            "old": self.old if reveal else None,
            "new": self.new if reveal else None,
        }


def _sorted(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda change: (ORDER[change.kind], change.name))


def between(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    """Return what changes from `old` to `new` (the shared pure diff)."""
    found = diff(old, new)
    return _sorted(
        [Change(name, "added", new=new[name]) for name in found.added]
        + [Change(name, "modified", old[name], new[name]) for name in found.modified]
        + [Change(name, "removed", old=old[name]) for name in found.removed]
    )


def staged(current: Mapping[str, str], staging: Staged) -> list[Change]:
    """Return the staged changes against `current`, no-ops included (unchanged, not set)."""
    changes = []
    for name, value in staging.set.items():
        if name not in current:
            changes.append(Change(name, "added", new=value))
        elif current[name] != value:
            changes.append(Change(name, "modified", current[name], value))
        else:
            changes.append(Change(name, "unchanged", current[name], value))
    for name in staging.unset:
        kind = "removed" if name in current else "not set"
        changes.append(Change(name, kind, old=current.get(name)))
    return _sorted(changes)


def effective(changes: list[Change]) -> list[Change]:
    """Return the changes that change something."""
    return [change for change in changes if change.kind in ("added", "modified", "removed")]


def summary(changes: list[Change]) -> str:
    """Return e.g. `2 added, 1 modified`."""
    counts = {kind: sum(1 for c in changes if c.kind == kind) for kind in ORDER}
    return ", ".join(f"{count} {kind}" for kind, count in counts.items() if count) or "no changes"


def show(app: App, changes: list[Change], *, reveal: bool, title: str, empty: str) -> None:
    """Print `changes` as a table (values masked unless `reveal`)."""
    rows = [
        {"change": change.kind, "name": change.name, "value": change.cell(reveal)}
        for change in changes
    ]
    # A line of its own: a table title would wrap to the table's (narrow) width.
    app.out.print(f"{title}:", markup=False, soft_wrap=True)
    render.table(app, rows, COLUMNS, empty=empty)
