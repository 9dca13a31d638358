"""Secret workflows: a commit's next values, a stale commit's 409, rollback, diff, history."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.formats.diff import diff
from kavach.server.access import Actor
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.errors import (
    NoChanges,
    NotFound,
    TooManySecrets,
    ValidationFailed,
    ValueTooLarge,
    VersionConflict,
)
from kavach.server.secrets import service
from kavach.server.secrets.linking import Links
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.schemas import (
    Author,
    CommitRequest,
    DiffResponse,
    HistoryEntry,
    Modified,
    SourceVersion,
    VersionSummary,
)
from kavach.server.secrets.service import VersionFacts
from kavach.server.settings import Settings


def summary(version: VersionFacts) -> VersionSummary:
    """Describe a version without values (with where its references reached, if any)."""
    links = Links.load(version.links) if version.links is not None else None
    return VersionSummary(
        sources=sources_of(links),
        id=version.id,
        seq=version.seq,
        parent_id=version.parent_id,
        message=version.message,
        author=Author(type=version.author_type, id=version.author_id, label=version.author_label),
        secret_count=version.secret_count,
        created_at=version.created_at,
        rollback_of=version.rollback_of,
    )


def sources_of(links: Links | None) -> list[SourceVersion]:
    """Describe the other environments a version's links recorded, by name."""
    if links is None:
        return []
    return [
        SourceVersion(environment_id=uuid.UUID(env), label=source.label, seq=source.seq)
        for env, source in sorted(links.at.items(), key=lambda item: item[1].label)
    ]


def check_limits(values: dict[str, str], settings: Settings) -> None:
    """Refuse snapshots over the count or value-size limits."""
    if len(values) > settings.max_secrets_per_version:
        raise TooManySecrets(
            f"a version holds at most {settings.max_secrets_per_version} secrets, "
            f"this one would hold {len(values)}"
        )
    limit = settings.max_secret_value_bytes
    for name, value in values.items():
        if len(value.encode("utf-8")) > limit:
            raise ValueTooLarge(f"the value of {name} is over {limit} bytes")


async def conflict(
    session: AsyncSession,
    keys: SecretKeys,
    *,
    env_id: uuid.UUID,
    parent_id: str,
    latest: VersionFacts | None,
) -> VersionConflict:
    """Describe what changed since the parent a stale commit names."""
    parent = await service.get_version(session, environment_id=env_id, version_id=parent_id)
    changed: list[str] = []
    if latest is not None:
        change = diff(
            await service.read_values(session, keys, version=parent),
            await service.read_values(session, keys, version=latest),
        )
        changed = sorted(change.added + change.removed + change.modified)
    return VersionConflict(
        f"the environment moved on from {parent_id}: "
        f"{len(changed)} secret(s) changed since; review and commit again",
        data={
            "latest_version": summary(latest).model_dump(mode="json") if latest else None,
            "changed": changed,
        },
    )


def next_values(
    request: CommitRequest,
    latest: VersionFacts | None,
    current: dict[str, str],
    settings: Settings,
) -> dict[str, str]:
    """Return the new version's secrets, sorted by name; refuse a commit that changes nothing."""
    if request.secrets is not None:
        values = dict(request.secrets)
    else:
        missing = sorted(set(request.unset) - current.keys())
        if missing:
            raise ValidationFailed(f"cannot unset what is not set: {', '.join(missing)}")
        values = {**current, **request.set}
        for name in request.unset:
            del values[name]
    if latest is not None and values == current:
        raise NoChanges("nothing changed: the latest version already holds these secrets")
    check_limits(values, settings)
    return dict(sorted(values.items()))


async def rollback(
    session: AsyncSession,
    keys: SecretKeys,
    *,
    env_id: uuid.UUID,
    version_id: str,
    message: str,
    author: Actor,
    check: Callable[[VersionFacts | None, dict[str, str], dict[str, str]], Links | None],
) -> SecretVersion:
    """Write a new version equal to an older one (`check`: its links, from the latest's
    values and its own, or a refusal)."""
    target = await service.get_version(session, environment_id=env_id, version_id=version_id)
    latest = await service.lock_latest(session, environment_id=env_id)
    values = await service.read_values(session, keys, version=target)
    current = await service.read_values(session, keys, version=latest) if latest else {}
    if latest is not None and values == current:
        raise NoChanges(f"the latest version already holds the secrets of {target.id}")
    links = check(latest, current, values)
    return await service.write_version(
        session,
        keys,
        environment_id=env_id,
        new=service.NewVersion(
            values=values,
            message=message,
            author=author,
            parent=latest,
            rollback_of=target.id,
            links=links.dump() if links else None,
        ),
    )


async def compare(
    session: AsyncSession,
    keys: SecretKeys,
    *,
    env_id: uuid.UUID,
    from_id: str | None,
    to_id: str | None,
    reveal: bool,
) -> DiffResponse:
    """Diff two versions of one environment (default: the latest against its parent)."""
    if to_id is None:
        to_version = await service.latest_version(session, environment_id=env_id)
        if to_version is None:
            raise ValidationFailed("this environment has no versions yet")
    else:
        to_version = await service.get_version(session, environment_id=env_id, version_id=to_id)
    from_ref = from_id if from_id is not None else to_version.parent_id
    from_version = (
        await service.get_version(session, environment_id=env_id, version_id=from_ref)
        if from_ref
        else None
    )
    old = await service.read_values(session, keys, version=from_version) if from_version else {}
    new = await service.read_values(session, keys, version=to_version)
    change = diff(old, new)
    values: dict[str, Modified | str] | None = None
    if reveal:
        values = {name: new[name] for name in change.added}
        values.update({name: old[name] for name in change.removed})
        values.update({name: Modified(old=old[name], new=new[name]) for name in change.modified})
    return DiffResponse(
        from_version=summary(from_version) if from_version else None,
        to_version=summary(to_version),
        added=change.added,
        removed=change.removed,
        modified=change.modified,
        unchanged=change.unchanged,
        values=values,
    )


async def history(
    session: AsyncSession, keys: SecretKeys, *, env_id: uuid.UUID, name: str, reveal: bool
) -> list[HistoryEntry]:
    """Return one secret's changes across versions, newest first."""
    entries: list[HistoryEntry] = []
    previous: str | None = None
    for version, value in await service.versions_with_name(
        session, keys, environment_id=env_id, name=name
    ):
        if value == previous:
            continue
        change = "added" if previous is None else "removed" if value is None else "modified"
        entries.append(
            HistoryEntry(version=summary(version), change=change, value=value if reveal else None)
        )
        previous = value
    if not entries:
        raise NotFound(f"{name} was never set in this environment")
    return list(reversed(entries))
