"""`python -m reporting`: the reporting service; `python -m reporting rebuild`: rebuild its tables from the topics.

Both are configured from environment variables (see settings.py).
"""

import argparse
import asyncio
import json
from dataclasses import asdict

from ticketstream_shared.runtime.http import run_service
from ticketstream_shared.runtime.logging import configure_logging

from .app import build_app
from .rebuild import rebuild
from .settings import ReportingSettings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m reporting", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve", "rebuild"], default="serve")
    if parser.parse_args().command == "rebuild":
        settings = ReportingSettings()
        configure_logging("reporting", settings.log_level)
        print(json.dumps(asdict(asyncio.run(rebuild(settings)))))
    else:
        run_service("reporting", ReportingSettings, build_app)
