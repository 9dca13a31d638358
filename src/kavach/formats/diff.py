"""Compare two sets of secrets by name (pure; shared by the CLI and the server)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SecretDiff:
    """Names added, removed and modified from one mapping to another, sorted."""

    added: list[str]
    removed: list[str]
    modified: list[str]
    unchanged: int

    @property
    def empty(self) -> bool:
        """Say whether nothing changed."""
        return not (self.added or self.removed or self.modified)


def diff(old: Mapping[str, str], new: Mapping[str, str]) -> SecretDiff:
    """Return what changed from `old` to `new`."""
    common = old.keys() & new.keys()
    modified = sorted(name for name in common if old[name] != new[name])
    return SecretDiff(
        added=sorted(new.keys() - old.keys()),
        removed=sorted(old.keys() - new.keys()),
        modified=modified,
        unchanged=len(common) - len(modified),
    )
