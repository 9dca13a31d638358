"""Which keys the data needs, by id: found in the rows as they are read, never the keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kavach.server.audit.chain import AuditKey
from kavach.server.backup.archive import KeyIds
from kavach.server.crypto.envelope import key_id
from kavach.server.crypto.keys import KeyMaterial
from kavach.server.errors import CredentialsUnreadable
from kavach.server.providers.models import ProviderConfig
from kavach.server.providers.service import credentials_of
from kavach.server.webhooks.targets import open_target

# (table, column) holding the id of the key a row was sealed or hashed with.
_KEY_ID_COLUMNS = {
    ("data_keys", "kek_id"): "secret_encryption",
    ("audit_events", "key_id"): "audit",
}
_CREDENTIALS = ("environment_id", "provider", "credentials_encrypted")
_WEBHOOK_TARGETS = ("id", "sealed_target")  # sealed with the provider-credential key too


def held_key_ids(keys: KeyMaterial) -> KeyIds:
    """Return the ids of the keys a server holds."""
    return KeyIds(
        secret_encryption=sorted(keys.secret_keyring().by_id),
        provider_credential=[key_id(keys.provider_credential_key)],
        audit=[AuditKey.derive(keys).id],
    )


@dataclass
class KeyUse:
    """Key ids seen in the rows of a snapshot, the sealed provider credentials and webhooks."""

    ids: dict[str, set[str]] = field(
        default_factory=lambda: {"secret_encryption": set(), "audit": set()}
    )
    credentials: list[tuple[uuid.UUID, str, bytes]] = field(default_factory=list)
    webhook_targets: list[tuple[uuid.UUID, bytes]] = field(default_factory=list)

    def watcher(self, table: str, columns: list[str]) -> Any:
        """Return a function that notes the key ids of one row of `table`, or None."""
        watched = [
            (columns.index(column), kind)
            for (name, column), kind in _KEY_ID_COLUMNS.items()
            if name == table and column in columns
        ]
        if table == "provider_credentials" and set(_CREDENTIALS) <= set(columns):
            at = [columns.index(column) for column in _CREDENTIALS]
            return lambda row: self.credentials.append(tuple(row[i] for i in at))
        if table == "webhooks" and set(_WEBHOOK_TARGETS) <= set(columns):
            at = [columns.index(column) for column in _WEBHOOK_TARGETS]
            return lambda row: self.webhook_targets.append(tuple(row[i] for i in at))
        if not watched:
            return None

        def note(row: Any) -> None:
            for index, kind in watched:
                if row[index] is not None:
                    self.ids[kind].add(row[index])

        return note

    def split(self, keys: KeyMaterial) -> tuple[KeyIds, KeyIds, int]:
        """Return (ids needed and held, ids used but not held, unreadable credentials)."""
        held = held_key_ids(keys)
        readable = 0
        for environment_id, provider, sealed in self.credentials:
            record = ProviderConfig(
                environment_id=environment_id, provider=provider, credentials_encrypted=sealed
            )
            try:
                credentials_of(record, keys.provider_credential_key)
            except CredentialsUnreadable:
                continue
            readable += 1
        key = keys.provider_credential_key
        sealed_with_it = readable + sum(
            open_target(key, webhook_id, sealed) is not None
            for webhook_id, sealed in self.webhook_targets
        )
        secret, audit = self.ids["secret_encryption"], self.ids["audit"]
        needed = KeyIds(
            secret_encryption=sorted(secret & set(held.secret_encryption)),
            provider_credential=held.provider_credential if sealed_with_it else [],
            audit=sorted(audit & set(held.audit)),
        )
        unavailable = KeyIds(
            secret_encryption=sorted(secret - set(held.secret_encryption)),
            audit=sorted(audit - set(held.audit)),
        )
        return needed, unavailable, len(self.credentials) - readable
