"""Where webhooks may point: http(s) to public addresses, and inside the network only where the operator allows it
(NOTIFY_ALLOWED_HOSTS). check_resolved resolves names through the system resolver: localhost is in /etc/hosts and
a name under .invalid never resolves (RFC 6761), so no test waits on the network."""

from __future__ import annotations

import asyncio
import re

import pytest

from notify.addresses import AddressRefused, AllowedHosts

NOTHING_ALLOWED = AllowedHosts.parse("")
OPERATOR_ALLOWS = AllowedHosts.parse("127.0.0.1, 10.0.0.0/8, intranet.local")

INSIDE = [
    ("http://127.0.0.1/hook", "127.0.0.1"),
    ("http://127.0.0.1:8080/hook", "127.0.0.1"),
    ("http://127.1.2.3/hook", "127.1.2.3"),
    ("http://[::1]:8080/hook", "::1"),
    ("http://10.0.0.1/hook", "10.0.0.1"),
    ("https://10.255.1.2/hook", "10.255.1.2"),
    ("http://192.168.1.10/hook", "192.168.1.10"),
    ("http://172.16.0.5/hook", "172.16.0.5"),
    ("http://172.31.255.254/hook", "172.31.255.254"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://0.0.0.0:8080/hook", "0.0.0.0"),
    ("http://[fe80::1]/hook", "fe80::1"),
    ("http://[fd00::1]/hook", "fd00::1"),
    ("http://[::]/hook", "::"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
    ("http://224.0.0.1/hook", "224.0.0.1"),
]


def test_parse_tells_names_from_networks():
    allowed = AllowedHosts.parse(" 127.0.0.1, 10.0.0.0/8 ,Intranet.Local,, ::1 ")

    assert allowed.names == frozenset({"intranet.local"})
    assert [str(network) for network in allowed.networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "file:///etc/passwd", "gopher://example.com/", "example.com/hook", "//example.com/x"],
)
def test_only_http_and_https_are_called(url: str):
    with pytest.raises(AddressRefused, match="http and https"):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize("url", ["http://", "https:///path", "http://:8080/hook"])
def test_a_url_without_host_is_refused(url: str):
    with pytest.raises(AddressRefused, match="no host"):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://[::1/hook", "not a URL: Invalid IPv6 URL"),
        ("https://example.com:abc/", "not a URL: Port could not be cast"),
        ("https://example.com:99999/", "not a URL: Port out of range"),
        ("https://exa mple.com/", "invalid international domain name"),
    ],
)
def test_what_is_no_url_is_refused_saying_why(url: str, why: str):
    """Each was a 500 when a webhook was put (and a port would have failed each delivery)."""
    with pytest.raises(AddressRefused, match=re.escape(why)):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://user:pass@example.com/hook", "https://user@example.com/hook", "https://:pass@example.com/hook"],
)
def test_credentials_in_the_url_are_refused(url: str):
    with pytest.raises(AddressRefused, match="credentials"):
        NOTHING_ALLOWED.check_url(url)


@pytest.mark.parametrize(("url", "host"), INSIDE, ids=[host for _, host in INSIDE])
def test_addresses_inside_the_network_are_refused_naming_the_setting(url: str, host: str):
    with pytest.raises(AddressRefused) as refused:
        NOTHING_ALLOWED.check_url(url)

    assert "NOTIFY_ALLOWED_HOSTS" in str(refused.value)
    assert host in str(refused.value)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://93.184.216.34/hook", "93.184.216.34"),
        ("http://8.8.8.8:8080/hook", "8.8.8.8"),
        ("https://[2606:4700:4700::1111]/hook", "2606:4700:4700::1111"),
        ("https://hooks.example.com/ticketstream?x=1", "hooks.example.com"),
        ("https://Hooks.Example.COM/x", "hooks.example.com"),
        ("http://intranet.local/x", "intranet.local"),
        ("http://localhost:8080/x", "localhost"),  # a name: checked on every delivery, once resolved
    ],
)
def test_public_addresses_and_names_are_accepted_returning_the_host(url: str, host: str):
    assert NOTHING_ALLOWED.check_url(url) == host


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hook", "http://10.0.0.1/hook", "https://10.200.3.4/hook", "http://intranet.local/hook"],
)
def test_what_the_operator_allows_is_accepted(url: str):
    assert OPERATOR_ALLOWS.check_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.2/hook", "http://192.168.1.10/hook", "http://169.254.169.254/", "http://[::1]/hook"]
)
def test_allowing_some_inside_addresses_does_not_allow_the_others(url: str):
    with pytest.raises(AddressRefused, match="NOTIFY_ALLOWED_HOSTS"):
        OPERATOR_ALLOWS.check_url(url)


def test_a_name_resolving_inside_is_refused_before_delivery():
    with pytest.raises(AddressRefused) as refused:
        asyncio.run(NOTHING_ALLOWED.check_resolved("http://localhost:8080/x"))

    assert "localhost" in str(refused.value)
    assert "NOTIFY_ALLOWED_HOSTS" in str(refused.value)


def test_a_name_the_operator_allows_is_accepted_before_delivery():
    allowed = AllowedHosts.parse("localhost")

    asyncio.run(allowed.check_resolved("http://localhost:8080/x"))
    asyncio.run(AllowedHosts.parse("LocalHost").check_resolved("http://LOCALHOST/x"))


def test_addresses_are_checked_again_before_delivery():
    asyncio.run(NOTHING_ALLOWED.check_resolved("https://93.184.216.34/hook"))
    asyncio.run(OPERATOR_ALLOWS.check_resolved("http://10.1.2.3:8080/hook"))
    asyncio.run(OPERATOR_ALLOWS.check_resolved("http://127.0.0.1:8080/hook"))
    with pytest.raises(AddressRefused, match="NOTIFY_ALLOWED_HOSTS"):
        asyncio.run(OPERATOR_ALLOWS.check_resolved("http://192.168.0.1/hook"))


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(AddressRefused, match="no-such-host.invalid does not resolve"):
        asyncio.run(NOTHING_ALLOWED.check_resolved("http://no-such-host.invalid/hook"))


@pytest.mark.parametrize("url", ["http://2130706433:8080/x", "http://127.1/x", "http://0x7f.1/x"])
def test_numeric_forms_of_a_loopback_address_are_refused_before_delivery(url: str):
    """Not IP literals to ipaddress, so saved as names; the resolver reads them as 127.0.0.1."""
    with pytest.raises(AddressRefused, match="127.0.0.1"):
        asyncio.run(NOTHING_ALLOWED.check_resolved(url))
