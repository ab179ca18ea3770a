"""`python -m reporting`: the reporting service, configured from environment variables (see settings.py)."""

from ticketstream_shared.runtime.http import run_service

from .app import build_app
from .settings import ReportingSettings

if __name__ == "__main__":
    run_service("reporting", ReportingSettings, build_app)
