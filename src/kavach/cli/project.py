"""Where a command's default context comes from: variables, `.kavach.yaml`, config.yaml.

Precedence, highest first: --org/--group/--env flags (resolved in `context`), then
KAVACH_ORG/KAVACH_GROUP/KAVACH_ENV, then the nearest `.kavach.yaml` in the working directory
or above it, then the active context saved in config.yaml. A level set by a higher source
replaces the deeper levels of lower ones when it names something else: they belonged to
another organization or group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavach.cli.config import ActiveContext
from kavach.cli.errors import CliError

PROJECT_FILE = ".kavach.yaml"
LEVELS = ("organization", "secret_group", "environment")
VARIABLES = {
    "organization": "KAVACH_ORG",
    "secret_group": "KAVACH_GROUP",
    "environment": "KAVACH_ENV",
}
# The keys of .kavach.yaml, named as the flags are.
KEYS = {"org": "organization", "group": "secret_group", "env": "environment"}
CONFIG_SOURCE = "the active context (config.yaml)"


@dataclass(frozen=True)
class Project:
    """A `.kavach.yaml`: the server and context of the directory tree it sits in."""

    path: Path
    server: str | None = None
    context: ActiveContext = field(default_factory=ActiveContext)
    fallback: bool = False  # `kavach run` keeps a fallback under KAVACH_HOME (cli.fallback)


@dataclass(frozen=True)
class Chosen:
    """The default context, and which source chose each of its levels."""

    context: ActiveContext
    sources: dict[str, str]  # level -> where its name came from


def find_project(start: Path) -> Path | None:
    """Return the nearest `.kavach.yaml` in `start` or a directory above it."""
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_project(path: Path) -> Project:
    """Read a `.kavach.yaml`, refusing what it must not hold (a token) and unknown keys."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{path} cannot be read as YAML: {type(exc).__name__}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise CliError(f"{path} must hold a mapping (org, group, env, server, fallback)")
    if "token" in raw:
        raise CliError(f"{path} holds a token: remove it; tokens go in KAVACH_TOKEN or a login")
    unknown = sorted(str(key) for key in raw if key not in (*KEYS, "server", "fallback"))
    if unknown:
        raise CliError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: org, group, env, server, fallback"
        )
    values = {key: _text(path, key, raw.get(key)) for key in (*KEYS, "server")}
    context = ActiveContext(**{KEYS[key]: values[key] for key in KEYS})
    fallback = raw.get("fallback", False)
    if not isinstance(fallback, bool):
        raise CliError(f"{path}: 'fallback' must be true or false")
    return Project(path=path, server=values["server"], context=context, fallback=fallback)


def _text(path: Path, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CliError(f"{path}: {key!r} must be a non-empty string")
    return value.strip()


def from_variables(environ: dict[str, str] | os._Environ[str]) -> ActiveContext:
    """Return the context KAVACH_ORG, KAVACH_GROUP and KAVACH_ENV name."""
    return ActiveContext(**{level: environ.get(name) or None for level, name in VARIABLES.items()})


def layered(layers: list[tuple[str, ActiveContext]]) -> Chosen:
    """Return the context the layers make, lowest first, and the source of each level."""
    names: list[str | None] = [None, None, None]
    sources: list[str | None] = [None, None, None]
    for source, context in layers:
        for depth, level in enumerate(LEVELS):
            value = getattr(context, level)
            if value is None:
                continue
            if names[depth] != value:
                for deeper in range(depth + 1, len(LEVELS)):
                    names[deeper] = sources[deeper] = None  # they lived under another parent
            names[depth], sources[depth] = value, source
    chosen = {level: source for level, source in zip(LEVELS, sources, strict=True) if source}
    return Chosen(ActiveContext(*names), chosen)
