"""A service's FastAPI app served over real HTTP, as in production: uvicorn on a port of 127.0.0.1, in a thread of
the test process (so the test can reach into nothing but its URL), ready once /readyz answers 200."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from deploy.kafka.launcher import free_ports
from tests.polling import eventually

#: For tests that fuzz a service served here with hypothesis: its Kafka client shuffles partitions and nodes with the
#: global `random` (aiokafka's fetcher, metadata and connections) in the server's thread while hypothesis draws in
#: the test's, and hypothesis takes any change of that state during a draw for a strategy using `random`. The draws
#: do not depend on it: examples replay the same.
SERVICE_THREAD_USES_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)


@contextmanager
def served(app: FastAPI, *, port: int | None = None, what: str = "the service", timeout_s: float = 60) -> Iterator[str]:
    """Serve `app` on `port` (a free one if None) and yield its base URL once /readyz says ready; on exit uvicorn
    stops accepting and runs the app's lifespan shutdown (consumers leave their groups, producers flush).

    A service whose background work fails stops itself with a SIGTERM to its process (runtime/supervision.py): here
    that is the test process, which would die without a word, its run with it. Meanwhile a SIGTERM stops the
    services served instead, and the test fails on exit, its captured log showing why."""
    if port is None:
        (port,) = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    stopped_itself = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped_itself.set()
        server.should_exit = True
        if callable(previous):  # another service served around this one stops too: which one failed is unknown
            previous(signum, frame)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None

    def ready() -> bool:
        assert thread.is_alive(), f"{what} stopped before it was ready (see the log above)"
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(ready, timeout_s=timeout_s, interval_s=0.1, what=f"{what} ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if main:
            signal.signal(signal.SIGTERM, previous)
    assert not stopped_itself.is_set(), f"{what} stopped itself: its background work failed (the CRITICAL log says why)"
