"""A key's restrictions, as checked on a call: which models, from which addresses and origins, until when.

Each check is a pure function of the key's settings and what the request says, compiled once per distinct
setting (a key's tuple of patterns is cached, so a call pays a lookup, not a parse). Validation of the settings
themselves (what the keys API accepts) lives here too, so that what is stored is what is checked.

- `allowed_models`: exact ids and globs, where `*` matches any run of characters (`anthropic/*`,
  `*/llama-3*`); nothing else is special. Checked after the body names the model (shared/routing/plan.py).
- `allowed_ips`: CIDRs or single addresses, IPv4 and IPv6; an IPv4-mapped IPv6 client (`::ffff:10.0.0.1`)
  is matched as its IPv4 address. The client address is the socket's or API Gateway's (see `client_address`).
- `allowed_origins`: `scheme://host[:port]`, or `scheme://*.host` for any subdomain (not the host itself).
  Matched against `Origin`, else the origin of `Referer`/`HTTP-Referer`; a call with neither is refused.
- `expires_at`: ISO 8601 in UTC; the key is refused from that instant on.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterable
from urllib.parse import urlsplit

from shared.governance import regions

MAX_PATTERNS = 100
_MODEL_PATTERN = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9._:/@*+-]{0,199}$")
_HOST = re.compile(r"^[a-z0-9_.-]+$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- validation (the keys API) ------------------------------------------------------------------------------

def model_pattern(value: str) -> str:
    if not _MODEL_PATTERN.match(value) or "**" in value:
        raise ValueError(f"{value!r} is not a model id or glob (letters, digits, ._:/@+- and * only)")
    return value


def network(value: str) -> str:
    """A CIDR in its normal form (`10.0.0.7/8` → `10.0.0.0/8`; an address → its /32 or /128). IPv4-mapped IPv6
    networks (`::ffff:10.0.0.0/104`) are stored as their IPv4 network, which is how a mapped client is matched."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR") from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 \
            and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    return str(net)


def _host(host: str) -> str | None:
    """A URL's host in the form origins are compared in: lower case, IDNA (punycode) for non-ASCII names,
    IPv6 addresses in brackets; None for a host no browser sends (`*`, spaces, empty labels, over 253)."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host.split('%', 1)[0])}]"
        except ValueError:
            return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.lower()
    if not host or len(host) > 253 or not _HOST.match(host) or "" in host.split("."):
        return None
    return host


def origin(value: str) -> str:
    """An origin pattern in its normal form: lower-case scheme and host, no path, no default port."""
    raw = value.strip()
    wildcard = "://*." in raw
    try:
        parts = urlsplit(raw.replace("://*.", "://", 1) if wildcard else raw)
        host, port = _host(parts.hostname or ""), parts.port
    except ValueError:
        host = port = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password or (wildcard and "[" in host):
        raise ValueError(f"{value!r} is not an origin: scheme://host[:port], or scheme://*.host for subdomains")
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{'*.' if wildcard else ''}{host}{suffix}"


def region(value: str) -> str:
    """A residency region, as the catalog's regions are spelled (shared/governance/regions.py)."""
    return regions.region(value)


def timestamp(value: str) -> str:
    """ISO 8601 with a UTC offset (or none: UTC), stored as `YYYY-MM-DDTHH:MM:SSZ`."""
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time (e.g. 2027-01-01T00:00:00Z)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    try:
        at = at.astimezone(timezone.utc)
        at.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"{value!r} is out of range (years 1970 to 9999, UTC)") from None
    if at.year < 1970:
        raise ValueError(f"{value!r} is out of range (years 1970 to 9999, UTC)")
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# -- checks (a call) ----------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _model_matcher(patterns: tuple[str, ...]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    exact = frozenset(p for p in patterns if "*" not in p)
    globs = [p for p in patterns if "*" in p]
    regex = re.compile("|".join("(?:" + ".*".join(map(re.escape, g.split("*"))) + ")" for g in globs)) \
        if globs else None
    return exact, regex


def model_allowed(patterns: tuple[str, ...], model_id: str) -> bool:
    exact, regex = _model_matcher(patterns)
    return model_id in exact or (regex is not None and regex.fullmatch(model_id) is not None)


@lru_cache(maxsize=4096)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
        return True
    except ValueError:
        return False


def ip_allowed(cidrs: tuple[str, ...], address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in _networks(cidrs))


def origin_of(value: str | None) -> str | None:
    """The normal origin of an `Origin` or `Referer` header value, or None when it names none."""
    if not value or value == "null":
        return None
    try:
        parts = urlsplit(value.strip()[:2000])
        host, port = _host(parts.hostname or ""), parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}{f':{port}' if port and port != default else ''}"


def origin_forms(origin: str) -> list[str]:
    """The patterns that would allow `origin`: itself and its `*.` forms (`https://*.b.app.com`, ...)."""
    scheme, _, rest = origin.partition("://")
    if rest.startswith("["):  # an IPv6 address has no subdomains
        return [origin]
    host, _, port = rest.partition(":")
    suffix = f":{port}" if port else ""
    labels = host.split(".")
    return list(dict.fromkeys([origin, *(f"{scheme}://*.{'.'.join(labels[i:])}{suffix}"
                                         for i in range(1, len(labels)))]))


def origin_allowed(patterns: tuple[str, ...], found: str | None) -> bool:
    if found is None:
        return False
    return found in patterns or any(f in patterns for f in origin_forms(found)[1:])


@lru_cache(maxsize=4096)
def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
