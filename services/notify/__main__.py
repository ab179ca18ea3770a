"""`python -m notify`: run the notify service as configured by the environment."""

from ticketstream_shared.runtime.http import run_service

from .app import build_app
from .settings import NotifySettings

run_service("notify", NotifySettings, build_app)
