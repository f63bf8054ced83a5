"""Bootstrap addresses: the rules for one ``host:port`` entry, and splitting a valid one."""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) of a validated bootstrap entry as (host, port)."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def bootstrap_entry_error(entry: str) -> str | None:
    """Why ``entry`` is not a usable ``host:port`` (None when it is)."""
    if "://" in entry:
        scheme = entry.split("://", 1)[0]
        return (
            f"{entry!r} has a scheme; drop '{scheme}://' (the protocol belongs in "
            "KAFKA_SECURITY_PROTOCOL)"
        )
    host, sep, port_text = entry.rpartition(":")
    if not sep:
        return f"{entry!r} has no port; use host:port (e.g. {entry}:9092)"
    if not port_text.isdigit():
        return f"{entry!r} has port {port_text!r}; the port must be a number 1-65535"
    if not 1 <= int(port_text) <= 65535:
        return f"{entry!r} has port {int(port_text)}; the port must be 1-65535"
    if not host:
        return f"{entry!r} has no host; use host:port"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{entry!r} has an invalid IPv6 address {host}"
        return None
    if ":" in host:
        return f"{entry!r}: write an IPv6 address in brackets, e.g. [::1]:9092"
    if not _HOSTNAME.match(host):
        return f"{entry!r} has an invalid host {host!r}"
    return None
