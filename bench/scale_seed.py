"""Seed the scale benchmark's rows straight through the server's own models and code."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.server import Server
from kavach.server.access import Actor
from kavach.server.audit import service as audit
from kavach.server.audit.scope import EventScope
from kavach.server.auth.models import ServiceToken
from kavach.server.auth.tokens import new_service_token, token_hash
from kavach.server.crypto.datakeys import SecretKeys
from kavach.server.crypto.keys import load_keys
from kavach.server.db.base import utcnow
from kavach.server.db.engine import create_engine, create_sessionmaker
from kavach.server.iam.models import (
    Environment,
    Organization,
    SecretGroup,
    User,
    UserGroup,
    UserGroupMember,
)
from kavach.server.providers.base import BUILTIN
from kavach.server.providers.models import ProviderConfig
from kavach.server.rbac.models import RoleBinding
from kavach.server.secrets import service as secrets_service
from kavach.server.settings import get_settings
from kavach.server.sync.models import SyncRun

BATCH = 2_000
AUDIT_BATCH = 1_000
SECRET_COUNT = 50
SEEDER = Actor(type="system", label="scale-bench")


@dataclass(frozen=True)
class Tree:
    """The organization "bench" owns, and the group, environment and user group measured."""

    owner: uuid.UUID
    org: uuid.UUID
    group: uuid.UUID
    env: uuid.UUID
    user_group: uuid.UUID


@dataclass(frozen=True)
class Shape:
    """How many rows one seeding adds."""

    groups: int
    envs: int
    users: int
    user_groups: int
    audit_events: int
    tokens: int
    sync_runs: int
    versions: int
    other_orgs: int
    providers: tuple[str, ...]

    @classmethod
    def small(cls) -> Shape:
        """A few rows per listing, on the one group and environment."""
        return cls(0, 0, 5, 0, 10, 3, 3, 0, 1, BUILTIN[:1])

    @classmethod
    def of(cls, scale: int) -> Shape:
        """`scale` environments over scale/100 groups, and everything that grows with them."""
        return cls(
            groups=max(scale // 100 - 1, 0),
            envs=scale - 1,
            users=scale,
            user_groups=scale // 10,
            audit_events=10 * scale,
            tokens=scale,
            sync_runs=scale // 10,
            versions=scale // 10,
            other_orgs=scale // 100,
            providers=BUILTIN[1:],
        )


@dataclass
class Layout:
    """The rows one seeding lays out, with what the requests will need."""

    tree: Tree
    tag: str
    groups: list[uuid.UUID] = field(default_factory=list)
    envs: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (group, env)
    users: list[uuid.UUID] = field(default_factory=list)
    user_groups: list[uuid.UUID] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def _batches(
    rows: Sequence[dict[str, Any]], size: int = BATCH
) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _insert(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    for batch in _batches(rows):
        await session.execute(insert(model), list(batch))


def _binding(
    tree: Tree, kind: str, resource: uuid.UUID, role: str, **subject: Any
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": tree.org,
        "resource_type": kind,
        "resource_id": resource,
        "role": role,
        "granted_by": tree.owner,
        "user_id": subject.get("user_id"),
        "user_group_id": subject.get("user_group_id"),
    }


async def _tree(session: AsyncSession, layout: Layout, shape: Shape) -> None:
    tree, tag = layout.tree, layout.tag
    new_groups = [uuid.uuid4() for _ in range(shape.groups)]
    await _insert(
        session,
        SecretGroup,
        [
            {
                "id": g,
                "organization_id": tree.org,
                "name": f"{tag}-g{n:05d}",
                "created_by": tree.owner,
            }
            for n, g in enumerate(new_groups)
        ],
    )
    layout.groups = [tree.group, *new_groups]
    rows: list[dict[str, Any]] = []
    layout.envs = [(tree.group, tree.env)]
    for n in range(shape.envs):
        group, env = layout.groups[n % len(layout.groups)], uuid.uuid4()
        rows.append({"id": env, "secret_group_id": group, "name": f"{tag}-e{n:06d}"})
        layout.envs.append((group, env))
    await _insert(session, Environment, [row | {"created_by": tree.owner} for row in rows])


def _user_target(layout: Layout, n: int) -> tuple[str, uuid.UUID]:
    """Where user n's direct grant is: the org, the measured group or env, or spread."""
    tree = layout.tree
    if n % 10 == 0:
        return "organization", tree.org
    if n % 100 == 1:
        return "secret_group", tree.group
    if n % 100 == 2:
        return "environment", tree.env
    return "environment", layout.envs[n % len(layout.envs)][1]


async def _users(session: AsyncSession, layout: Layout, shape: Shape) -> None:
    tag = layout.tag
    layout.users = [uuid.uuid4() for _ in range(shape.users)]
    await _insert(
        session,
        User,
        [
            {"id": u, "provider": "bench", "provider_id": f"{tag}-{n}", "login": f"{tag}-u{n:06d}"}
            for n, u in enumerate(layout.users)
        ],
    )
    bindings = []
    for n, user in enumerate(layout.users):
        kind, resource = _user_target(layout, n)
        bindings.append(_binding(layout.tree, kind, resource, "viewer", user_id=user))
    await _insert(session, RoleBinding, bindings)


def _group_target(layout: Layout, n: int) -> tuple[str, uuid.UUID]:
    if n % 2 == 0:
        return "environment", layout.envs[n % len(layout.envs)][1]
    return "secret_group", layout.groups[n % len(layout.groups)]


async def _user_groups(session: AsyncSession, layout: Layout, shape: Shape) -> None:
    tree, tag = layout.tree, layout.tag
    new = [uuid.uuid4() for _ in range(shape.user_groups)]
    await _insert(
        session,
        UserGroup,
        [
            {"id": g, "organization_id": tree.org, "name": f"{tag}-ug{n:05d}"}
            for n, g in enumerate(new)
        ],
    )
    layout.user_groups = [tree.user_group, *new]
    members = [
        {"user_group_id": layout.user_groups[n % len(layout.user_groups)], "user_id": user}
        | {"added_at": utcnow()}
        for n, user in enumerate(layout.users)
    ]
    await _insert(session, UserGroupMember, members)
    bindings = [
        _binding(tree, *_group_target(layout, n + 1), "editor", user_group_id=group)
        for n, group in enumerate(new)
    ]
    await _insert(session, RoleBinding, bindings)


async def _other_orgs(session: AsyncSession, layout: Layout, shape: Shape) -> None:
    """Organizations "bench" sees as a viewer."""
    orgs = [uuid.uuid4() for _ in range(shape.other_orgs)]
    await _insert(
        session,
        Organization,
        [{"id": o, "name": f"{layout.tag}-org{n:05d}"} for n, o in enumerate(orgs)],
    )
    owner = layout.tree.owner
    bindings = []
    for org in orgs:
        binding = _binding(layout.tree, "organization", org, "viewer", user_id=owner)
        bindings.append(binding | {"organization_id": org})
    await _insert(session, RoleBinding, bindings)


async def _env_rows(session: AsyncSession, layout: Layout, shape: Shape) -> None:
    """Service tokens, sync runs and providers of the measured environment."""
    tree, tag = layout.tree, layout.tag
    layout.tokens = [new_service_token() for _ in range(shape.tokens)]
    expires = utcnow() + timedelta(days=1)
    await _insert(
        session,
        ServiceToken,
        [
            {"id": uuid.uuid4(), "environment_id": tree.env, "name": f"{tag}-t{n:06d}"}
            | {"role": "viewer", "token_hash": token_hash(t), "created_by": tree.owner}
            | {"expires_at": expires}
            for n, t in enumerate(layout.tokens)
        ],
    )
    run = {"environment_id": tree.env, "provider": "github", "target_key": "bench/scale"}
    run |= {"status": "succeeded", "actor_type": "user", "actor_id": tree.owner, "counts": {}}
    await _insert(session, SyncRun, [run | {"id": uuid.uuid4()} for _ in range(shape.sync_runs)])
    await _insert(
        session,
        ProviderConfig,
        [
            {"id": uuid.uuid4(), "environment_id": tree.env, "provider": name}
            | {"config": {"bench": tag}, "credentials_encrypted": secrets.token_bytes(32)}
            for name in shape.providers
        ],
    )


async def _audit(session_maker: Any, layout: Layout, shape: Shape) -> None:
    """Append real chained, signed events to the organization's chain, in batches."""
    org = layout.tree.org
    done = 0
    while done < shape.audit_events:
        count = min(AUDIT_BATCH, shape.audit_events - done)
        events = []
        for n in range(done, done + count):
            group, env = layout.envs[n % len(layout.envs)]
            where = EventScope(org, group, env)
            events.append(
                audit.NewEvent(
                    actor=SEEDER,
                    action="secret.read",
                    where=where,
                    resource_type="environment",
                    resource_id=str(env),
                )
            )
        async with session_maker() as session, session.begin():
            await audit.append(session, events)
        done += count


async def _versions(session_maker: Any, layout: Layout, shape: Shape) -> None:
    """Write versions of 50 secrets on the measured environment, as commits would."""
    keys = SecretKeys(load_keys(get_settings()).secret_keyring())
    env = layout.tree.env
    values = {f"SECRET_{n:02d}": secrets.token_urlsafe(24) for n in range(SECRET_COUNT)}
    async with session_maker() as session, session.begin():
        parent: Any = await secrets_service.latest_version(session, environment_id=env)
        for n in range(shape.versions):
            values[f"SECRET_{n % SECRET_COUNT:02d}"] = secrets.token_urlsafe(24)
            new = secrets_service.NewVersion(
                values=dict(values), message="seed", author=SEEDER, parent=parent
            )
            parent = await secrets_service.write_version(session, keys, environment_id=env, new=new)


async def seed(server: Server, tree: Tree, shape: Shape, tag: str) -> Layout:
    """Add `shape`'s rows to the tree; return the layout, with the service tokens' secrets."""
    os.environ.update(server.env)
    engine = create_engine(get_settings())
    layout = Layout(tree=tree, tag=tag)
    try:
        session_maker = create_sessionmaker(engine)
        async with session_maker() as session, session.begin():
            await _tree(session, layout, shape)
            await _users(session, layout, shape)
            await _user_groups(session, layout, shape)
            await _other_orgs(session, layout, shape)
            await _env_rows(session, layout, shape)
        await _audit(session_maker, layout, shape)
        await _versions(session_maker, layout, shape)
        # Statistics as autovacuum would soon have them: planning on the empty tables' is not.
        async with session_maker() as session, session.begin():
            await session.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return layout
