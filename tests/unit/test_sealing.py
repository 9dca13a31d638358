"""AES-256-GCM sealing: one value at a time, or many under one key."""

from __future__ import annotations

import pytest

from kavach.server.crypto.envelope import (
    NONCE_BYTES,
    DecryptionFailed,
    new_data_key,
    seal,
    seal_all,
    unseal,
    unseal_all,
)


def test_sealing_many_matches_sealing_each() -> None:
    key = new_data_key()
    items = [(f"value-{n}".encode(), f"aad-{n}".encode()) for n in range(50)]
    sealed = seal_all(key, items)
    assert [unseal(key, s, aad) for s, (_, aad) in zip(sealed, items, strict=True)] == [
        plain for plain, _ in items
    ]
    # Each under a nonce of its own, laid out as seal() lays it out.
    assert len({s[:NONCE_BYTES] for s in sealed}) == len(items)
    one = seal(key, b"value-0", b"aad-0")
    assert len(sealed[0]) == len(one) == NONCE_BYTES + len(b"value-0") + 16


def test_a_value_sealed_with_others_is_bound_to_its_own_data() -> None:
    key = new_data_key()
    first, second = seal_all(key, [(b"a", b"name-a"), (b"b", b"name-b")])
    with pytest.raises(DecryptionFailed):
        unseal(key, first, b"name-b")
    with pytest.raises(DecryptionFailed):
        unseal(new_data_key(), second, b"name-b")
    assert seal_all(key, []) == []


def test_unsealing_many_opens_each_and_names_the_first_that_fails() -> None:
    key = new_data_key()
    items = [(f"value-{n}".encode(), f"aad-{n}".encode()) for n in range(5)]
    sealed = seal_all(key, items)
    assert unseal_all(key, list(zip(sealed, [aad for _, aad in items], strict=True))) == [
        plain for plain, _ in items
    ]
    swapped = [(s, aad) for s, (_, aad) in zip(sealed, items, strict=True)]
    swapped[3] = (sealed[3], b"aad-4")  # bound to another name
    with pytest.raises(DecryptionFailed) as failed:
        unseal_all(key, swapped)
    assert failed.value.index == 3
    assert unseal_all(key, []) == []
