"""Resolving a version's references at read: each environment they reach is admitted and read.

The reader must be admitted (`secret.read`) to every environment a value pulls from; a
refusal names the reference it may not follow, never a value. A read of the latest version
follows each environment's latest version; a read of an older one, the versions its links
recorded at its commit, so it reads as it did then.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.access import Access
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.errors import Forbidden, NotFound
from kavach.server.secrets import service
from kavach.server.secrets.linking import Links, ReferenceForbidden, labels
from kavach.server.secrets.references import Place, Reference, Resolver
from kavach.server.secrets.references import references_in as parse
from kavach.server.secrets.service import VersionFacts

# Admits the reader to another environment (raises Forbidden or NotFound).
Admit = Callable[[AsyncSession, uuid.UUID], Awaitable[Access]]


@dataclass(frozen=True)
class SourceRead:
    """Another environment read to resolve references: who was admitted, which version."""

    access: Access
    version: VersionFacts | None
    label: str


@dataclass(frozen=True)
class Resolved:
    """Resolved values, and the other environments they were read from."""

    values: dict[str, str]
    sources: dict[str, SourceRead]


async def resolve(
    session: AsyncSession,
    keys: SecretKeys,
    admit: Admit,
    root: VersionFacts,
    values: dict[str, str],
    *,
    pinned: bool,
) -> Resolved:
    """Resolve a version's values (`pinned`: at the versions its links recorded)."""
    root_links = Links.load(root.links)
    if root_links is None:
        return Resolved(values, {})
    env = str(root.environment_id)
    stored: dict[str, dict[str, str]] = {env: values}
    links: dict[str, Links | None] = {env: root_links}
    targets: dict[Place, list[tuple[Reference, Place]]] = {}
    reads: dict[str, tuple[Access, VersionFacts | None]] = {}
    # Place by place from the root's secrets: only what a value actually pulls from is
    # admitted and read, not everything its sources refer to.
    pending = [Place(env, name) for name in root_links.refs]
    seen = set(pending)
    while pending:
        place = pending.pop()
        own = links[place.environment]
        leads = own.refs.get(place.name) if own else None
        value = stored[place.environment].get(place.name)
        if leads is None or value is None:
            continue  # a literal value, or one that is not set (the resolver says so)
        pairs = list(zip(parse(value, where=place.name), leads, strict=False))
        targets[place] = pairs
        for reference, target in pairs:
            other = target.environment
            if other not in stored:
                at = root_links.at.get(other) if pinned else None
                access, version, found = await _read(
                    session, keys, admit, other, at.seq if at else None, place.name, reference
                )
                stored[other], links[other] = found, Links.load(version.links) if version else None
                reads[other] = (access, version)
            if target not in seen:
                seen.add(target)
                pending.append(target)
    named = await labels(session, stored)
    literal = {other for other, found in links.items() if found is None}
    resolver = Resolver(stored, targets, lambda other: named.get(other, "a deleted environment"))
    resolved = resolver.resolve_all(env, literal=literal)
    sources = {
        other: SourceRead(access, version, named.get(other, other))
        for other, (access, version) in reads.items()
    }
    return Resolved(resolved, sources)


async def _read(
    session: AsyncSession,
    keys: SecretKeys,
    admit: Admit,
    environment: str,
    seq: int | None,
    name: str,
    reference: Reference,
) -> tuple[Access, VersionFacts | None, dict[str, str]]:
    """Admit the reader to one environment and read its values (latest, or version `seq`)."""
    env_id = uuid.UUID(environment)
    try:
        access = await admit(session, env_id)
    except (Forbidden, NotFound):
        raise ReferenceForbidden(
            f"{name} refers to {reference.text()}, in an environment you may not read"
        ) from None
    if seq is None:
        latest, values = await service.read_latest(session, keys, environment_id=env_id)
        return access, latest, values
    version = await service.get_version(session, environment_id=env_id, version_id=str(seq))
    return access, version, await service.read_values(session, keys, version=version)
