"""Check an environment's versions against what an earlier release was given to store."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tests.integration.test_resources import Api

Version = dict[str, Any]


async def every(api: Api, path: str, limit: int | None = None) -> list[Any]:
    """Return every item of a listing, following `next` across its pages."""
    items: list[Any] = []
    joiner = "&" if "?" in path else "?"
    query = f"{path}{joiner}limit={limit}" if limit is not None else path
    cursor: str | None = None
    while True:
        sep = "&" if "?" in query else "?"
        page = await api.call(
            "GET", query if cursor is None else f"{query}{sep}cursor={cursor}", status=200
        )
        assert set(page) == {"items", "next"}, page
        items.extend(page["items"])
        if page["next"] is None:
            return items
        assert page["items"], page  # a page with a next is never empty
        cursor = page["next"]


def _diff(old: dict[str, str], new: dict[str, str]) -> dict[str, Any]:
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "modified": sorted(k for k in old.keys() & new.keys() if old[k] != new[k]),
        "unchanged": sum(1 for k in old.keys() & new.keys() if old[k] == new[k]),
    }


def _history(versions: list[Version], name: str) -> list[tuple[str, str, str | None]]:
    """Return (version id, change, value) for each change to `name`, newest first."""
    changes: list[tuple[str, str, str | None]] = []
    before: dict[str, str] = {}
    for version in versions:
        now = version["secrets"]
        if name in now and name not in before:
            changes.append((version["id"], "added", now[name]))
        elif name in before and name not in now:
            changes.append((version["id"], "removed", None))
        elif name in now and now[name] != before[name]:
            changes.append((version["id"], "modified", now[name]))
        before = now
    return changes[::-1]


async def _check_reads(alice: Api, base: str, versions: list[Version]) -> None:
    listed = await every(alice, f"{base}/versions")
    listed = sorted(listed, key=lambda v: v["seq"])
    assert len(listed) == len(versions)
    for version, made in zip(listed, versions, strict=True):
        assert {k: version[k] for k in made if k != "secrets"} == {
            k: value for k, value in made.items() if k != "secrets"
        }
    for version in versions:
        read = await alice.call("GET", f"{base}?version={version['id']}", status=200)
        assert read["secrets"] == version["secrets"], version["id"]
        detail = await alice.call("GET", f"{base}/versions/{version['id']}", status=200)
        assert detail["secrets"] == version["secrets"]
    for old, new in pairwise(versions):
        query = f"from={old['id']}&to={new['id']}&reveal=true"
        diff = await alice.call("GET", f"{base}/diff?{query}", status=200)
        expected = _diff(old["secrets"], new["secrets"])
        assert {k: sorted(diff[k]) if k != "unchanged" else diff[k] for k in expected} == expected
    for name in sorted({name for version in versions for name in version["secrets"]}):
        entries = await alice.call("GET", f"{base}/{name}/history?reveal=true", status=200)
        found = [(e["version"]["id"], e["change"], e["value"]) for e in entries]
        assert found == _history(versions, name), name


async def check_secrets(alice: Api, writer: Api, env_id: str, versions: list[Version]) -> None:
    """Read every version, diff and history; then commit (as `writer`) and roll back."""
    base = f"/environments/{env_id}/secrets"
    await _check_reads(alice, base, versions)
    latest = versions[-1]
    body = {"message": "after the upgrade", "set": {"ADDED_LATER": "1"}}
    committed = await writer.call("POST", f"{base}/versions", body, status=201)
    assert committed["parent_id"] == latest["id"]
    first = versions[0]
    rollback = {"version_id": first["id"], "commit_message": "back to the start"}
    rolled = await alice.call("POST", f"{base}/rollback", rollback, status=201)
    assert rolled["rollback_of"] == first["id"]
    now = await alice.call("GET", base, status=200)
    assert now["secrets"] == first["secrets"]
