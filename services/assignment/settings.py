"""The assignment service's configuration, from environment variables only."""

from pydantic import Field

from ticketstream_shared.runtime.settings import GroupMemberSettings, PrivacySettings


class AssignmentSettings(GroupMemberSettings, PrivacySettings):
    http_port: int = Field(default=8003, ge=1, le=65535)
    consumer_group: str = "assignment"
