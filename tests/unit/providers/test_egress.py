"""Which addresses providers may connect to, and the setting that decides it."""

from __future__ import annotations

import pytest

from kavach.server.providers.egress import is_public
from kavach.server.settings import Mode, Settings


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "0.0.0.0",  # noqa: S104 - refused, not bound
        "::",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fec0::1",  # site-local, deprecated
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "not an address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["140.82.112.6", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(address)


def test_private_targets_are_allowed_by_default_outside_production_only() -> None:
    assert Settings(mode=Mode.DEVELOPMENT).private_targets_allowed
    assert not Settings(mode=Mode.PRODUCTION).private_targets_allowed
    assert Settings(mode=Mode.PRODUCTION, sync_allow_private_targets=True).private_targets_allowed
    assert not Settings(sync_allow_private_targets=False).private_targets_allowed
