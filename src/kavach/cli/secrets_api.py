"""Calls to an environment's secrets API, with the shape of each answer checked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kavach.cli.errors import CliError
from kavach.cli.resources import PAGE_LIMIT, Object, expect_object, page, segment

if TYPE_CHECKING:
    from kavach.cli.client import ApiClient
    from kavach.cli.target import Target

# A version's id, its number (3 or v3), or one counted from the newest (latest, latest~1).
VERSION_REF = re.compile(r"[a-z0-9]{8}|v?[0-9]{1,9}|latest(~[0-9]{1,9})?")
PAGE_MAX = PAGE_LIMIT  # the server's largest page of versions
VERSION_FORMS = "its id (8 characters, a-z and 0-9), its number (3 or v3), latest or latest~N"


def check_version_id(value: str, flag: str = "--version") -> str:
    """Return `value` if it names a version (id, number or latest~N), else fail before sending."""
    if VERSION_REF.fullmatch(value) is None:
        raise CliError(f"{flag} {value!r} is not a version: give {VERSION_FORMS}")
    return value


def optional_version_id(value: str | None, flag: str = "--version") -> str | None:
    """Return `value` checked as a version id, or None when the option was not given."""
    return check_version_id(value, flag) if value is not None else None


def _secrets(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise CliError("unexpected answer from the server: secrets are not names and strings")
    return dict(data)


def label(version: Object | None) -> str:
    """Return `v3 (abcd1234)` for a version summary, `no version` for None."""
    if version is None:
        return "no version"
    return f"v{version.get('seq')} ({version.get('id')})"


def read(
    client: ApiClient, target: Target, version: str | None = None, *, resolve: bool = False
) -> tuple[Object | None, dict[str, str]]:
    """Return the latest version (or `version`) and its secrets; (None, {}) if none yet.

    The stored text unless `resolve`: what is changed and committed is the stored text,
    references and all; what is used (get, export, run, sync) is resolved.
    """
    params = {} if resolve else {"resolve": "false"}
    if version:
        params["version"] = version
    data = expect_object(client.get(target.path, params=params or None))
    summary = data.get("version")
    if summary is not None and not isinstance(summary, dict):
        raise CliError("unexpected answer from the server: a version is not an object")
    return summary, _secrets(data.get("secrets"))


def latest(client: ApiClient, target: Target) -> Object | None:
    """Return the latest version's summary (no values are read), or None if none yet."""
    rows, _ = page(client, f"{target.path}/versions", {"limit": 1})
    return rows[0] if rows else None


def details(client: ApiClient, target: Target, version: str) -> tuple[Object, dict[str, str]]:
    """Return one version's summary and its secrets."""
    data = expect_object(client.get(f"{target.path}/versions/{segment(version)}"))
    return data, _secrets(data.get("secrets"))


def versions(
    client: ApiClient, target: Target, *, limit: int, cursor: str | None
) -> tuple[list[Object], str | None]:
    """Return up to `limit` versions newest first (paging as needed) and the next cursor."""
    found: list[Object] = []
    while len(found) < limit:
        params = {"limit": min(PAGE_MAX, limit - len(found))}
        rows, cursor = page(client, f"{target.path}/versions", params, cursor=cursor)
        found.extend(rows)
        if cursor is None or not rows:
            break
    return found, cursor


def sources_label(version: Object | None) -> str:
    """Name the other environments a version's references reached: `web/shared@v7, …`."""
    found = version.get("sources") if version else None
    if not isinstance(found, list):
        return ""
    return ", ".join(
        f"{source.get('label')}@v{source.get('seq')}"
        for source in found
        if isinstance(source, dict)
    )


def moved_sources(old: Object | None, new: Object | None) -> list[str]:
    """Say which referenced environments moved between two versions: `web/shared v6 → v7`."""

    def at(version: Object | None) -> dict[str, tuple[str, Any]]:
        found = version.get("sources") if version else None
        listed = found if isinstance(found, list) else []
        return {
            str(s.get("environment_id")): (str(s.get("label")), s.get("seq"))
            for s in listed
            if isinstance(s, dict)
        }

    before, after = at(old), at(new)
    moved = []
    for env, (label, seq) in sorted(after.items(), key=lambda item: item[1][0]):
        was = before.get(env)
        if was is None:
            moved.append(f"{label} v{seq} (newly referenced)")
        elif was[1] != seq:
            moved.append(f"{label} v{was[1]} → v{seq}")
    return moved
