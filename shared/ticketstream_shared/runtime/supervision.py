"""A service's background work ending by an error is the service failing: it says why and stops (SIGTERM to
itself, so it shuts down in order and the orchestrator restarts it), rather than answer health checks while
nothing moves any more."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)


def stop_the_service_if_it_fails(work: asyncio.Task[None], stopping: Callable[[], bool]) -> None:
    """When `work` ends by an error while the service is not stopping, log it and stop the service. (An error
    while stopping surfaces where the lifespan awaits the task.)"""

    def ended(task: asyncio.Task[None]) -> None:
        if stopping() or task.cancelled() or task.exception() is None:
            return
        log.critical("%s stopped; stopping the service", task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)

    work.add_done_callback(ended)
