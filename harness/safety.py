"""Where load and faults may go: loopback, unless the user names another host.

feedlab sends load and injects faults; pointed at the wrong address it is a denial-of-service
tool. So a target outside this machine is refused unless the user opted in for that very host
by name on the command line (`--allow-host NAME`), and the opt-in covers the name as written,
not whatever else it resolves to or a different spelling of it. Loopback is 127.0.0.0/8 and
::1, given as an address or as a name that resolves only to them (`localhost`).

A loopback target is pinned: every client (the probes, the read-backs, the Toxiproxy the load
goes through) uses the address checked, never the name again, so a name cannot resolve to
loopback when checked and elsewhere when used. Addresses must be written in full: `127.1`,
`2130706433` or `0x7f000001` mean 127.0.0.1 to the C library but a host name to Toxiproxy.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolve = Callable[[str], list[str]]


class UnsafeTarget(ValueError):
    """A target the harness must not send load or faults to (or cannot parse)."""


def _resolve(host: str) -> list[str]:
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
    except socket.gaierror as exc:
        raise UnsafeTarget(f"{host!r} does not resolve ({exc.strerror})") from None


def is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TargetUrl:
    """A feed service's base URL, checked: `http(s)://host[:port][/prefix]`."""

    scheme: str
    host: str           # a loopback target's checked address; another host's name, as allowed
    port: int
    prefix: str         # "" or "/path" without a trailing slash
    loopback: bool      # every address it resolves to is loopback
    given: str = ""     # the URL as the user wrote it

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.prefix}"

    def through(self, listen: str) -> str:
        """The same service reached through a proxy listening at `listen` ("127.0.0.1:port")."""
        return f"{self.scheme}://{listen}{self.prefix}"


def check_target(url: str, allow_hosts: Iterable[str] = (), *, flag: str = "--target",
                 resolve: Resolve = _resolve) -> TargetUrl:
    """`url` parsed and judged safe, or UnsafeTarget saying why and what to do about it."""
    allowed = {h.strip().lower().strip("[]").rstrip(".") for h in allow_hosts if h.strip()}
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"{flag} {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget(f"{flag} {url!r}: the scheme must be http or https, not {parts.scheme or 'missing'!r}")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeTarget(f"{flag} {url!r}: no host")
    if port == 0:
        raise UnsafeTarget(f"{flag} {url!r}: port 0 is no service's port")
    if _legacy_numeric(host):
        raise UnsafeTarget(f"{flag} {url!r}: write the address in full (dotted quad or IPv6), not {host!r}")
    if parts.username or parts.password:
        raise UnsafeTarget(f"{flag} {url!r}: credentials in the URL are not supported (give a token source)")
    if parts.query or parts.fragment:
        raise UnsafeTarget(f"{flag} {url!r}: a base URL takes no query or fragment")
    prefix = parts.path.rstrip("/")
    addresses = resolve(host)
    loopback = bool(addresses) and all(is_loopback_address(a) for a in addresses)
    if not loopback and host not in allowed:
        where = ", ".join(addresses) or "nothing"
        raise UnsafeTarget(
            f"{flag} {url!r}: {host} is not this machine's loopback (it resolves to {where}). feedlab sends "
            f"load and faults to loopback only; to aim it at {host}, which you own, add --allow-host {host}")
    if loopback:   # pinned: IPv4 first, as the reference stack binds it
        host = sorted(addresses, key=lambda a: (":" in a, a))[0].split("%", 1)[0]
    default_port = 443 if parts.scheme == "https" else 80
    return TargetUrl(parts.scheme, host, default_port if port is None else port, prefix, loopback, url)


def _legacy_numeric(host: str) -> bool:
    """A number the C library takes for an IPv4 address that is not written as one (`127.1`)."""
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
        return True
    except OSError:
        return False
