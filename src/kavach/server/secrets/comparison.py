"""Several environments' secrets compared name by name: where each is set, which values agree.

A comparison says which environments hold equal values for a name, never what the values
are: each value is reduced to a digest under a key made for that one comparison (so no
digest can be matched against another comparison's, or guessed at), and equal digests get
the same letter, `A` for the value most of them hold.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import ascii_uppercase

Digests = dict[str, bytes]  # secret name -> its value's digest


class Digester:
    """Reduce values to digests that are equal exactly when the values are, for one comparison."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def digests(self, values: Mapping[str, str]) -> Digests:
        """Return each name's value as a digest."""
        return {
            name: hashlib.blake2b(value.encode(), key=self._key, digest_size=32).digest()
            for name, value in values.items()
        }


@dataclass(frozen=True)
class Compared:
    """One secret name across the environments compared: a letter per environment, or None."""

    name: str
    cells: tuple[str | None, ...]

    @property
    def missing(self) -> int:
        """Return in how many of the environments the name is not set."""
        return sum(cell is None for cell in self.cells)

    @property
    def differs(self) -> bool:
        """Say whether two environments that set the name hold different values."""
        return len({cell for cell in self.cells if cell is not None}) > 1


@dataclass(frozen=True)
class Comparison:
    """The environments compared, in order; those left out and why; every name's row."""

    environments: tuple[uuid.UUID, ...]
    rows: tuple[Compared, ...]
    left_out: dict[uuid.UUID, str] = field(default_factory=dict)


def compare(columns: Sequence[Digests]) -> tuple[Compared, ...]:
    """Compare environments' digests: every name any of them sets, sorted, one letter a value."""
    names = sorted({name for column in columns for name in column})
    return tuple(
        Compared(name, _letters([column.get(name) for column in columns])) for name in names
    )


def _letters(cells: Sequence[bytes | None]) -> tuple[str | None, ...]:
    """Name each distinct value by a letter: `A` the commonest (first seen on a tie), then B…"""
    counts = Counter(cell for cell in cells if cell is not None)
    first = {cell: index for index, cell in reversed(list(enumerate(cells)))}
    ranked = sorted(counts, key=lambda cell: (-counts[cell], first[cell]))
    letter = {cell: _letter(rank) for rank, cell in enumerate(ranked)}
    return tuple(None if cell is None else letter[cell] for cell in cells)


def _letter(rank: int) -> str:
    """Return A…Z, then A1, B1… (more distinct values than letters is possible, if unlikely)."""
    base = ascii_uppercase[rank % len(ascii_uppercase)]
    return base if rank < len(ascii_uppercase) else f"{base}{rank // len(ascii_uppercase)}"
