"""Where Hookline may send a request: URL rules and the address policy (pure, no network).

``check_webhook_url`` runs when a webhook is created or updated and refuses what the URL alone
decides. The HTTP attempt checks every address a host name resolves to with
``is_forbidden_address`` right before connecting, so a name that later points inside is refused too.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from hookline.errors import InvalidUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
SECRET_QUERY_PARAM = "sk"

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Checked in order; the first match names the reason. Anything left that Python does not call
# global is refused as well, so this list exists for clear messages, not as the only line.
_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified address"),
    (_V4("127.0.0.0/8"), "loopback address"),
    (_V4("10.0.0.0/8"), "private address"),
    (_V4("172.16.0.0/12"), "private address"),
    (_V4("192.168.0.0/16"), "private address"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT address"),
    (_V4("169.254.0.0/16"), "link-local address"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "documentation address"),
    (_V4("198.51.100.0/24"), "documentation address"),
    (_V4("203.0.113.0/24"), "documentation address"),
    (_V4("198.18.0.0/15"), "benchmarking address"),
    (_V4("192.88.99.0/24"), "reserved address (6to4 relay anycast)"),
    (_V4("224.0.0.0/4"), "multicast address"),
    (_V4("255.255.255.255/32"), "broadcast address"),
    (_V4("240.0.0.0/4"), "reserved address"),
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified address"),
    (_V6("::1/128"), "loopback address"),
    (_V6("::/96"), "reserved address (IPv4-compatible)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 address"),
    (_V6("100::/64"), "discard-only address"),
    (_V6("2001:2::/48"), "benchmarking address"),
    (_V6("2001:db8::/32"), "documentation address"),
    (_V6("3fff::/20"), "documentation address"),
    (_V6("fc00::/7"), "unique-local address"),
    (_V6("fe80::/10"), "link-local address"),
    (_V6("fec0::/10"), "site-local address"),
    (_V6("ff00::/8"), "multicast address"),
)

_MAPPED = _V6("::ffff:0:0/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765, SIIT)
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")

_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_V4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses an IPv6 address carries and that a relay or the kernel would reach."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip in _MAPPED:
        found.append(("IPv4-mapped", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    elif ip in _TRANSLATED:
        found.append(("IPv4-translated", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    elif ip in _NAT64:
        found.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    elif ip in _SIX_TO_FOUR:
        found.append(("6to4", ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)))
    elif ip in _TEREDO:
        server, client = ip.teredo or (None, None)
        if server is not None and client is not None:
            found.append(("Teredo", server))
            found.append(("Teredo", client))
    return found


def is_forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why Hookline must not connect to ``ip`` (e.g. "loopback address"), or None when global."""
    if isinstance(ip, ipaddress.IPv4Address):
        for network, reason in _V4_RULES:
            if ip in network:
                return reason
        return None if ip.is_global else "non-global address"

    for kind, inner in _embedded_v4(ip):
        inner_reason = is_forbidden_address(inner)
        if inner_reason:
            return f"{kind} {inner_reason}"
    if ip in _MAPPED or ip in _NAT64:
        return None  # carries a global IPv4 address; reaching it is reaching that address
    for v6_network, reason in _V6_RULES:
        if ip in v6_network:
            return reason
    return None if ip.is_global else "non-global address"


def _parse_v4_part(text: str) -> int | None:
    if not _V4_PART.match(text):
        return None
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16) if len(text) > 2 else 0
    if len(text) > 1 and text[0] == "0":
        return int(text[1:], 8)
    return int(text)


def _parse_loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """IPv4 in every spelling inet_aton accepts: a, a.b, a.b.c, a.b.c.d; decimal, octal, hex."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_parse_v4_part(part) for part in parts]
    numbers = [v for v in values if v is not None]
    if len(numbers) != len(parts):
        return None
    *head, last = numbers
    if any(value > 0xFF for value in head):
        return None
    if last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for index, part in enumerate(head):
        value |= part << (8 * (3 - index))
    return ipaddress.IPv4Address(value | last)


def parse_host_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a URL host spells, or None for a name.

    Accepts ``[v6]`` with or without brackets, dotted quads and the odd IPv4 spellings
    resolvers take for addresses (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``).
    A single trailing dot is ignored.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if text.endswith("."):
        text = text[:-1]
    if not text:
        return None
    return _parse_loose_ipv4(text)


def _normalize_name(host: str) -> str:
    """The ASCII (IDNA) form of a host name, lower case, without a trailing dot."""
    name = (host[:-1] if host.endswith(".") else host).lower()
    if not name:
        raise InvalidUrl("Webhook URL must include a host.", field="url")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidUrl(
            f"Webhook URL host {host!r} is not a valid host name.", field="url"
        ) from exc
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidUrl(f"Webhook URL host {host!r} is not a valid host name.", field="url")
    if labels[-1].isdigit():
        raise InvalidUrl(f"Webhook URL host {host!r} is not a valid IP address.", field="url")
    return ascii_name


def is_local_name(name: str) -> bool:
    """Names that never leave the machine or the private network."""
    name = name.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES)


def _is_loopback_host(host: str) -> bool:
    ip = parse_host_ip(host)
    if ip is not None:
        return ip.is_loopback or (
            isinstance(ip, ipaddress.IPv6Address)
            and ip.ipv4_mapped is not None
            and ip.ipv4_mapped.is_loopback
        )
    name = _normalize_name(host)
    return name == "localhost" or name.endswith(".localhost")


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """Validate a webhook target URL and return it (surrounding whitespace removed).

    Raises InvalidUrl unless the URL is absolute, https (http only to loopback with
    ``allow_private``), has
    a host and no user info, is at most 2048 characters, and - unless ``allow_private`` - its host
    is neither a non-global IP literal nor a local name (localhost, *.localhost, *.local,
    *.internal, single-label names).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidUrl("Webhook URL is required.", field="url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidUrl(f"Webhook URL must be at most {MAX_URL_LENGTH} characters.", field="url")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidUrl("Webhook URL must not contain spaces or control characters.", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidUrl(f"Webhook URL is not valid: {exc}.", field="url") from exc

    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise InvalidUrl(
            "Webhook URL must be absolute, e.g. https://example.com/hook.", field="url"
        )
    # Plain http only for loopback receivers in the local stack (TLS adds nothing there).
    if scheme != "https" and not (
        scheme == "http" and allow_private and _is_loopback_host(parts.hostname or "")
    ):
        raise InvalidUrl("Webhook URL must use HTTPS protocol.", field="url")
    if "@" in parts.netloc:
        raise InvalidUrl("Webhook URL must not contain a user name or password.", field="url")
    host = parts.hostname or ""
    if not host:
        raise InvalidUrl("Webhook URL must include a host.", field="url")
    if port == 0:
        raise InvalidUrl("Webhook URL port must be between 1 and 65535.", field="url")

    ip = parse_host_ip(host)
    if ip is None and ":" in host:
        raise InvalidUrl(f"Webhook URL host {host!r} is not a valid IPv6 address.", field="url")
    if ip is not None:
        reason = is_forbidden_address(ip)
        if reason and not allow_private:
            raise InvalidUrl(
                f"Webhook URL must point to a public address; {host} is a {reason}.", field="url"
            )
        return url

    name = _normalize_name(host)
    if allow_private:
        return url
    if is_local_name(name):
        raise InvalidUrl(
            f"Webhook URL must point to a public host; {host} is a local name.", field="url"
        )
    if "." not in name:
        raise InvalidUrl(
            f"Webhook URL must use a fully qualified host name, not {host!r}.", field="url"
        )
    return url


def split_secret_query(url: str) -> tuple[str, str | None]:
    """Remove ``sk=<secret>`` from the URL's query and return ``(url, secret)``.

    Peers let users append ``?sk=<secret>`` to the target URL to turn signing on; we store the
    secret apart and never send it. Other parameters keep their order and encoding. The first
    non-empty ``sk`` wins; an empty one is dropped and yields None.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    kept: list[str] = []
    secret: str | None = None
    found = False
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if unquote_plus(name) == SECRET_QUERY_PARAM:
            found = True
            decoded = unquote_plus(value)
            if decoded and secret is None:
                secret = decoded
        else:
            kept.append(piece)
    if not found:
        return url, None
    query = "&".join(piece for piece in kept if piece)
    return urlunsplit(parts._replace(query=query)), secret
