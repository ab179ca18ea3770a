"""The SQL of every report: a query model in, the statement and its bound parameters out (pure, no I/O).

Every value a caller gives is bound, never formatted into the SQL. Tables deduplicated by key are read with FINAL,
and filters on the rows FINAL keeps (voided, dates) apply after it: in a subquery, or as plain WHERE on one table,
which ClickHouse evaluates after FINAL's merge for columns outside the sorting key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatch
from typing import Any, NamedTuple

from ticketstream_shared.catalogue import ServiceCatalogue

from .reports import (
    BacklogQuery,
    ByService,
    CsatQuery,
    DeflectionsQuery,
    Granularity,
    HoursBreakdown,
    HoursPerClientQuery,
    ReportQuery,
    ResponseTimesQuery,
    ServiceBreakdown,
    ServicesOverviewQuery,
    SlaComplianceQuery,
    WorkloadQuery,
)


class Statement(NamedTuple):
    sql: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Services:
    """The service catalogue as reports read it: which service each category belongs to, and each service's name
    (sla.config as it stands when the report is asked). A ticket's service is the one it names, else its
    category's."""

    owners: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def parameters(self) -> dict[str, list[str]]:
        """The categories' services as the tickets' query reads them (two arrays: a Map does not bind alike on
        every ClickHouse client)."""
        categories = sorted(self.owners)
        return {"categories": categories, "their_services": [self.owners[category] for category in categories]}

    @classmethod
    def of(cls, catalogue: ServiceCatalogue, now: datetime) -> Services:
        """Every service in force `now`, drafts too: managers report on what is not published yet as well."""
        in_force = catalogue.in_force(now)
        return cls(in_force.category_owners, {service_id: data.name for service_id, data in in_force.services.items()})


NO_SERVICES = Services()


#: Statuses that take a ticket out of the backlog.
_DONE = "('resolved', 'closed')"

#: A ticket's current fields, from the argMax states of the tickets table.
_TICKETS = """
    SELECT client_id, ticket_id, argMaxMerge(category) AS category, argMaxMerge(priority) AS priority,
           argMaxMerge(status) AS status, min(created_at) AS created_at,
           ifNull(argMaxMerge(service_id),
                  transform(ifNull(category, ''), {{categories:Array(String)}}, {{their_services:Array(String)}}, ''))
               AS service_id
    FROM tickets {where}
    GROUP BY client_id, ticket_id
"""

#: Each clock's outcome, per ticket and metric: that of its newest policy version, breached over met if both were
#: sent (so a next reply is breached if any round was); `decided_at` the day it counts on.
_OUTCOMES = """
    SELECT client_id, ticket_id, metric,
           argMax(event_type, (policy_version, event_type = 'sla.breached')) AS outcome,
           argMax(occurred_at, (policy_version, event_type = 'sla.breached')) AS decided_at
    FROM sla_clock_events FINAL
    {where}
    GROUP BY client_id, ticket_id, metric
"""

_IN_RANGE = "{column} >= {{start:DateTime64(3, 'UTC')}} AND {column} < {{end:DateTime64(3, 'UTC')}}"


def _base(query: ReportQuery, services: Services) -> tuple[dict[str, Any], list[str]]:
    """The interval's parameters, the catalogue's categories, and the client filter if the query names a client."""
    start, end = query.utc_interval()
    parameters: dict[str, Any] = {"start": start, "end": end, **services.parameters()}
    client_filter = []
    if query.client_id is not None:
        parameters["client_id"] = query.client_id
        client_filter.append("client_id = {client_id:String}")
    return parameters, client_filter


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _service_filter(query: ByService | DeflectionsQuery, parameters: dict[str, Any], after: list[str]) -> None:
    """A report's service filter, on its tickets' `service_id` (a condition to apply once the tickets are joined)."""
    if query.service_id is not None:
        after.append("service_id = {service_id:String}")
        parameters["service_id"] = query.service_id


def _per_service(query: ByService, parameters: dict[str, Any], after: list[str], keys: list[str]) -> str:
    """A report's service filter and split: adds the condition and the key after the client; returns the column
    to select, if split."""
    _service_filter(query, parameters, after)
    if query.by is not ServiceBreakdown.SERVICE:
        return ""
    keys.insert(1, "service_id")
    return "ifNull(service_id, '') AS service_id,"


@singledispatch
def statement_for(query: ReportQuery, services: Services = NO_SERVICES) -> Statement:
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
def hours_per_client_sql(query: HoursPerClientQuery, services: Services = NO_SERVICES) -> Statement:
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
    by_ticket = query.by in (HoursBreakdown.CATEGORY, HoursBreakdown.SERVICE)
    if by_ticket or query.category is not None or query.service_id is not None:
        tickets = _TICKETS.format(where="WHERE client_id = {client_id:String}" if query.client_id else "")
        source += f" LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)"
        parameters.update(services.parameters())
        of_tickets = []
        for name in ("category", "service_id"):
            if (value := getattr(query, name)) is not None:
                of_tickets.append(f"tickets.{name} = {{{name}:String}}")
                parameters[name] = value
        source += f" {_where(of_tickets)}"
        if by_ticket:
            column = "category" if query.by is HoursBreakdown.CATEGORY else "service_id"
            keys.append(column)
            columns.append(f"ifNull(tickets.{column}, '') AS {column}")
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
def sla_compliance_sql(query: SlaComplianceQuery, services: Services = NO_SERVICES) -> Statement:
    """A clock's outcome is that of its newest policy version, breached over met if both were sent, and counts on
    the day it was decided; priority is the ticket's current one."""
    parameters, conditions = _base(query, services)
    tickets = _TICKETS.format(where=_where(conditions))
    conditions.append("event_type IN ('sla.met', 'sla.breached')")
    keys = ["client_id", "priority", "metric"]
    if query.metric is not None:
        conditions.append("metric = {metric:String}")
        parameters["metric"] = query.metric.value
    after = [_IN_RANGE.format(column="decided_at")]
    if query.priority is not None:
        after.append("priority = {priority:String}")
        parameters["priority"] = query.priority.value
    service = _per_service(query, parameters, after, keys)
    sql = f"""
        SELECT
            client_id,
            {service}
            ifNull(priority, '')                            AS priority,
            metric,
            countIf(outcome = 'sla.met')                    AS met,
            countIf(outcome = 'sla.breached')               AS breached,
            round(100 * met / (met + breached), 1)          AS compliance_pct
        FROM ({_OUTCOMES.format(where=_where(conditions))}) AS outcomes
        LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)
        {_where(after)}
        GROUP BY {", ".join(keys)}
        ORDER BY {", ".join(keys)}
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def response_times_sql(query: ResponseTimesQuery, services: Services = NO_SERVICES) -> Statement:
    """Wall-clock minutes from creation to the first public comment of a technician (first response) and to the
    first resolution; business-time figures are the SLA report's."""
    parameters, conditions = _base(query, services)
    client = _where(conditions)
    after = [_IN_RANGE.format(column="created_at")]
    if query.priority is not None:
        after.append("priority = {priority:String}")
        parameters["priority"] = query.priority.value
    keys = ["client_id", "priority"]
    service = _per_service(query, parameters, after, keys)
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
            {service}
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
        GROUP BY {", ".join(keys)}
        ORDER BY {", ".join(keys)}
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def backlog_sql(query: BacklogQuery, services: Services = NO_SERVICES) -> Statement:
    """The backlog is a running sum: +1 when a ticket is created, and for each status change whether it moves the
    ticket into or out of resolved/closed. A sum over a set of changes does not depend on their order; every day
    told (each day of the range, or the last of each week or month) is listed, with 0 changes where nothing
    happened. Split or narrowed by service, a status change counts for its ticket's service (the tickets are
    joined only then)."""
    parameters, conditions = _base(query, services)
    parameters.update(told=query.days_told())
    client = _where(conditions)
    keys, of_service = ["client_id"], list[str]()
    service = _per_service(query, parameters, of_service, keys)
    group = ", ".join(keys)
    tickets = f"({_TICKETS.format(where=client)})"
    changes, known = f"ticket_status_changes FINAL {client}", "SELECT DISTINCT client_id FROM tickets " + client
    if service or of_service:
        changes = f"""(SELECT client_id, ticket_id, occurred_at, from_status, to_status
                      FROM ticket_status_changes FINAL {client}) AS changes
                     LEFT JOIN (SELECT client_id, ticket_id, service_id FROM {tickets}) AS tickets
                     USING (client_id, ticket_id) {_where(of_service)}"""
        columns = f"client_id, {service.removesuffix(',')}" if service else "client_id"
        known = f"SELECT DISTINCT {columns} FROM {tickets} AS known {_where(of_service)}"
    created = _where(["created_at IS NOT NULL", *of_service])
    sql = f"""
        SELECT {group}, day, backlog
        FROM (
            SELECT {group}, day,
                   sum(delta) OVER (PARTITION BY {group} ORDER BY day ROWS UNBOUNDED PRECEDING) AS backlog
            FROM (
                SELECT {group}, day, sum(delta) AS delta
                FROM (
                    SELECT client_id, {service} toDate32(assumeNotNull(created_at)) AS day, toInt64(1) AS delta
                    FROM {tickets} AS created {created}
                    UNION ALL
                    SELECT client_id, {service} toDate32(occurred_at) AS day,
                           toInt64(to_status NOT IN {_DONE}) - toInt64(from_status NOT IN {_DONE}) AS delta
                    FROM {changes}
                    UNION ALL
                    SELECT {group}, arrayJoin({{told:Array(Date32)}}) AS day, toInt64(0) AS delta
                    FROM ({known}) AS clients
                )
                GROUP BY {group}, day
            )
        )
        WHERE has({{told:Array(Date32)}}, day)
        ORDER BY {group}, day
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def workload_sql(query: WorkloadQuery, services: Services = NO_SERVICES) -> Statement:
    """Per technician: hours on the days asked, tickets assigned to them on those days, and tickets whose latest
    assignment is theirs and that are still open now."""
    parameters, conditions = _base(query, services)
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
def csat_sql(query: CsatQuery, services: Services = NO_SERVICES) -> Statement:
    parameters, conditions = _base(query, services)
    tickets = _TICKETS.format(where=_where(conditions))
    conditions.append(_IN_RANGE.format(column="occurred_at"))
    source = f"(SELECT client_id, ticket_id, rating FROM csat_ratings FINAL {_where(conditions)}) AS ratings"
    keys, of_service = ["client_id"], list[str]()
    service = _per_service(query, parameters, of_service, keys)
    if service or of_service:
        source += f" LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)"
    sql = f"""
        SELECT
            client_id,
            {service}
            count()                                         AS ratings,
            round(avg(rating), 2)                           AS average_rating,
            round(100 * countIf(rating >= 4) / count(), 1)  AS satisfied_pct,
            {", ".join(f"countIf(rating = {stars}) AS rated_{stars}" for stars in range(1, 6))}
        FROM {source}
        {_where(of_service)}
        GROUP BY {", ".join(keys)}
        ORDER BY {", ".join(keys)}
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def services_overview_sql(query: ServicesOverviewQuery, services: Services = NO_SERVICES) -> Statement:
    """One row per service: every service of the catalogue, and any other a ticket of the client(s) names (or ""
    for tickets of no service), with what happened in the days asked."""
    parameters, conditions = _base(query, services)
    service_ids = sorted(services.names)
    names = [services.names[service_id] for service_id in service_ids]
    parameters.update(first_day=query.from_, last_day=query.to, service_ids=service_ids, names=names)
    tickets = _TICKETS.format(where=_where(conditions))
    responses = _where([*conditions, "public", "author_role = 'technician'"])
    outcomes = _OUTCOMES.format(where=_where([*conditions, "event_type IN ('sla.met', 'sla.breached')"]))
    worked = _where([*conditions, "day >= {first_day:Date32}", "day <= {last_day:Date32}"])
    sql = f"""
        SELECT
            service_id,
            transform(service_id, {{service_ids:Array(String)}}, {{names:Array(String)}}, '') AS name,
            ifNull(opened.tickets, 0)                         AS tickets,
            decided.compliance_pct                            AS compliance_pct,
            opened.first_response_p50_minutes                 AS first_response_p50_minutes,
            ifNull(worked.hours, 0)                           AS hours
        FROM (
            SELECT arrayJoin({{service_ids:Array(String)}}) AS service_id
            UNION DISTINCT
            SELECT DISTINCT service_id FROM ({tickets})
        ) AS catalogue
        LEFT JOIN (
            SELECT service_id, count() AS tickets,
                   round(quantileExactIf(0.5)(dateDiff('second', created_at, first_response_at),
                                              first_response_at IS NOT NULL) / 60, 1) AS first_response_p50_minutes
            FROM ({tickets}) AS tickets
            LEFT JOIN (
                SELECT client_id, ticket_id, min(occurred_at) AS first_response_at
                FROM ticket_comments FINAL {responses} GROUP BY client_id, ticket_id
            ) AS responses USING (client_id, ticket_id)
            WHERE {_IN_RANGE.format(column="created_at")}
            GROUP BY service_id
        ) AS opened USING (service_id)
        LEFT JOIN (
            SELECT ifNull(service_id, '') AS service_id,
                   round(100 * countIf(outcome = 'sla.met') / count(), 1) AS compliance_pct
            FROM ({outcomes}) AS outcomes
            LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)
            WHERE {_IN_RANGE.format(column="decided_at")}
            GROUP BY service_id
        ) AS decided USING (service_id)
        LEFT JOIN (
            SELECT ifNull(service_id, '') AS service_id, round(sum(minutes) / 60, 2) AS hours
            FROM (SELECT client_id, ticket_id, sum(minutes) AS minutes FROM worklog_ledger {worked}
                  GROUP BY client_id, ticket_id) AS work
            LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)
            GROUP BY service_id
        ) AS worked USING (service_id)
        ORDER BY service_id
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)


@statement_for.register
def deflections_sql(query: DeflectionsQuery, services: Services = NO_SERVICES) -> Statement:
    """A ticket counts once per article it was solved with (reopened and solved again, it is still one)."""
    parameters, conditions = _base(query, services)
    tickets = _TICKETS.format(where=_where(conditions))
    solved = _where([*conditions, "article_id IS NOT NULL", _IN_RANGE.format(column="occurred_at")])
    of_service: list[str] = []
    _service_filter(query, parameters, of_service)
    sql = f"""
        SELECT client_id, ifNull(service_id, '') AS service_id, article AS article_id,
               uniqExact(ticket_id) AS deflections
        FROM (
            -- not aliased article_id: WHERE would then read the alias, never NULL
            SELECT client_id, ticket_id, assumeNotNull(article_id) AS article
            FROM ticket_status_changes FINAL {solved}
        ) AS solved
        LEFT JOIN ({tickets}) AS tickets USING (client_id, ticket_id)
        {_where(of_service)}
        GROUP BY client_id, service_id, article
        ORDER BY client_id, service_id, article
        SETTINGS join_use_nulls = 1
    """
    return Statement(sql, parameters)
