"""No way in for callers: an event-feed endpoint may only reach public addresses.

A URL is checked when the endpoint is created or changed, and again before every send, because
the name's DNS answer can change in between. The resolver is injectable (a function here, and
HUB_FEED_RESOLVE `host=ip,...` for whole processes), so tests can make a name turn private.
HUB_FEED_ALLOW lists networks (CIDR) or host names allowed anyway: local testing, on-premises
receivers.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from hub.core.config import split

Resolver = Callable[[str, int], list[str]]
# Cloud metadata services that are not caught as link-local or private everywhere.
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254", "168.63.129.16")}


class UnsafeURL(ValueError):
    """The URL may not be used as an endpoint: the message says why, for a person."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"the host {host!r} does not resolve: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def configured_resolver(config: Mapping[str, Any]) -> Resolver:
    """The system resolver, with HUB_FEED_RESOLVE's fixed answers (`host=ip`) taking precedence."""
    fixed: dict[str, list[str]] = {}
    for item in split(str(config.get("FEED_RESOLVE") or "")):
        host, _, address = item.partition("=")
        fixed.setdefault(host.lower(), []).append(address)

    def resolve(host: str, port: int) -> list[str]:
        return fixed.get(host.lower()) or system_resolver(host, port)
    return resolve


def allowed(config: Mapping[str, Any], host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for item in split(str(config.get("FEED_ALLOW") or "")):
        if item.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeURL naming what is wrong."""
    if not isinstance(url, str) or len(url) > 2000:
        raise UnsafeURL("must be an http or https URL of at most 2000 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("must be an http or https URL")
    if not parts.hostname:
        raise UnsafeURL("has no host")
    if parts.username or parts.password:
        raise UnsafeURL("may not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("has an invalid port") from None
    return parts.scheme, parts.hostname, port


def check(url: str, config: Mapping[str, Any], resolver: Resolver | None = None) -> list[str]:
    """The addresses the URL reaches, all public (or allowlisted); UnsafeURL otherwise."""
    _, host, port = parse(url)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(a) for a in (resolver or configured_resolver(config))(host, port)]
    if not addresses:
        raise UnsafeURL(f"the host {host!r} does not resolve")
    for address in addresses:
        if allowed(config, host, address):
            continue
        if address in METADATA or not address.is_global or address.is_multicast:
            kind = ("a cloud metadata" if address in METADATA else "a loopback" if address.is_loopback
                    else "a link-local" if address.is_link_local else "a private or reserved")
            raise UnsafeURL(f"{host} resolves to {kind} address ({address}); only public addresses are "
                            "allowed unless HUB_FEED_ALLOW lists it")
    return [str(a) for a in addresses]
