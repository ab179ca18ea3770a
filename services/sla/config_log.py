"""sla.config as the log of every calendar, policy and client agreement change (the shared ConfigLog): changes
read before the log's end at start-up are history (clocks meet them in event time); after, each is also swept
over the running clocks.

A change whose event id was read already (the same PUT taken by two replicas at once, or retried after a timeout:
its id derives from what it changes, see api.py) is skipped by every reader: it is no new version.
"""

from __future__ import annotations

from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.sla import SlaConfigEvent
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.config_log import ConfigLog

from .timekeeper import Timekeeper


def config_key(change: SlaConfigEvent) -> bytes:
    """'<event type>/<id>', so a change's history can be told from the key alone."""
    return f"{change.event_type}/{change.subject}".encode()


def sla_config_log(timekeeper: Timekeeper) -> ConfigLog[SlaConfigEvent]:
    def apply(change: SlaConfigEvent, live: bool) -> bool:
        if timekeeper.agreements.knows(change):
            return False  # a twin: neither a version nor worth a sweep of the clocks
        if live:
            timekeeper.record_change(change)
        else:
            timekeeper.agreements.apply(change)
        return True

    return ConfigLog(SLA_CONFIG, decode_sla_config_change, apply, "sla")
