"""Where references lead: a version's links, the environments they reach, checks at commit.

A version whose values hold `${` records its links (`SecretVersion.links`, JSON): for each
such secret the places its references lead to, in order, and the version each other
environment was at when it was committed (with its name then, for history). Reads follow
the links, not the names, so a rename does not break a reference.

A commit that adds references is planned first (`plan`): the environments the references
name are found and admitted for the committer, and every environment reachable from them
is read (names and links, never values). The store then checks the commit's final values
against the plan under its lock (`contents`); a plan made on an older version is made
again (`Replan`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kavach.server.errors import Conflict, Forbidden
from kavach.server.iam.models import Environment, SecretGroup
from kavach.server.secrets.models import ReferenceEdge, Secret, SecretVersion
from kavach.server.secrets.references import (
    MissingReference,
    Paths,
    Place,
    Reference,
    ReferencedSecret,
    has_references,
    references_in,
)
from kavach.server.secrets.service import VersionFacts


class ReferenceForbidden(Forbidden):
    """A reference into an environment the caller may not read (or that does not exist)."""

    error_code = "reference_forbidden"


class Replan(Conflict):
    """The commit's plan was made on another version, or it needs one: plan and try again."""

    error_code = "replan"


@dataclass(frozen=True)
class Source:
    """Another environment a version's references reached, as it was at the commit."""

    label: str
    seq: int


@dataclass(frozen=True)
class Links:
    """A version's links: each secret's targets, in order, and the other environments' versions."""

    refs: dict[str, list[Place]]
    at: dict[str, Source] = field(default_factory=dict)

    def dump(self) -> str:
        """Return the links as stored."""
        refs = {
            name: [[p.environment, p.name] for p in places] for name, places in self.refs.items()
        }
        at = {env: [source.label, source.seq] for env, source in self.at.items()}
        return json.dumps({"refs": refs, "at": at}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> Links | None:
        """Read stored links (None: the version's values are literal)."""
        if text is None:
            return None
        raw: dict[str, Any] = json.loads(text)
        refs = {
            name: [Place(env, target) for env, target in places]
            for name, places in raw["refs"].items()
        }
        at = {env: Source(label, seq) for env, (label, seq) in raw["at"].items()}
        return cls(refs, at)

    def environments(self) -> set[str]:
        """Return every environment the links lead into (the own one included)."""
        return {place.environment for places in self.refs.values() for place in places}


def revision(seq: int, sources: Mapping[str, int]) -> str:
    """Name the state of an environment's resolved values: its version and its sources'.

    The version number alone when nothing is referenced; else it and a digest of the
    versions of every environment reached. Compared for equality only.
    """
    if not sources:
        return str(seq)
    listed = ",".join(f"{env}:{at}" for env, at in sorted(sources.items()))
    return f"{seq}-{hashlib.sha256(listed.encode()).hexdigest()[:16]}"


async def current_revision(session: AsyncSession, environment_id: uuid.UUID) -> str:
    """Return the revision of an environment's latest version, as resolved now ("0": none)."""
    latest = await session.execute(
        select(SecretVersion.seq, SecretVersion.links)
        .where(SecretVersion.environment_id == environment_id)
        .order_by(SecretVersion.seq.desc())
        .limit(1)
    )
    row = latest.first()
    if row is None:
        return "0"
    return await revision_now(session, environment_id, row.seq, row.links)


async def revision_now(
    session: AsyncSession, environment_id: uuid.UUID, seq: int, links_text: str | None
) -> str:
    """Return the revision of one version of an environment, its references resolved now."""
    links = Links.load(links_text)
    if links is None:
        return str(seq)
    # Only version numbers matter here: the feed asks this every poll, names are not read.
    start = links.environments()
    graph = await reachable(session, start, skip=str(environment_id), with_names=False)
    return revision(seq, {env: found.seq for env, found in graph.items()})


def links_of(version: VersionFacts | None) -> Links | None:
    """Return a version's links (None for a literal version or none)."""
    return Links.load(version.links) if version is not None else None


@dataclass(frozen=True)
class Facts:
    """What references see of an environment's latest version: names and links, no values."""

    seq: int
    names: frozenset[str]
    links: Links | None


_LABELS = select(Environment.id, SecretGroup.name, Environment.name).join(
    SecretGroup, SecretGroup.id == Environment.secret_group_id
)


async def labels(session: AsyncSession, environment_ids: Iterable[str]) -> dict[str, str]:
    """Name environments as `group/env`, by id."""
    ids = [uuid.UUID(env) for env in set(environment_ids)]
    rows = await session.execute(_LABELS.where(Environment.id.in_(ids)))
    return {str(env_id): f"{group}/{name}" for env_id, group, name in rows}


async def facts(
    session: AsyncSession, environment_ids: Iterable[str], *, with_names: bool = True
) -> dict[str, Facts]:
    """Read each environment's latest version's number, names (unless not `with_names`) and
    links, one statement per kind."""
    ids = [uuid.UUID(env) for env in set(environment_ids)]
    if not ids:
        return {}
    latest = (
        select(SecretVersion.environment_id, func.max(SecretVersion.seq).label("seq"))
        .where(SecretVersion.environment_id.in_(ids))
        .group_by(SecretVersion.environment_id)
        .subquery()
    )
    versions = await session.execute(
        select(
            SecretVersion.id, SecretVersion.environment_id, SecretVersion.seq, SecretVersion.links
        ).join(
            latest,
            and_(
                latest.c.environment_id == SecretVersion.environment_id,
                latest.c.seq == SecretVersion.seq,
            ),
        )
    )
    by_version = {row.id: row for row in versions}
    names: dict[str, set[str]] = {version_id: set() for version_id in by_version}
    if by_version and with_names:
        rows = await session.execute(
            select(Secret.version_id, Secret.name).where(Secret.version_id.in_(list(by_version)))
        )
        for version_id, name in rows:
            names[version_id].add(name)
    # An environment without a version (or deleted) is left out: it holds no name to reach.
    return {
        str(row.environment_id): Facts(row.seq, frozenset(names[version_id]), Links.load(row.links))
        for version_id, row in by_version.items()
    }


async def reachable(
    session: AsyncSession, start: Iterable[str], *, skip: str, with_names: bool = True
) -> dict[str, Facts]:
    """Read every environment reachable from `start` by links (not `skip`, the committing one)."""
    found: dict[str, Facts] = {}
    asked = {skip}
    frontier = set(start) - asked
    while frontier:
        asked |= frontier
        # A deleted environment is not found.
        level = await facts(session, frontier, with_names=with_names)
        found.update(level)
        following: set[str] = set()
        for env in level.values():
            if env.links is not None:
                following |= env.links.environments()
        frontier = following - asked
    return found


async def locate(
    session: AsyncSession,
    environment_id: uuid.UUID,
    references: Iterable[Reference],
) -> dict[tuple[str | None, str | None], str]:
    """Find the environment each reference names, relative to `environment_id` (by names)."""
    own = await session.execute(
        select(Environment.secret_group_id, SecretGroup.organization_id, Environment.name)
        .join(SecretGroup, SecretGroup.id == Environment.secret_group_id)
        .where(Environment.id == environment_id)
    )
    group_id, organization_id, own_env = own.one()
    found: dict[tuple[str | None, str | None], str] = {(None, None): str(environment_id)}
    for reference in references:
        key = (reference.group, reference.env)
        if key in found:
            continue
        if reference.group is None and reference.env == own_env:
            found[key] = str(environment_id)
            continue
        query = select(Environment.id).join(
            SecretGroup, SecretGroup.id == Environment.secret_group_id
        )
        query = query.where(Environment.name == reference.env)
        if reference.group is None:
            query = query.where(Environment.secret_group_id == group_id)
        else:
            query = query.where(
                SecretGroup.organization_id == organization_id, SecretGroup.name == reference.group
            )
        env_id = await session.scalar(query)
        if env_id is not None:
            found[key] = str(env_id)
    return found


async def has_dependents(session: AsyncSession, environment_id: uuid.UUID) -> bool:
    """Tell whether any environment may refer to this one (the reverse index says so)."""
    query = select(ReferenceEdge.source_environment_id).where(
        ReferenceEdge.target_environment_id == environment_id
    )
    return await session.scalar(query.limit(1)) is not None


async def dependents(session: AsyncSession, environment_id: uuid.UUID) -> dict[str, list[Place]]:
    """Return, per name of this environment, the places whose latest values refer to it.

    The reverse index names candidates; each candidate's latest links decide. Edges are
    never pruned here: one a commit under way has just written may not be in its latest
    version yet, and dropping it would let a removal break that commit's reference.
    """
    env = str(environment_id)
    sources = await session.scalars(
        select(ReferenceEdge.source_environment_id)
        .where(ReferenceEdge.target_environment_id == environment_id)
        .distinct()
    )
    candidates = await facts(session, map(str, sources), with_names=False)
    found: dict[str, list[Place]] = {}
    for source, source_facts in candidates.items():
        links = source_facts.links
        for name, places in links.refs.items() if links else ():
            for place in places:
                if place.environment == env and source != env:
                    found.setdefault(place.name, []).append(Place(source, name))
    return found


async def record_edges(
    session: AsyncSession, environment_id: uuid.UUID, targets: Iterable[Place]
) -> None:
    """Add to the reverse index the other environments' secrets a commit will refer to."""
    rows = [
        {
            "source_environment_id": environment_id,
            "target_environment_id": uuid.UUID(place.environment),
            "target_name": place.name,
        }
        for place in set(targets)
        if place.environment != str(environment_id)
    ]
    if not rows:
        return
    dialect = (await session.connection()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(ReferenceEdge).values(rows).on_conflict_do_nothing())


@dataclass(frozen=True)
class Plan:
    """What a commit's references were checked against, made on one version of its environment."""

    environment: str
    made_on: str | None  # the latest version's id when planned
    latest_links: Links | None  # that version's links
    located: Mapping[tuple[str | None, str | None], str]  # (group, env) named -> environment id
    graph: Mapping[str, Facts]  # every other environment reachable, as read
    referring: Mapping[str, list[Place]]  # names of this environment -> who refers to them
    labels: Mapping[str, str]


def body_references(values: Mapping[str, str]) -> dict[str, list[Reference]]:
    """Parse the references in the values a commit sets; refuse a malformed one."""
    found = {}
    for name, value in values.items():
        if has_references(value):
            found[name] = references_in(value, where=name)
    return found


@dataclass(frozen=True)
class Contents:
    """A commit's checked outcome: its values, its links, the references it breaks."""

    links: Links | None
    broken: list[str] = field(default_factory=list)


def contents(
    plan: Plan | None,
    latest: VersionFacts | None,
    carried: tuple[Links | None, Mapping[str, str]],
    values: Mapping[str, str],
    *,
    removed: set[str],
    force: bool,
    recheck_carried: bool = False,
) -> Contents:
    """Check a commit's final values against its plan; return its links (Replan: plan again).

    `carried`: links already checked, and the values they were made for: a value still the
    same keeps its links (and is checked again only with `recheck_carried`, as a rollback
    to an older version is). `removed`: the names the commit takes away.
    """
    holding = [name for name, value in values.items() if has_references(value)]
    if plan is None:
        if holding:
            raise Replan("plan the commit's references")
        return Contents(None)
    if plan.made_on != (latest.id if latest else None):
        raise Replan("the environment moved on since the plan")
    env = plan.environment
    known, known_values = carried
    refs: dict[str, list[Place]] = {}
    walked = []
    for name in holding:
        value = values[name]
        if known is not None and known_values.get(name) == value and name in known.refs:
            refs[name] = known.refs[name]
            # A carried reference was checked when made, and what it reaches elsewhere is
            # guarded by those environments' own removals: only one within this environment,
            # which this commit may change, is walked again.
            if recheck_carried or any(place.environment == env for place in refs[name]):
                walked.append(name)
            continue
        found = references_in(value, where=name)
        refs[name] = [_place(plan, reference, name) for reference in found]
        walked.append(name)
    checker = _Checker(plan, refs, set(values))
    for name in walked:
        checker.walk(Place(env, name), ())
    broken = _broken(plan, removed, force)
    at = {
        other: Source(plan.labels.get(other, other), plan.graph[other].seq)
        for other in _reached(plan, refs)
    }
    return Contents(Links(refs, at) if holding else None, broken)


def _reached(plan: Plan, refs: Mapping[str, list[Place]]) -> set[str]:
    """Return the other environments a version's links reach, directly or not, as planned."""
    found: set[str] = set()
    frontier = {place.environment for places in refs.values() for place in places}
    while frontier:
        other = frontier.pop()
        if other == plan.environment or other in found or other not in plan.graph:
            continue
        found.add(other)
        links = plan.graph[other].links
        if links is not None:
            frontier |= links.environments()
    return found


def _place(plan: Plan, reference: Reference, name: str) -> Place:
    env = plan.located.get((reference.group, reference.env))
    if env is None:
        raise ReferenceForbidden(
            f"{name} refers to {reference.text()}: no such environment that you may read"
        )
    return Place(env, reference.name)


def _broken(plan: Plan, removed: set[str], force: bool) -> list[str]:
    """Refuse removing names others refer to, unless forced; return who is left broken."""
    hit = sorted(
        f"{plan.labels.get(p.environment, p.environment)}.{p.name} -> {name}"
        for name in removed
        for p in plan.referring.get(name, [])
    )
    if hit and not force:
        raise ReferencedSecret(
            "other secrets refer to what this commit removes (commit with force to remove it "
            f"anyway): {'; '.join(hit)}",
            data={"dependents": hit},
        )
    return hit


class _Checker:
    """Walk references from a commit's secrets: refuse cycles, depth, missing targets."""

    def __init__(self, plan: Plan, refs: Mapping[str, list[Place]], names: set[str]) -> None:
        self._plan, self._refs, self._names = plan, refs, names
        self._paths = Paths(lambda env: plan.labels.get(env, env))
        self._done: set[Place] = set()

    def walk(self, place: Place, path: tuple[Place, ...]) -> None:
        self._paths.check(place, path)
        if place in self._done:
            return
        names, leads = self._at(place)
        if place.name not in names:
            raise MissingReference(self._paths.unset(place, path))
        for target in leads.get(place.name, []):
            self.walk(target, (*path, place))
        self._done.add(place)

    def _at(self, place: Place) -> tuple[set[str] | frozenset[str], Mapping[str, list[Place]]]:
        if place.environment == self._plan.environment:
            return self._names, self._refs
        found = self._plan.graph.get(place.environment)
        if found is None:
            return frozenset(), {}
        return found.names, (found.links.refs if found.links else {})
