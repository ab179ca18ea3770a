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


class _RetriedKafkaErrors(logging.Filter):
    """aiokafka logs as errors what it retries by itself: a broker not reachable yet, a topic not created yet, a
    partition's leader or a group's coordinator not elected yet (about 280 such errors in the first minute of `make
    run` beside a new broker). The service tells when such a wait lasts (its own warnings while it waits, /readyz),
    so they are warnings here, and an operator's alert on errors stays for what needs a person. Any other error of
    aiokafka's, and one of these carrying an error Kafka does not call retriable, stays an error."""

    _RETRIED = ("Unable connect to", "Unable to update metadata", "Topic %s not found in cluster metadata")
    _RETRIED_IF_RETRIABLE = (
        "Failed fetch offsets from",
        "Failed fetch messages from",
        "Heartbeat send request failed",
        "Group Coordinator Request failed",
        "FindCoordinator Request failed",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith("aiokafka") and self._retried(record):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True

    def _retried(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(self._RETRIED):
            return True
        if message.startswith(self._RETRIED_IF_RETRIABLE) and isinstance(record.args, tuple):
            return any(getattr(arg, "retriable", False) for arg in record.args)
        return False


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_RetriedKafkaErrors())
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
