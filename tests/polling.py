"""Waiting for something asynchronous to become true, with a deadline: never a fixed sleep."""

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
