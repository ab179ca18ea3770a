"""Waiting for something asynchronous to become true, with a deadline: never a fixed sleep."""

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], *, timeout_s: float = 15.0, interval_s: float = 0.05, what: str = "") -> T:
    """Call `probe` until it returns something truthy and return that; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s}s: {what or probe}; last seen {last!r}")


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Wait, with a deadline, for `condition` to hold, other tasks running meanwhile (the asynchronous
    `eventually`)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {condition}"
        await asyncio.sleep(0.005)
