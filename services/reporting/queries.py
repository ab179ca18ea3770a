"""The SQL of every report: a query model in, the statement and its bound parameters out (pure, no I/O).

Every value a caller gives is bound, never formatted into the SQL. Tables deduplicated by key are read with FINAL,
and filters on the rows FINAL keeps (voided, dates) apply after it: in a subquery, or as plain WHERE on one table,
which ClickHouse evaluates after FINAL's merge for columns outside the sorting key.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any, NamedTuple

from .reports import (
    BacklogQuery,
    CsatQuery,
    Granularity,
    HoursBreakdown,
    HoursPerClientQuery,
    ReportQuery,
    ResponseTimesQuery,
    SlaComplianceQuery,
    WorkloadQuery,
)


class Statement(NamedTuple):
    sql: str
    parameters: dict[str, Any]


#: Statuses that take a ticket out of the backlog.
_DONE = "('resolved', 'closed')"

#: A ticket's current fields, from the argMax states of the tickets table.
_TICKETS = """
    SELECT client_id, ticket_id, argMaxMerge(category) AS category, argMaxMerge(priority) AS priority,
           argMaxMerge(status) AS status, min(created_at) AS created_at
    FROM tickets {where}
    GROUP BY client_id, ticket_id
"""

_IN_RANGE = "{column} >= {{start:DateTime64(3, 'UTC')}} AND {column} < {{end:DateTime64(3, 'UTC')}}"


def _base(query: ReportQuery) -> tuple[dict[str, Any], list[str]]:
    """The interval's parameters, and the client filter if the query names a client."""
    start, end = query.utc_interval()
    parameters: dict[str, Any] = {"start": start, "end": end}
    client_filter = []
    if query.client_id is not None:
        parameters["client_id"] = query.client_id
        client_filter.append("client_id = {client_id:String}")
    return parameters, client_filter


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


@singledispatch
def statement_for(query: ReportQuery) -> Statement:
    raise TypeError(f"no report for {type(query).__name__}")


#: The UTC day a worklog was performed on (the ledger's `day`) -> its period in the report.
_PERIOD = {Granularity.DAY: "day", Granularity.WEEK: "toMonday(day)", Granularity.MONTH: "toStartOfMonth(day)"}

#: The ledger's sums (see 010_worklog_ledger.sql) for all work, billable work only, or non-billable work only:
#: the sums of its hours_by_day projection, because a filter on `billable` would make ClickHouse read every row.
_LEDGER_SUMS = {
    None: ("sum(minutes)", "sumIf(minutes, billable)", "sum(business_minutes)", "sum(sign)"),
    True: ("sumIf(minutes, billable)", "sumIf(minutes, billable)", "sumIf(business_minutes, billable)",
           "sumIf(sign, billable)"),
    False: ("sum(minutes) - sumIf(minutes, billable)", "0", "sum(business_minutes) - sumIf(business_minutes, billable)",
            "sum(sign) - sumIf(sign, billable)"),
}  # fmt: skip


@statement_for.register
def hours_per_client_sql(query: HoursPerClientQuery) -> Statement:
    """Hours per client from the signed worklog ledger: plain sums, exact without FINAL however many times a
    worklog was delivered or corrected. They are summed per ticket first, so that a ticket counts when some of its
    worklogs do, even though their rows may lie in parts not merged yet."""
    parameters: dict[str, Any] = {"first_day": query.from_, "last_day": query.to}
    conditions = ["day >= {first_day:Date32}", "day <= {last_day:Date32}"]
    if query.client_id is not None:
        conditions.append("client_id = {client_id:String}")
        parameters["client_id"] = query.client_id
    if query.technician_id is not None:
        conditions.append("technician_id = {technician_id:String}")
        parameters["technician_id"] = query.technician_id
    keys = ["client_id"]
    per_ticket = ["client_id"]
    if query.granularity is not None:
        keys.append("period")
        per_ticket.append(f"{_PERIOD[query.granularity]} AS period")
    if query.by is HoursBreakdown.TECHNICIAN:
        keys.append("technician_id")
        per_ticket.append("technician_id")
    columns = list(keys)
    worked, billable, business, worklogs = _LEDGER_SUMS[query.billable]
    source = f"""(
            SELECT {", ".join(per_ticket)}, ticket_id,
                   {worked} AS worked, {billable} AS billable_worked, {business} AS business_worked,
                   {worklogs} AS entries
            FROM worklog_ledger
            {_where(conditions)}
            GROUP BY {", ".join(keys)}, ticket_id
            HAVING entries > 0
        ) AS worked_tickets"""
    if query.by is HoursBreakdown.CATEGORY or query.category is not None:
        tickets = _TICKETS.format(where="WHERE client_id = {client_id:String}" if query.client_id else "")
        source += f" LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)"
        if query.category is not None:
            source += " WHERE tickets.category = {category:String}"
            parameters["category"] = query.category
        if query.by is HoursBreakdown.CATEGORY:
            keys.append("category")
            columns.append("ifNull(tickets.category, '') AS category")
    business_hours = ""
    if query.business_hours:
        business_hours = """
            round(sum(business_worked) / 60, 2)                  AS business_hours,
            round((sum(worked) - sum(business_worked)) / 60, 2)  AS outside_business_hours,"""
    sql = f"""
        SELECT
            {", ".join(columns)},
            round(sum(worked) / 60, 2)                  AS hours,
            round(sum(billable_worked) / 60, 2)         AS billable_hours,{business_hours}
            count()                                     AS tickets,
            sum(entries)                                AS worklogs
        FROM {source}
        GROUP BY {", ".join(keys)}
        ORDER BY {", ".join(keys)}
    """
    return Statement(sql, parameters)


@statement_for.register
def sla_compliance_sql(query: SlaComplianceQuery) -> Statement:
    """A clock's outcome is that of its newest policy version, breached over met if both were sent, and counts on
    the day it was decided; priority is the ticket's current one."""
    parameters, conditions = _base(query)
    tickets = _TICKETS.format(where=_where(conditions))
    conditions.append("event_type IN ('sla.met', 'sla.breached')")
    if query.metric is not None:
        conditions.append("metric = {metric:String}")
        parameters["metric"] = query.metric.value
    after = [_IN_RANGE.format(column="decided_at")]
    if query.priority is not None:
        after.append("priority = {priority:String}")
        parameters["priority"] = query.priority.value
    sql = f"""
        SELECT
            client_id,
            ifNull(priority, '')                            AS priority,
            metric,
            countIf(outcome = 'sla.met')                    AS met,
            countIf(outcome = 'sla.breached')               AS breached,
            round(100 * met / (met + breached), 1)          AS compliance_pct
        FROM (
            SELECT client_id, ticket_id, metric,
                   argMax(event_type, (policy_version, event_type = 'sla.breached')) AS outcome,
                   argMax(occurred_at, (policy_version, event_type = 'sla.breached')) AS decided_at
            FROM sla_clock_events FINAL
            {_where(conditions)}
            GROUP BY client_id, ticket_id, metric
        ) AS outcomes
        LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)
        {_where(after)}
        GROUP BY client_id, priority, metric
        ORDER BY client_id, priority, metric
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def response_times_sql(query: ResponseTimesQuery) -> Statement:
    """Wall-clock minutes from creation to the first public comment of a technician (first response) and to the
    first resolution; business-time figures are the SLA report's."""
    parameters, conditions = _base(query)
    client = _where(conditions)
    after = [_IN_RANGE.format(column="created_at")]
    if query.priority is not None:
        after.append("priority = {priority:String}")
        parameters["priority"] = query.priority.value
    percentiles = []
    for name, column in (("first_response", "first_response_at"), ("resolution", "resolved_at")):
        for level in (50, 90, 99):
            percentiles.append(
                f"round(quantileExactIf(0.{level:02d})(dateDiff('second', created_at, {column}), "
                f"{column} IS NOT NULL) / 60, 1) AS {name}_p{level}_minutes"
            )
    comments = _where([*conditions, "public", "author_role = 'technician'"])
    resolutions = _where([*conditions, "to_status = 'resolved'"])
    sql = f"""
        SELECT
            client_id,
            ifNull(priority, '')                            AS priority,
            count()                                         AS tickets,
            countIf(first_response_at IS NOT NULL)          AS responded,
            countIf(resolved_at IS NOT NULL)                AS resolved,
            {", ".join(percentiles)}
        FROM ({_TICKETS.format(where=client)}) AS tickets
        LEFT JOIN (
            SELECT client_id, ticket_id, min(occurred_at) AS first_response_at
            FROM ticket_comments FINAL {comments} GROUP BY client_id, ticket_id
        ) AS responses USING (client_id, ticket_id)
        LEFT JOIN (
            SELECT client_id, ticket_id, min(occurred_at) AS resolved_at
            FROM ticket_status_changes FINAL {resolutions} GROUP BY client_id, ticket_id
        ) AS resolutions USING (client_id, ticket_id)
        {_where(after)}
        GROUP BY client_id, priority
        ORDER BY client_id, priority
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def backlog_sql(query: BacklogQuery) -> Statement:
    """The backlog is a running sum: +1 when a ticket is created, and for each status change whether it moves the
    ticket into or out of resolved/closed. A sum over a set of changes does not depend on their order; every day
    of the range is listed, with 0 changes where nothing happened."""
    parameters, conditions = _base(query)
    parameters.update(first_day=query.from_, days=(query.to - query.from_).days + 1)
    client = _where(conditions)
    sql = f"""
        SELECT client_id, day, backlog
        FROM (
            SELECT client_id, day,
                   sum(delta) OVER (PARTITION BY client_id ORDER BY day ROWS UNBOUNDED PRECEDING) AS backlog
            FROM (
                SELECT client_id, day, sum(delta) AS delta
                FROM (
                    SELECT client_id, toDate32(assumeNotNull(created_at)) AS day, toInt64(1) AS delta
                    FROM ({_TICKETS.format(where=client)}) AS created WHERE created_at IS NOT NULL
                    UNION ALL
                    SELECT client_id, toDate32(occurred_at) AS day,
                           toInt64(to_status NOT IN {_DONE}) - toInt64(from_status NOT IN {_DONE}) AS delta
                    FROM ticket_status_changes FINAL {client}
                    UNION ALL
                    SELECT client_id, toDate32({{first_day:Date32}}) + number AS day, toInt64(0) AS delta
                    FROM (SELECT DISTINCT client_id FROM tickets {client}) AS clients
                    CROSS JOIN numbers({{days:UInt32}}) AS days
                )
                GROUP BY client_id, day
            )
        )
        WHERE day >= {{first_day:Date32}} AND day < {{first_day:Date32}} + {{days:UInt32}}
        ORDER BY client_id, day
    """
    return Statement(sql, parameters)


@statement_for.register
def workload_sql(query: WorkloadQuery) -> Statement:
    """Per technician: hours on the days asked, tickets assigned to them on those days, and tickets whose latest
    assignment is theirs and that are still open now."""
    parameters, conditions = _base(query)
    client = list(conditions)
    technician = []
    if query.technician_id is not None:
        technician.append("technician_id = {technician_id:String}")
        parameters["technician_id"] = query.technician_id
    worked = _where([*conditions, *technician, _IN_RANGE.format(column="performed_at"), "NOT voided"])
    assigned = _where(
        [*conditions, "event_type = 'assignment.assigned'", _IN_RANGE.format(column="occurred_at"), *technician]
    )
    current = _where([*client, "event_type = 'assignment.assigned'"])
    sql = f"""
        SELECT
            technician_id,
            hours, billable_hours, worklogs, tickets_worked, assigned, open_tickets
        FROM (
            SELECT toString(technician_id) AS technician_id,
                   round(sum(minutes) / 60, 2) AS hours, round(sumIf(minutes, billable) / 60, 2) AS billable_hours,
                   count() AS worklogs, uniqExact(ticket_id) AS tickets_worked
            FROM worklogs FINAL {worked}
            GROUP BY technician_id
        ) AS worked
        FULL OUTER JOIN (
            SELECT assumeNotNull(technician_id) AS technician_id, count() AS assigned
            FROM assignment_events FINAL {assigned}
            GROUP BY technician_id
        ) AS assigned USING (technician_id)
        FULL OUTER JOIN (
            SELECT technician_id, count() AS open_tickets
            FROM (
                SELECT client_id, ticket_id,
                       assumeNotNull(argMax(technician_id, (occurred_at, offset))) AS technician_id
                FROM assignment_events FINAL {current}
                GROUP BY client_id, ticket_id
            ) AS latest
            INNER JOIN ({_TICKETS.format(where=_where(client))}) AS tickets USING (client_id, ticket_id)
            WHERE ifNull(tickets.status, '') NOT IN {_DONE} {"AND " + technician[0] if technician else ""}
            GROUP BY technician_id
        ) AS open USING (technician_id)
        ORDER BY technician_id
    """
    return Statement(sql, parameters)


@statement_for.register
def csat_sql(query: CsatQuery) -> Statement:
    parameters, conditions = _base(query)
    conditions.append(_IN_RANGE.format(column="occurred_at"))
    sql = f"""
        SELECT
            client_id,
            count()                                         AS ratings,
            round(avg(rating), 2)                           AS average_rating,
            round(100 * countIf(rating >= 4) / count(), 1)  AS satisfied_pct,
            {", ".join(f"countIf(rating = {stars}) AS rated_{stars}" for stars in range(1, 6))}
        FROM csat_ratings FINAL
        {_where(conditions)}
        GROUP BY client_id
        ORDER BY client_id
    """
    return Statement(sql, parameters)
