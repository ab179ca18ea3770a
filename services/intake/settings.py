"""Intake's configuration, from environment variables only."""

from pydantic import Field

from ticketstream_shared.runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
