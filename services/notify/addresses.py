"""Where webhooks may point: http(s) only, and no private, loopback or link-local address unless the operator
allows it (NOTIFY_ALLOWED_HOSTS), so a webhook cannot be used to reach the inside of the network.

The name is checked when the webhook is saved and every address it resolves to is checked again before each
delivery (a name may come to resolve elsewhere later).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What a webhook's URL is kept as (WebhookData.url): one it refuses is refused when the webhook is saved.
_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


class AddressRefused(Exception):
    """A webhook URL notify will not call; the message says why, in words for the caller."""


@dataclass(frozen=True)
class AllowedHosts:
    names: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, setting: str) -> AllowedHosts:
        names, networks = set(), []
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.add(item.lower())
        return cls(frozenset(names), tuple(networks))

    def _allows(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return host.lower() in self.names or any(address in network for network in self.networks)

    def check_url(self, url: str) -> str:
        """The URL's host, if the URL may be saved (an address literal is checked at once)."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (a port that is no number, or out of range, raises)
        except ValueError as error:
            raise AddressRefused(f"not a URL: {error}") from None
        if parts.scheme not in ("http", "https"):
            raise AddressRefused("only http and https URLs are called")
        if not parts.hostname:
            raise AddressRefused("the URL names no host")
        if parts.username or parts.password:
            raise AddressRefused("credentials in the URL are not accepted: the signature authenticates deliveries")
        try:
            _URL.validate_python(url)
        except ValidationError as error:
            raise AddressRefused(error.errors()[0]["msg"]) from None
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return parts.hostname
        self._check(parts.hostname, literal)
        return parts.hostname

    async def check_resolved(self, url: str) -> None:
        """Before a delivery: every address the host resolves to must be allowed."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise AddressRefused(f"{host} does not resolve: {error.strerror or error}") from None
        for *_, sockaddr in found:
            self._check(host, ipaddress.ip_address(sockaddr[0]))

    def _check(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        inside = (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        )
        if inside and not self._allows(host, address):
            raise AddressRefused(
                f"{host} is a private, loopback or link-local address ({address}); an operator may allow it "
                "in NOTIFY_ALLOWED_HOSTS"
            )
