"""Where an endpoint may point: https (http to a loopback host outside production), and, in
production, never an address inside the operator's network (SSRF). Checked when an endpoint is
registered or changed, and again before every delivery, on the addresses the name resolves to
then; the delivery connects to the address that was checked (no second lookup to rebind)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Refused", "Target", "check_url", "resolve"]

_MAX_URL = 2048
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Refused(ValueError):
    """The URL may not be used (the message says why, for the caller)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback_host(host: str) -> bool:
    ip = _ip(host)
    return host.lower() in _LOOPBACK_NAMES if ip is None else ip.is_loopback


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(url: str, *, production: bool) -> Target:
    """The URL's parts when its form is acceptable (``Refused`` otherwise). Addresses are
    checked by ``resolve``."""
    if len(url) > _MAX_URL:
        raise Refused(f"The URL is longer than {_MAX_URL} characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise Refused("This is not a valid URL.") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise Refused("The URL must start with https:// and name a host.")
    if parts.username or parts.password:
        raise Refused("The URL may not carry a user name or password.")
    if parts.fragment:
        raise Refused("The URL may not have a #fragment.")
    if parts.scheme == "http" and (production or not _is_loopback_host(host)):
        raise Refused(
            "The URL must use https"
            + (
                "."
                if production
                else " (http is allowed only to a loopback host outside production)."
            )
        )
    if production:
        ip = _ip(host)
        if (ip is not None and _internal(ip)) or host.lower() in _LOOPBACK_NAMES:
            raise Refused("The URL points to a private, loopback or link-local address.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(url.strip(), parts.scheme, host, port or default, path)


async def resolve(target: Target, *, production: bool) -> str:
    """The address to connect to: the first the host resolves to, after checking (in
    production) that none of them is internal. ``Refused`` when one is, or none exist."""
    ip = _ip(target.host)
    if ip is not None:
        addresses = [str(ip)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError:
            raise Refused(f"The host {target.host} does not resolve.") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Refused(f"The host {target.host} does not resolve.")
    if production:
        for address in addresses:
            parsed = _ip(address.split("%", 1)[0])
            if parsed is None or _internal(parsed):
                raise Refused(
                    f"The host {target.host} resolves to a private, loopback or link-local address."
                )
    return addresses[0]
