"""References between secrets: their syntax, and resolving values that hold them.

A value may hold `${NAME}` (a secret of the same environment), `${env.NAME}` (an
environment of the same secret group) or `${group.env.NAME}` (a secret group of the same
organization); `$${` is a literal `${`. A reference splits at its first dots: `${a.b}` is
secret `b` of environment `a`, and a name holding dots is reached by the long form,
`${group.env.NAME.WITH.DOTS}`.

Pure functions only: which environments a reference names, and which values it pulls, are
decided by the caller (secrets.linking), which reads the database and asks the gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kavach.server.errors import Conflict, ValidationFailed

# How many references a value may pass through before a plain value (a chain of 8 is fine).
MAX_DEPTH = 8
_OPENING = "${"
_ESCAPED = "$${"
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
_RESOURCE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class InvalidReference(ValidationFailed):
    """A value holds `${` that is not a well-formed reference."""

    error_code = "invalid_reference"


class ReferenceCycle(ValidationFailed):
    """References that lead back to where they start, or deeper than MAX_DEPTH."""

    error_code = "reference_cycle"


class MissingReference(ValidationFailed):
    """A reference to a secret or an environment that does not exist."""

    error_code = "missing_reference"


class ReferencedSecret(Conflict):
    """Removing a secret that other values refer to (allowed only when forced)."""

    error_code = "secret_referenced"


class BrokenReference(Conflict):
    """A stored reference whose target is gone (it was removed by force)."""

    error_code = "broken_reference"


@dataclass(frozen=True)
class Reference:
    """What `${…}` names: a secret, with the environment and secret group it sits in."""

    name: str
    env: str | None = None  # None: the value's own environment
    group: str | None = None  # None: the environment's own secret group

    def text(self) -> str:
        """Return the reference as written."""
        parts = [part for part in (self.group, self.env, self.name) if part is not None]
        return _OPENING + ".".join(parts) + "}"


def has_references(value: str) -> bool:
    """Tell cheaply whether a value may hold a reference (or an escaped `$${`)."""
    return _OPENING in value


def parse_reference(inner: str, *, where: str) -> Reference:
    """Parse what stands between `${` and `}`; refuse it, naming `where`, if malformed."""
    parts = inner.split(".", 2)
    name = parts[-1]
    scope = parts[:-1]
    if not _NAME.fullmatch(name) or not all(_RESOURCE.fullmatch(part) for part in scope):
        raise InvalidReference(
            f"{where}: ${{{inner}}} is not a reference (write ${{NAME}}, ${{env.NAME}} or "
            "${group.env.NAME}; $${ for a literal ${)"
        )
    if len(scope) == 2:
        return Reference(name=name, env=scope[1], group=scope[0])
    if len(scope) == 1:
        return Reference(name=name, env=scope[0])
    return Reference(name=name)


def references_in(value: str, *, where: str) -> list[Reference]:
    """Return the references a value holds, in order; refuse a malformed one."""
    if not has_references(value):
        return []
    found = []
    for match in _TOKEN.finditer(value):
        found_text = match.group(0)
        if found_text == _ESCAPED:
            continue
        if found_text == _OPENING:  # an opening never closed
            raise InvalidReference(f"{where}: a ${{ is never closed (write $${{ for a literal ${{)")
        found.append(parse_reference(match.group(1), where=where))
    return found


def substitute(value: str, lookup: Callable[[Reference], str]) -> str:
    """Return a value with each reference replaced by `lookup`'s answer and `$${` by `${`."""
    if not has_references(value):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == _ESCAPED:
            return _OPENING
        return lookup(parse_reference(match.group(1), where="a stored value"))

    return _TOKEN.sub(replace, value)


@dataclass(frozen=True)
class Place:
    """A secret somewhere: the id of its environment (as text) and its name."""

    environment: str
    name: str


class Paths:
    """Name places in messages, and refuse a path of references that cycles or is too deep.

    Shared by the check at commit (secrets.linking) and resolution at read (`Resolver`), so
    both refuse in the same words; `label(env)` names an environment.
    """

    def __init__(self, label: Callable[[str], str]) -> None:
        self._label = label

    def check(self, place: Place, path: tuple[Place, ...]) -> None:
        """Refuse going on to `place` after `path`: a cycle, or deeper than MAX_DEPTH."""
        if place in path:
            raise ReferenceCycle(f"references form a cycle: {self.describe((*path, place))}")
        if len(path) > MAX_DEPTH:
            raise ReferenceCycle(
                f"references go deeper than {MAX_DEPTH}: {self.describe((*path, place))}"
            )

    def unset(self, place: Place, path: tuple[Place, ...]) -> str:
        """Say that the reference leading to `place` finds nothing set there."""
        origin = path[-1] if path else place
        return f"{self.where(origin)} refers to {self.where(place)}, which is not set"

    def where(self, place: Place) -> str:
        """Name a place for a message: `group/env.NAME`."""
        return f"{self._label(place.environment)}.{place.name}"

    def describe(self, path: Iterable[Place]) -> str:
        """Name a path of places, arrow-separated."""
        return " -> ".join(self.where(place) for place in path)


class Resolver:
    """Resolve the values of environments whose references are already mapped to places.

    `values[env][name]` holds stored values; `targets[place]` the places each reference
    of a value leads to, in order; `label(env)` names an environment in errors.
    """

    def __init__(
        self,
        values: Mapping[str, Mapping[str, str]],
        targets: Mapping[Place, list[tuple[Reference, Place]]],
        label: Callable[[str], str],
    ) -> None:
        self._values = values
        self._targets = targets
        self._paths = Paths(label)
        self._done: dict[Place, str] = {}
        self._literal: set[str] = set()

    def resolve_all(self, environment: str, *, literal: set[str] | None = None) -> dict[str, str]:
        """Return every value of an environment, resolved (`literal`: environments read as is)."""
        self._literal = literal or set()
        return {name: self.resolve(Place(environment, name)) for name in self._values[environment]}

    def resolve(self, place: Place, path: tuple[Place, ...] = ()) -> str:
        """Return one value resolved; refuse a cycle or a chain deeper than MAX_DEPTH."""
        done = self._done.get(place)
        if done is not None:
            return done
        self._paths.check(place, path)
        stored = self._values.get(place.environment, {}).get(place.name)
        if stored is None:
            raise BrokenReference(self._paths.unset(place, path))
        if place.environment in self._literal:
            return stored
        leads = iter(self._targets.get(place, []))

        def lookup(reference: Reference) -> str:
            lead = next(leads, None)
            if lead is None:  # links that do not match the stored text: never written so
                where = self._paths.where(place)
                raise BrokenReference(f"{where}: {reference.text()} has no link")
            return self.resolve(lead[1], (*path, place))

        resolved = substitute(stored, lookup)
        self._done[place] = resolved
        return resolved
