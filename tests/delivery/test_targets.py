"""URL rules and the address policy."""

from __future__ import annotations

import ipaddress

import pytest

from hookline.domain.targets import (
    check_webhook_url,
    is_forbidden_address,
    parse_host_ip,
    split_secret_query,
)
from hookline.errors import InvalidUrl

# (URL host, why it must be refused at create time)
PRIVATE_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("localhost", "local name"),
    ("LOCALHOST.", "local name"),
    ("api.localhost", "local name"),
    ("printer.local", "local name"),
    ("metadata.google.internal", "local name"),
    ("[::1]", "loopback"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("[::]", "unspecified"),
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("[fd00::1]", "unique-local"),
    ("[fc00::1]", "unique-local"),
    ("[fe80::1]", "link-local"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
    ("[::ffff:a9fe:a9fe]", "IPv4-mapped link-local"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 link-local"),
    ("[2002:7f00:1::]", "6to4 loopback"),
    ("224.0.0.1", "multicast"),
    ("[ff02::1]", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "documentation"),
    ("[2001:db8::1]", "documentation"),
    ("198.18.0.1", "benchmarking"),
    # odd IPv4 spellings of 127.0.0.1 / 10.0.0.1 / 169.254.169.254
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("0", "unspecified"),
    ("012.0.0.1", "private"),
    ("0xA9.0xFE.0xA9.0xFE", "link-local"),
    ("2852039166", "link-local"),
]


@pytest.mark.parametrize(("host", "reason"), PRIVATE_HOSTS)
def test_private_targets_are_refused_at_create(host: str, reason: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        check_webhook_url(f"https://{host}/hook", allow_private=False)
    assert reason in info.value.message
    assert info.value.to_body()["code"] == "invalid_url"
    assert info.value.to_body()["data"] == {"status": 400, "field": "url"}


@pytest.mark.parametrize(("host", "reason"), PRIVATE_HOSTS)
def test_private_targets_are_allowed_on_the_local_stack(host: str, reason: str) -> None:
    url = f"https://{host}:8080/hook"
    assert check_webhook_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://api.example.com:8443/a/b?x=1&y=2",
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://bücher.example/hook",
        "https://EXAMPLE.com./hook",
        "  https://example.com/padded  ",
    ],
)
def test_public_https_targets_are_accepted(url: str) -> None:
    assert check_webhook_url(url, allow_private=False) == url.strip()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/hook", "HTTPS"),
        ("ftp://example.com/hook", "HTTPS"),
        ("example.com/hook", "absolute"),
        ("/hook", "absolute"),
        ("https:///hook", "absolute"),
        ("https://user:pw@example.com/hook", "user name"),
        ("https://user@example.com/hook", "user name"),
        ("https://example.com/" + "a" * 2048, "2048"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/\nx", "control"),
        ("https://example.com:99999/", "not valid"),
        ("https://example.com:0/", "port"),
        ("https://intranet/hook", "fully qualified"),
        ("https://exa_%41mple.com/", "not a valid host"),
        ("https://1.2.3.4.5/", "not a valid IP"),
        ("https://256.1.1.1/", "not a valid IP"),
        ("https://[not-v6]/", "not valid"),
        ("", "required"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        check_webhook_url(url, allow_private=False)
    assert message in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000/_inspect/a",
        "http://localhost:8080/",
        "http://[::1]:9/",
        "http://127.1/",
    ],
)
def test_plain_http_is_allowed_only_to_loopback_on_the_local_stack(url: str) -> None:
    with pytest.raises(InvalidUrl, match="HTTPS"):
        check_webhook_url(url, allow_private=False)
    assert check_webhook_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.5/", "http://intranet/"])
def test_plain_http_elsewhere_is_refused_even_on_the_local_stack(url: str) -> None:
    with pytest.raises(InvalidUrl, match="HTTPS"):
        check_webhook_url(url, allow_private=True)


def test_url_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    url = base + "a" * (2048 - len(base))
    assert check_webhook_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1.65535", "10.1.255.255"),
        ("0", "0.0.0.0"),  # noqa: S104
        ("1.2.3.4.", "1.2.3.4"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("1.2.3.256", None),
        ("08.0.0.1", None),
        ("0x100.0.0.1", None),
        ("4294967296", None),
        ("1..2", None),
        ("", None),
        ("[zz::1]", None),
    ],
)
def test_parse_host_ip_reads_what_resolvers_read(text: str, expected: str | None) -> None:
    parsed = parse_host_ip(text)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("0.0.0.0", "unspecified address"),  # noqa: S104
        ("::", "unspecified address"),
        ("10.0.0.5", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.0.1", "private address"),
        ("100.64.0.1", "carrier-grade NAT address"),
        ("169.254.169.254", "link-local address"),
        ("fe80::1", "link-local address"),
        ("fd00::1", "unique-local address"),
        ("fc12::1", "unique-local address"),
        ("224.0.0.251", "multicast address"),
        ("ff05::2", "multicast address"),
        ("192.0.2.1", "documentation address"),
        ("198.51.100.1", "documentation address"),
        ("203.0.113.1", "documentation address"),
        ("2001:db8::1", "documentation address"),
        ("198.18.0.1", "benchmarking address"),
        ("240.0.0.1", "reserved address"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback address"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local address"),
        ("::ffff:0:127.0.0.1", "IPv4-translated loopback address"),
        ("::ffff:0:10.0.0.1", "IPv4-translated private address"),
        ("64:ff9b::10.0.0.1", "NAT64 private address"),
        ("2002:0a00:0001::1", "6to4 private address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("fec0::1", "site-local address"),
    ],
)
def test_forbidden_addresses_name_their_reason(address: str, reason: str) -> None:
    found = is_forbidden_address(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:0808:0808::1",
    ],
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "clean", "secret"),
    [
        ("https://x.example/api/webhook?sk=s3cr3t", "https://x.example/api/webhook", "s3cr3t"),
        ("https://x.example/h?a=1&sk=abc&b=2", "https://x.example/h?a=1&b=2", "abc"),
        ("https://x.example/h?sk=a%2Bb%3D", "https://x.example/h", "a+b="),
        ("https://x.example/h?a=%20x&sk=k#frag", "https://x.example/h?a=%20x#frag", "k"),
        ("https://x.example/h?sk=&a=1", "https://x.example/h?a=1", None),
        ("https://x.example/h?sk=first&sk=second", "https://x.example/h", "first"),
        ("https://x.example/h?skip=1", "https://x.example/h?skip=1", None),
        ("https://x.example/h", "https://x.example/h", None),
    ],
)
def test_split_secret_query(url: str, clean: str, secret: str | None) -> None:
    assert split_secret_query(url) == (clean, secret)
