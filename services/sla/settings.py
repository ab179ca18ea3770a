"""The sla service's configuration, from environment variables only."""

import socket

from pydantic import Field

from ticketstream_shared.runtime.settings import ServiceSettings


class SlaSettings(ServiceSettings):
    http_port: int = Field(default=8002, ge=1, le=65535)
    consumer_group: str = "sla"
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0, description="Finishing the batch in hand on SIGTERM.")
    session_timeout_seconds: float = Field(
        default=10.0,
        ge=1,
        le=300,
        description="How long the group waits for a silent replica before its partitions go to another (a standby "
        "with their clocks warm): alarms due meanwhile are late by up to this. The broker's "
        "group.min.session.timeout.ms must allow it (6 s by default).",
    )
    peer_probe_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="How often each other replica's presence port is probed (0: never). A replica whose process is "
        "gone (nothing listens on its presence port or its HTTP port) is removed from the group at once, without "
        "waiting for its session timeout; one that does not answer is left to the session timeout.",
    )
    advertised_url: str | None = Field(
        default=None,
        description="How the other sla replicas reach this one's HTTP API, e.g. http://$(POD_IP):8002. By default "
        "http://<HTTP_HOST>:<HTTP_PORT>, with the host name when listening on every interface.",
    )

    @property
    def own_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = socket.gethostname() if self.http_host in ("0.0.0.0", "::") else self.http_host
        return f"http://{host}:{self.http_port}"
