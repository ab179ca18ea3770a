"""`python -m assignment`: run the assignment service as configured by the environment."""

from ticketstream_shared.runtime.http import run_service

from .app import build_app
from .settings import AssignmentSettings

run_service("assignment", AssignmentSettings, build_app)
