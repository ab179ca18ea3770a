"""The worklog ledger: signed rows whose plain sums are the hours per client, exact under corrections, voids and
redelivery without FINAL (deploy/clickhouse/010_worklog_ledger.sql).

A worklog event is applied at most once: only if its aggregate_version is newer than that of the worklog's newest
ledger row. Applying it writes +1 with the new values, and -1 with the values of the version it replaces if that
version counted; a void of a worklog that did not count writes a 0 row, so that a late recording of it is known to
be superseded. Which events were applied is read from the ledger itself, and a batch's rows are one insert, so the
sums and the record of what they contain cannot disagree after a crash.

Pure: the caller supplies the newest ledger row of the worklogs it is about to apply (see projector.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from .worklogs import WorklogRow


class LedgerRow(NamedTuple):
    """worklog_ledger: one signed contribution of one worklog version to the sums."""

    client_id: str
    ticket_id: str
    worklog_id: uuid.UUID
    aggregate_version: int
    sign: int
    technician_id: str
    performed_at: datetime
    billable: bool
    minutes: int
    business_minutes: int
    event_id: uuid.UUID
    partition: int
    offset: int

    @property
    def counts(self) -> bool:
        """Whether, as a worklog's newest row, it says the worklog counts (not voided)."""
        return self.sign == 1


def ledger_rows(newest: LedgerRow | None, worklog: WorklogRow) -> list[LedgerRow]:
    """The rows that apply one worklog version on top of the worklog's newest ledger row; none if that row is of
    this version or a newer one (a redelivery, or an event arriving after one that superseded it). The last row
    returned is the worklog's newest row from then on."""
    if newest is not None and newest.aggregate_version >= worklog.aggregate_version:
        return []
    written_by: dict[str, Any] = {
        "aggregate_version": worklog.aggregate_version,
        "event_id": worklog.event_id,
        "partition": worklog.partition,
        "offset": worklog.offset,
    }
    rows = []
    if newest is not None and newest.counts:
        cancelled: dict[str, Any] = {
            "sign": -1,
            "minutes": -newest.minutes,
            "business_minutes": -newest.business_minutes,
        }
        rows.append(newest._replace(**cancelled, **written_by))
    if not worklog.voided or not rows:
        counted = 0 if worklog.voided else 1
        rows.append(
            LedgerRow(
                client_id=worklog.client_id,
                ticket_id=worklog.ticket_id,
                worklog_id=worklog.worklog_id,
                sign=counted,
                technician_id=worklog.technician_id,
                performed_at=worklog.performed_at,
                billable=worklog.billable,
                minutes=worklog.minutes * counted,
                business_minutes=worklog.business_minutes * counted,
                **written_by,
            )
        )
    return rows


def ledger_rows_of(worklogs: Iterable[WorklogRow], newest: Mapping[uuid.UUID, LedgerRow]) -> list[LedgerRow]:
    """The rows of a batch of worklog versions, in the order read, given the newest ledger row (before the batch)
    of each worklog that has one; a worklog changed twice in the batch is applied on top of its first change."""
    newest_now = dict(newest)
    rows: list[LedgerRow] = []
    for worklog in worklogs:
        if written := ledger_rows(newest_now.get(worklog.worklog_id), worklog):
            newest_now[worklog.worklog_id] = written[-1]
            rows += written
    return rows
