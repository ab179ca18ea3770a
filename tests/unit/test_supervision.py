"""A service whose background work dies stops itself (SIGTERM, so it shuts down in order), unless it was stopping
anyway or the work was cancelled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails


@contextmanager
def terms_received() -> Iterator[list[int]]:
    """SIGTERMs this process receives meanwhile (instead of ending it)."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


async def ended(work: asyncio.Task[None]) -> None:
    await asyncio.wait([work])
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop


def supervised(coroutine_function: Callable[[], Coroutine[Any, Any, None]], stopping: bool = False) -> list[int]:
    async def story() -> None:
        work = asyncio.create_task(coroutine_function(), name="work")
        stop_the_service_if_it_fails(work, lambda: stopping)
        await ended(work)

    with terms_received() as received:
        asyncio.run(story())
    return received


async def failing() -> None:
    raise RuntimeError("a defect")


async def finishing() -> None:
    pass


async def cancelled() -> None:
    raise asyncio.CancelledError


def test_work_failing_while_the_service_runs_stops_the_service() -> None:
    assert supervised(failing) == [signal.SIGTERM]


def test_work_failing_while_the_service_stops_anyway_sends_nothing_more() -> None:
    assert supervised(failing, stopping=True) == []


def test_work_that_ends_or_is_cancelled_stops_nothing() -> None:
    assert supervised(finishing) == []
    assert supervised(cancelled) == []
