"""What can be done with an environment's secrets, decided once for every entry point.

The HTTP routes (secrets.router) call these, and so will anything else that serves secrets.
The order of things is decided here and nowhere else:

- a read is admitted at the gate, its data read with the epoch that confirms the
  admission, its values decrypted, its audit event committed, and only then answered;
- a read whose values do not decrypt records a failed `secret.read` and answers 503;
- a comparison of environments is a read of each (admitted, audited), answered with which
  values agree, never with the values;
- a commit is admitted at the gate and written by the store, which confirms the admission
  under the commit's lock; the version and its event are written together or not at all;
- a commit that adds references, or removes what others refer to, is planned first
  (secrets.linking): its references are admitted for the committer and checked (cycles,
  depth, missing targets, dependents) against the plan under the commit's lock;
- a read resolves references unless asked not to (secrets.resolving): every environment
  a value pulls from is admitted for the reader and its read audited.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.access import Access, RequestOrigin, TokenPrincipal
from kavach.server.audit import service as audit
from kavach.server.audit.batch import AuditBatcher
from kavach.server.audit.service import NewEvent
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.errors import (
    CannotDecrypt,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from kavach.server.gate import AccessGate, Admission, Ticket
from kavach.server.secrets import flows, linking, resolving, service
from kavach.server.secrets.comparison import Comparison, Digester, Digests, compare
from kavach.server.secrets.events import commit_event, environment_event, read_event
from kavach.server.secrets.flows import summary
from kavach.server.secrets.models import SecretVersion
from kavach.server.secrets.references import Place, has_references
from kavach.server.secrets.schemas import (
    CommitRequest,
    DiffResponse,
    HistoryEntry,
    SecretsResponse,
    SourceVersion,
    VersionDetail,
)
from kavach.server.secrets.service import VersionFacts
from kavach.server.secrets.store import Change, Recheck, SecretStore, Snapshot, Stale
from kavach.server.settings import Settings

T = TypeVar("T")
READ = "secret.read"
WRITE = "secret.write"
# How often a request is decided again when access keeps changing under it.
_ATTEMPTS = 4


@dataclass(frozen=True)
class Committed:
    """A commit's new version, and the references elsewhere its forced removals broke."""

    version: SecretVersion
    broken: list[str]


class SecretUseCases:
    """Read, commit, roll back, compare and trace an environment's secrets."""

    def __init__(
        self,
        *,
        gate: AccessGate,
        store: SecretStore,
        keys: SecretKeys,
        audit_batcher: AuditBatcher,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._gate = gate
        self._store = store
        self._keys = keys
        self._audit = audit_batcher
        self._settings = settings

    async def read_latest(
        self,
        ticket: Ticket,
        admission: Admission,
        origin: RequestOrigin,
        render: Callable[[SecretsResponse], T],
        what: str = "secrets",
        *,
        resolve: bool = True,
    ) -> T:
        """Return the latest secrets (references resolved unless not `resolve`), rendered
        while the read's event commits."""
        admission, snapshot = await self._confirmed_latest(ticket, admission)
        access, version = admission.access, snapshot.version
        version_id = version.id if version else None
        try:
            values = await self._values(snapshot)
            found = resolving.Resolved(values, {})
            if resolve and version is not None:
                found = await self.resolved(access, version, values, pinned=False)
        except (CannotDecrypt, Forbidden, Conflict, ValidationFailed) as failure:
            # Values that do not decrypt, or references the reader may not follow or that do
            # not resolve: the refused read is recorded too.
            await self._audit.record(read_event(access, origin, version_id, what, failure=failure))
            raise
        events = [read_event(access, origin, version_id, what)]
        events += source_events(origin, found)
        committed = [self._audit.submit(event) for event in events]
        try:
            if not self._audit.committing:
                # Let the event's batch go out, then render while it commits: the answer
                # still goes only once the event is committed.
                await asyncio.sleep(0)
            described = summary(version) if version else None
            answer = render(
                SecretsResponse(version=described, secrets=found.values, sources=_sources(found))
            )
        finally:
            await asyncio.gather(*committed)
        return answer

    async def compare_latest(self, tickets: Sequence[Ticket], origin: RequestOrigin) -> Comparison:
        """Compare the latest secrets of the tickets' environments; say which values agree.

        Each environment is admitted at the gate and read as any read is (a `secret.read`
        event, `what: compare`); one the gate refuses, or whose values do not decrypt, is
        left out and said so.
        """
        digester, compared, columns = Digester(), [], []
        left_out: dict[uuid.UUID, str] = {}
        for ticket in tickets:
            env_id = ticket.environment_id
            assert env_id is not None  # noqa: S101 - the caller names listed environments
            try:
                admission = await self._gate.admit_provisionally(ticket)
                column: Digests = await self.read_latest(
                    ticket,
                    admission,
                    origin,
                    lambda read: digester.digests(read.secrets),
                    "compare",
                )
            except (Forbidden, NotFound):
                left_out[env_id] = "you may not read its secrets"
                continue
            except CannotDecrypt:
                left_out[env_id] = "its values could not be decrypted"
                continue
            compared.append(env_id)
            columns.append(column)
        return Comparison(tuple(compared), compare(columns), left_out)

    async def commit(
        self, ticket: Ticket, admission: Admission, origin: RequestOrigin, body: CommitRequest
    ) -> Committed:
        """Commit a change or a snapshot; 409 if the parent it names is no longer the latest.

        `admission` is the gate's (provisional) answer to `ticket`; the store confirms it.
        """
        plan = await self._plan(admission, body) if await self._planned(admission, body) else None
        broken: list[str] = []
        for _ in range(_ATTEMPTS):
            try:
                change = self._change(admission, origin, body, plan, broken)
                outcome = await self._store.commit(change)
            except linking.Replan:
                plan = await self._plan(admission, body)
                continue
            if isinstance(outcome, Recheck):
                admission = await self._gate.recheck(ticket)
                continue
            if isinstance(outcome, Stale):
                parent = body.parent_version
                assert parent is not None  # noqa: S101 - only a named parent goes stale
                env_id = admission.access.environment_id
                raise await self._store.conflict(env_id, parent, outcome.latest)
            return Committed(outcome, broken)
        raise ServiceUnavailable("access kept changing during the commit; retry")

    async def read_version(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        version_id: str,
        what: str = "version",
    ) -> VersionDetail:
        """Return one version of the environment with its values (`what` names the read)."""
        version, values = await self._version_values(session, access, origin, version_id, what)
        return VersionDetail(**summary(version).model_dump(), secrets=values)

    async def read_at(
        self, ticket: Ticket, origin: RequestOrigin, version_id: str, *, resolve: bool = True
    ) -> SecretsResponse:
        """Return the secrets of one version, shaped as the latest secrets are.

        Its references resolve to the versions they were at when it was committed.
        """
        async with self._read_sessions() as session:
            access = await self._gate.admit_in(session, ticket)
            version, values = await self._version_values(
                session, access, origin, version_id, "secrets"
            )
            found = resolving.Resolved(values, {})
            if resolve:
                found = await self.resolved(access, version, values, pinned=True, session=session)
        for event in source_events(origin, found):
            await self._audit.record(event)
        return SecretsResponse(
            version=summary(version), secrets=found.values, sources=_sources(found)
        )

    async def _version_values(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        version_id: str,
        what: str,
    ) -> tuple[SecretVersion, dict[str, str]]:
        """Read one version and its stored values, the read audited (`what` names it)."""
        env_id = access.environment_id
        version = await service.get_version(session, environment_id=env_id, version_id=version_id)
        async with self._failed_reads_recorded(session, access, origin, what):
            values = await service.read_values(session, self._keys, version=version)
        await self._record_read(session, access, origin, version.id, what)
        return version, values

    async def history(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        *,
        name: str,
        reveal: bool,
    ) -> list[HistoryEntry]:
        """Return one secret's changes across versions, newest first (values with reveal)."""
        what = f"history:{name}"
        async with self._failed_reads_recorded(session, access, origin, what, values_read=reveal):
            entries = await flows.history(
                session, self._keys, env_id=access.environment_id, name=name, reveal=reveal
            )
        if reveal:
            await self._record_read(session, access, origin, None, what)
        return entries

    async def diff(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        *,
        from_id: str | None,
        to_id: str | None,
        reveal: bool,
    ) -> DiffResponse:
        """Compare two versions (default: the latest against its parent); values with reveal."""
        async with self._failed_reads_recorded(session, access, origin, "diff", values_read=reveal):
            result = await flows.compare(
                session,
                self._keys,
                env_id=access.environment_id,
                from_id=from_id,
                to_id=to_id,
                reveal=reveal,
            )
        if reveal:
            await self._record_read(session, access, origin, result.to_version.id, "diff")
        return result

    async def rollback(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        *,
        version_id: str,
        message: str,
    ) -> SecretVersion:
        """Write a new version equal to an older one, with its event, in one transaction.

        Its references are checked as a commit's are, and so is what it removes.
        """
        env_id = access.environment_id
        target = await service.get_version(session, environment_id=env_id, version_id=version_id)
        target_links = linking.links_of(target)
        # Always planned (a rollback is rare): even a version from before references may
        # hold `${`, which is refused now unless it resolves.
        plan = await self._plan_in(session, access, {}, target_links)
        version = await flows.rollback(
            session,
            self._keys,
            env_id=access.environment_id,
            version_id=version_id,
            message=message,
            author=access.principal.actor,
            check=lambda latest, current, values: (
                linking.contents(
                    plan,
                    latest,
                    (target_links, values),
                    values,
                    removed=set(current) - set(values),
                    force=False,
                    recheck_carried=True,
                ).links
            ),
        )
        details = {"version_id": version.id, "rollback_of": version.rollback_of}
        await audit.append(session, [environment_event(access, origin, "secret.rollback", details)])
        return version

    async def _confirmed_latest(
        self, ticket: Ticket, admission: Admission
    ) -> tuple[Admission, Snapshot]:
        """Read the latest version under an epoch that confirms the admission (or a new one)."""
        for _ in range(_ATTEMPTS):
            environment_id = admission.access.environment_id
            snapshot = await self._store.latest(environment_id)
            if self._gate.confirm(admission, snapshot.epoch):
                return admission, snapshot
            admission = await self._gate.recheck(ticket)
        raise ServiceUnavailable("access kept changing during the read; retry")

    async def _values(self, snapshot: Snapshot) -> dict[str, str]:
        """Decrypt a snapshot's values, sorted by name."""
        version = snapshot.version
        if version is None or not snapshot.sealed:
            return {}
        key = await self._store.data_key(version)
        return service.decrypt_rows(key, version, snapshot.sealed)

    async def _planned(self, admission: Admission, body: CommitRequest) -> bool:
        """Tell whether a commit needs a plan: it sets a reference, or removes from an
        environment others may refer to."""
        if any(has_references(value) for value in _setting(body).values()):
            return True
        if not (body.unset or body.replace):
            return False
        async with self._read_sessions() as session:
            return await linking.has_dependents(session, admission.access.environment_id)

    async def _plan(self, admission: Admission, body: CommitRequest) -> linking.Plan:
        """Plan a commit's references on the environment's latest version."""
        return await self._plan_for(admission.access, _setting(body), None)

    async def _plan_for(
        self, access: Access, setting: dict[str, str], carried: linking.Links | None
    ) -> linking.Plan:
        """Plan in a transaction of its own."""
        async with self._sessions() as session, session.begin():
            return await self._plan_in(session, access, setting, carried)

    async def _plan_in(
        self,
        session: AsyncSession,
        access: Access,
        setting: dict[str, str],
        carried: linking.Links | None,
    ) -> linking.Plan:
        """Locate and admit the references `setting` adds; read what every link reaches."""
        env_id = access.environment_id
        parsed = linking.body_references(setting)
        named = [reference for found in parsed.values() for reference in found]
        latest = await service.latest_version(session, environment_id=env_id)
        latest_links = linking.links_of(latest)
        located = dict(await linking.locate(session, env_id, named))
        token = isinstance(access.principal, TokenPrincipal)
        for key, target in list(located.items()):
            if target == str(env_id):
                continue
            if token:  # a token adds no reference beyond its environment (it would read it)
                del located[key]
                continue
            try:
                await self._gate.admit_reader(session, access.principal, uuid.UUID(target))
            except (Forbidden, NotFound):
                del located[key]  # refused as if it did not exist, in the same words
        start = set(located.values())
        for links in (latest_links, carried):
            if links is not None:
                start |= links.environments()
        graph = await linking.reachable(session, start, skip=str(env_id))
        referring = await linking.dependents(session, env_id)
        new = [
            Place(located[(reference.group, reference.env)], reference.name)
            for reference in named
            if (reference.group, reference.env) in located
        ]
        old = [place for places in (carried.refs.values() if carried else ()) for place in places]
        await linking.record_edges(session, env_id, new + old)
        holders = {place.environment for found in referring.values() for place in found}
        named_envs = await linking.labels(session, {str(env_id), *graph, *holders})
        return linking.Plan(
            environment=str(env_id),
            made_on=latest.id if latest else None,
            latest_links=latest_links,
            located=located,
            graph=graph,
            referring=referring,
            labels=named_envs,
        )

    async def resolved(
        self,
        access: Access,
        version: VersionFacts,
        values: dict[str, str],
        *,
        pinned: bool,
        session: AsyncSession | None = None,
    ) -> resolving.Resolved:
        """Resolve a version's references, admitting the reader to each environment reached
        (`pinned`: at the versions its links recorded, else the latest), in `session` if given
        (a caller holding one must not wait for a second from the pool)."""
        if version.links is None:
            return resolving.Resolved(values, {})
        principal = access.principal

        async def admit(session: AsyncSession, environment_id: uuid.UUID) -> Access:
            return await self._gate.admit_reader(session, principal, environment_id)

        if session is not None:
            return await resolving.resolve(
                session, self._keys, admit, version, values, pinned=pinned
            )
        async with self._read_sessions() as own:
            return await resolving.resolve(own, self._keys, admit, version, values, pinned=pinned)

    def _change(
        self,
        admission: Admission,
        origin: RequestOrigin,
        body: CommitRequest,
        plan: linking.Plan | None,
        broken: list[str],
    ) -> Change:
        """Describe a commit to the store: what it writes and what it must hold (`broken`:
        filled with the references a forced removal breaks)."""
        access = admission.access
        scope = access.scope
        assert scope is not None  # noqa: S101 - an admission on an environment has its scope
        settings = self._settings

        def values(latest: VersionFacts | None, current: dict[str, str]) -> service.Drafted:
            new = flows.next_values(body, latest, current, settings)
            carried = (plan.latest_links if plan else None, current)
            removed = set(current) - set(new)
            checked = linking.contents(
                plan, latest, carried, new, removed=removed, force=body.force
            )
            broken[:] = checked.broken
            return service.Drafted(new, checked.links.dump() if checked.links else None)

        return Change(
            environment_id=access.environment_id,
            organization_id=scope.organization_id,
            message=body.message,
            author=access.principal.actor,
            parent_version=body.parent_version,
            values=values,
            event=lambda version: commit_event(access, origin, version, body, broken),
            holds=lambda epoch: self._gate.confirm(admission, epoch),
            expected_epoch=self._gate.expected_epoch(admission),
        )

    async def _record_read(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        version_id: str | None,
        what: str,
        failure: CannotDecrypt | None = None,
    ) -> None:
        """Audit a read of secret values (or its failure) before answering.

        The read's own transaction ends first: the event commits with other requests' events
        (see audit.batch), and on SQLite this transaction would otherwise hold the write
        lock the batch needs.
        """
        await session.commit()
        await self._audit.record(read_event(access, origin, version_id, what, failure=failure))

    @asynccontextmanager
    async def _failed_reads_recorded(
        self,
        session: AsyncSession,
        access: Access,
        origin: RequestOrigin,
        what: str,
        *,
        values_read: bool = True,
    ) -> AsyncIterator[None]:
        """Record a failed read event when the values of a read do not decrypt."""
        try:
            yield
        except CannotDecrypt as failure:
            if values_read:
                await self._record_read(session, access, origin, failure.version_id, what, failure)
            raise


def _setting(body: CommitRequest) -> dict[str, str]:
    """Return the values a commit sets (all of them for a snapshot)."""
    return dict(body.secrets) if body.secrets is not None else dict(body.set)


def _sources(found: resolving.Resolved) -> list[SourceVersion]:
    """Describe the other environments a read's references were resolved from."""
    return [
        SourceVersion(
            environment_id=uuid.UUID(env),
            label=read.label,
            seq=read.version.seq if read.version else None,
        )
        for env, read in sorted(found.sources.items(), key=lambda item: item[1].label)
    ]


def source_events(origin: RequestOrigin, found: resolving.Resolved) -> list[NewEvent]:
    """Describe the reads of other environments that resolving references made."""
    return [
        read_event(read.access, origin, read.version.id if read.version else None, "reference")
        for read in found.sources.values()
    ]
