"""Plan a sync: what to create, update, leave, delete or refuse, per secret (pure)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kavach.server.errors import ValidationFailed
from kavach.server.providers.base import RemoteSecret

CREATE, UPDATE, DELETE = "create", "update", "delete"
UNCHANGED, UNMANAGED = "unchanged", "unmanaged"
ADOPT_HINT = "exists on the target but was not written by Kavach; sync with adopt to take it over"


@dataclass(frozen=True)
class PlanItem:
    """One remote secret's planned action; `value` is None for deletes and refusals."""

    name: str
    remote_name: str
    action: str
    value: str | None = None
    value_hmac: str | None = None
    note: str | None = None


def value_hmac(key: bytes, target: str, remote_name: str, value: str) -> str:
    """Keyed hash of a value as written to one remote name (the ledger never holds values)."""
    message = b"\0".join((target.encode(), remote_name.encode(), value.encode()))
    return hmac.new(key, b"kavach-sync-ledger:" + message, hashlib.sha256).hexdigest()


def map_names(names: list[str], remote_name: Callable[[str], str]) -> dict[str, str]:
    """Map every Kavach name to its remote name; two names on one remote name is an error."""
    mapped = {name: remote_name(name) for name in names}
    claimed: dict[str, list[str]] = {}
    for name, remote in mapped.items():
        claimed.setdefault(remote, []).append(name)
    clashes = {remote: owners for remote, owners in claimed.items() if len(owners) > 1}
    if clashes:
        described = "; ".join(
            f"{' and '.join(sorted(o))} -> {r}" for r, o in sorted(clashes.items())
        )
        raise ValidationFailed(f"secrets would overwrite each other on the target: {described}")
    return mapped


def make_plan(
    *,
    values: Mapping[str, str],
    mapped: Mapping[str, str],
    remote: Mapping[str, RemoteSecret],
    ledger: Mapping[str, tuple[str, str]],
    hmac_of: Callable[[str, str], str],
    prune: bool,
    adopt: bool,
) -> list[PlanItem]:
    """Plan the sync. `ledger` maps remote names Kavach wrote to (kavach name, value hmac)."""
    items: list[PlanItem] = []
    for name in sorted(values):
        remote_name = mapped[name]
        digest = hmac_of(remote_name, values[name])
        if remote_name in ledger:
            written = ledger[remote_name][1]
            exists = remote_name in remote
            action = UNCHANGED if written == digest and exists else UPDATE
            note = None if exists or action == UNCHANGED else "gone from the target; rewriting"
            items.append(PlanItem(name, remote_name, action, values[name], digest, note))
        elif remote_name in remote and not adopt:
            items.append(
                PlanItem(
                    name,
                    remote_name,
                    UNMANAGED,
                    note=ADOPT_HINT,
                )
            )
        else:
            action = UPDATE if remote_name in remote else CREATE
            note = "adopting an existing secret" if remote_name in remote else None
            items.append(PlanItem(name, remote_name, action, values[name], digest, note))
    if prune:
        wanted = set(mapped.values())
        for remote_name, (name, _digest) in sorted(ledger.items()):
            if remote_name not in wanted:
                items.append(PlanItem(name, remote_name, DELETE))
    return items
