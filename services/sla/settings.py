"""The sla service's configuration, from environment variables only."""

from pydantic import Field

from ticketstream_shared.runtime.settings import GroupMemberSettings


class SlaSettings(GroupMemberSettings):
    http_port: int = Field(default=8002, ge=1, le=65535)
    consumer_group: str = "sla"
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0, description="Finishing the batch in hand on SIGTERM.")
