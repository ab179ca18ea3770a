"""`python -m intake`: run the intake service as configured by the environment."""

from ticketstream_shared.runtime.http import run_service

from .app import build_app
from .settings import IntakeSettings

run_service("intake", IntakeSettings, build_app)
