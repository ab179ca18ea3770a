"""JSON logs on stdout, each line carrying the service name and the correlation id of the work at hand."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

#: The correlation id of the request or event being handled; set by the HTTP and Kafka edges.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

#: The correlation ids of a batch of several flows being handled: logged, never passed on in headers (each event
#: made from such a batch carries its own flow's id in its payload).
_batch_ids: ContextVar[str | None] = ContextVar("batch_correlation_ids", default=None)
#: A batch of many flows logs at most this many of their ids on each line.
BATCH_IDS_LOGGED = 20


@contextmanager
def correlated(ids: Iterable[str | None]) -> Iterator[None]:
    """Log lines written inside carry the correlation id of the work at hand, so that one id finds every line of a
    flow across services. One flow's id is also what Kafka headers written inside carry; a batch of several flows
    logs their distinct ids, comma-separated (searching for one still finds the line), and passes none on.
    Whatever was set before is restored on exit."""
    distinct: list[str] = []
    for each in ids:  # read only until enough are found: a batch of 20,000 events has its first 20 flows early
        if each and each not in distinct:
            distinct.append(each)
            if len(distinct) == BATCH_IDS_LOGGED:
                break
    single = distinct[0] if len(distinct) == 1 else None
    several = ",".join(distinct) if len(distinct) > 1 else None
    token, batch_token = correlation_id.set(single), _batch_ids.set(several)
    try:
        yield
    finally:
        correlation_id.reset(token)
        _batch_ids.reset(batch_token)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id.get() or _batch_ids.get()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{correlation_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn's access log repeats what /metrics counts; keep its errors only.
    logging.getLogger("uvicorn.access").setLevel("WARNING")
