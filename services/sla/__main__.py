"""`python -m sla`: run the sla service as configured by the environment."""

from ticketstream_shared.runtime.http import run_service

from .app import build_app
from .settings import SlaSettings

run_service("sla", SlaSettings, build_app)
