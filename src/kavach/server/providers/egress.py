"""Where sync providers may connect: public addresses only (unless allowed), never redirected.

Credentials travel with every provider request, so a target that resolves to this machine,
its network or a cloud metadata service would hand them (and the answers) to something the
admin configuring it should not reach. Every connection a provider opens is checked against
the address it actually connected to, before a byte is sent: a name that resolves to a public
address at configure time and to a private one later (DNS rebinding) is still refused. httpx
connections are checked through httpcore's `trace` extension, `requests` ones (the GCP and
Azure clients, their token endpoints included) through the connection classes of a mounted
adapter. Redirects are never followed: a 3xx answer is handed back to the provider as an error.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kavach.server.errors import TargetNotAllowed
from kavach.server.settings import Settings

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052 NAT64).
_NAT64 = ip_network("64:ff9b::/96")
_SETTING = "KAVACH_SYNC_ALLOW_PRIVATE_TARGETS=true"


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """Say whether an address is globally routable (not loopback, private, link-local, …)."""
    try:
        parsed = ip_address(address.split("%", 1)[0])  # an IPv6 zone id names a local link
    except ValueError:
        return False
    if isinstance(parsed, IPv6Address):
        inner = _embedded_ipv4(parsed)
        if inner is not None and not is_public(str(inner)):
            return False
        if parsed.is_site_local:  # fec0::/10: deprecated, still routed inside some networks
            return False
    return parsed.is_global and not (
        parsed.is_multicast
        or parsed.is_reserved
        or parsed.is_unspecified
        or parsed.is_loopback
        or parsed.is_link_local
        or parsed.is_private
    )


def _refusal(host: str) -> TargetNotAllowed:
    return TargetNotAllowed(
        f"{host} is or resolves to a loopback, private, link-local or otherwise non-public "
        f"address, which this server does not connect to (set {_SETTING} to allow it)"
    )


def _check_peer(sock: socket.socket, host: str) -> None:
    """Close the socket and refuse unless its peer is a public address."""
    peer = sock.getpeername()
    if not is_public(str(peer[0])):
        sock.close()
        raise _refusal(host)


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self.host)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # the TLS handshake comes after: nothing was sent yet
        _check_peer(sock, self.host)
        return sock


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


_CHECKED_POOLS = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


class _CheckedAdapter(HTTPAdapter):
    """An adapter whose every connection (to a proxy too) must reach a public address."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _CHECKED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _CHECKED_POOLS
        return manager


class NoRedirects(requests.Session):
    """A session that hands 3xx answers back instead of following them."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Follow nothing."""
        return None


Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Egress:
    """The outbound policy of sync providers."""

    allow_private: bool

    @classmethod
    def of(cls, settings: Settings) -> Egress:
        """Return the policy the server's settings ask for."""
        return cls(allow_private=settings.private_targets_allowed)

    def prepare(self, session: requests.Session) -> None:
        """Mount the address check on a session's http and https adapters."""
        if not self.allow_private:
            session.mount("http://", _CheckedAdapter())
            session.mount("https://", _CheckedAdapter())

    def session(self) -> requests.Session:
        """Return a new session that follows no redirect and checks every connection."""
        session = NoRedirects()
        self.prepare(session)
        return session

    def extensions(self, host: str) -> dict[str, Any]:
        """Return the httpx request extensions that check each new connection's address."""
        if self.allow_private:
            return {}

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event != "connection.connect_tcp.complete":
                return
            stream = info["return_value"]
            peer = stream.get_extra_info("server_addr")
            if peer is None or not is_public(str(peer[0])):
                await stream.aclose()
                raise _refusal(host)

        return {"trace": trace}

    async def check_url(self, url: str) -> None:
        """Refuse a URL (or bare host) whose host is or resolves to a non-public address.

        A name that does not resolve now is let through: the connection check stays.
        """
        if self.allow_private:
            return
        host = urlsplit(url if "://" in url else f"https://{url}").hostname or ""
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            return
        if not all(is_public(str(info[4][0])) for info in found):
            raise _refusal(host)
