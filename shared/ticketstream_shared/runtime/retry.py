"""Waiting out a dependency that is down (Kafka, ClickHouse): the one retry policy of every service, from tenacity.

Only what the caller says means "down" is tried again; anything else is raised at once. A message that cannot be
read or handled has its own way out (its topic's DLQ), and a defect of ours must stop the service loudly
(supervision.py) rather than be retried forever under a misleading log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

#: The first wait after a failure, and the longest: a dependency back from a restart is used again within a second
#: or two, and a long outage costs one attempt (and one log line) every few seconds.
FIRST_WAIT_S = 0.2
LONGEST_WAIT_S = 5.0

#: The errors that mean the dependency is down: classes, or a test of the error.
Down = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def while_down(
    dependency: str,
    down: Down,
    *,
    first_wait_s: float = FIRST_WAIT_S,
    longest_wait_s: float = LONGEST_WAIT_S,
    give_up_after_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncRetrying:
    """Attempts until one succeeds, an error `down` does not cover is raised, or `give_up_after_s` (if given) has
    passed, which raises the last error: `async for attempt in while_down(...): with attempt: ...`, or
    `await while_down(...)(function, *args)`.

    Waits double from `first_wait_s` up to `longest_wait_s`, each with up to `first_wait_s` of random jitter, so that
    replicas that lost the dependency together do not come back in step. Each retry is logged at WARNING with the
    error's class, never its message, which may quote the data at hand. `sleep` replaces asyncio.sleep (e.g. to
    wake up early on shutdown).
    """
    retry = retry_if_exception_type(down) if isinstance(down, type | tuple) else retry_if_exception(down)
    return AsyncRetrying(
        retry=retry,
        wait=wait_exponential_jitter(multiplier=first_wait_s, max=longest_wait_s, jitter=first_wait_s),
        stop=stop_never if give_up_after_s is None else stop_after_delay(give_up_after_s),
        before_sleep=_logged(dependency),
        reraise=True,
        sleep=sleep,
    )


def _logged(dependency: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        code = getattr(error, "code", None)  # ClickHouse's error code, where there is one: names the cause
        log.warning(
            "%s is not available; trying again",
            dependency,
            extra={
                "dependency": dependency,
                "error": type(error).__name__,
                **({"error_code": code} if isinstance(code, int) else {}),
                "attempt": state.attempt_number,
                "retry_in_s": round(state.upcoming_sleep, 3),
            },
        )

    return before_sleep
