"""Intake's configuration, from environment variables only."""

from pydantic import Field

from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.runtime.settings import GroupMemberSettings, PrivacySettings


class IntakeSettings(GroupMemberSettings, PrivacySettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    inbound_group: str = Field(default="intake-inbound", description="Consumer group of tickets.inbound.")
    owners_group: str = Field(default="intake-owners", description="Consumer group deciding who owns which tickets.")
    reopen_window_days: int = Field(default=14, ge=0, description="How long a closed ticket may be reopened.")
    idempotency_key_ttl_hours: int = Field(
        default=168,
        ge=1,
        description="How long a request key (Idempotency-Key, an inbound request_id) stays bound to its first request: "
        "a retry within it is answered with the first outcome, another request under the key is a 409.",
    )
    portal_category: Identifier = Field(
        default="general",
        description="The category of a request a requester opens on intake's page under none of the catalogue's "
        "services (route it in assignment).",
    )
    ticket_cache: int = Field(
        default=10_000,
        ge=1,
        description="How many recently used tickets intake keeps in memory besides its local store (about 6 KB each).",
    )
