-- The service a ticket names on creation (ticket.created's service_id, from the catalogue), kept as the other
-- fields of a ticket are. A ticket naming none reads as its category's service in reports (queries.py: the
-- catalogue's categories are bound with each report, as sla.config stands then).
ALTER TABLE ticket_changes ADD COLUMN IF NOT EXISTS service_id Nullable(String) AFTER channel;

ALTER TABLE tickets ADD COLUMN IF NOT EXISTS service_id AggregateFunction(argMax, Nullable(String), UInt32) AFTER channel;

ALTER TABLE tickets_from_changes MODIFY QUERY
SELECT
    client_id,
    ticket_id,
    max(ticket_changes.aggregate_version)                          AS aggregate_version,
    argMaxState(requester_id, ticket_changes.aggregate_version)    AS requester_id,
    argMaxState(title, ticket_changes.aggregate_version)           AS title,
    argMaxState(category, ticket_changes.aggregate_version)        AS category,
    argMaxState(priority, ticket_changes.aggregate_version)        AS priority,
    argMaxState(channel, ticket_changes.aggregate_version)         AS channel,
    argMaxState(service_id, ticket_changes.aggregate_version)      AS service_id,
    argMaxState(status, ticket_changes.aggregate_version)          AS status,
    min(ticket_changes.created_at)                                 AS created_at,
    max(occurred_at)                                               AS updated_at
FROM ticket_changes
GROUP BY client_id, ticket_id;

ALTER TABLE ticket_changes_from_inbox MODIFY QUERY
WITH event_type = 'ticket.created'  AS created,
     event_type = 'ticket.updated'  AS updated,
     JSONExtract(data, 'changes', 'Tuple(title Nullable(String), category Nullable(String),
                                         priority Nullable(String))') AS changes
SELECT event_id, ticket_id, client_id, assumeNotNull(aggregate_version) AS aggregate_version, occurred_at,
       partition, offset,
       if(created, JSONExtractString(data, 'requester_id'), NULL)                               AS requester_id,
       multiIf(created, JSONExtractString(data, 'title'), updated, changes.title, NULL)          AS title,
       multiIf(created, JSONExtractString(data, 'category'), updated, changes.category, NULL)    AS category,
       multiIf(created, JSONExtractString(data, 'priority'), updated, changes.priority, NULL)    AS priority,
       if(created, if(JSONHas(data, 'channel'), JSONExtractString(data, 'channel'), 'api'), NULL) AS channel,
       if(created, JSONExtract(data, 'service_id', 'Nullable(String)'), NULL)                    AS service_id,
       multiIf(created, 'new',
               event_type = 'ticket.status_changed', JSONExtractString(data, 'to_status'), NULL) AS status,
       if(created, occurred_at, NULL)                                                            AS created_at
FROM inbox_events
WHERE topic = 'tickets.events'
  AND event_type IN ('ticket.created', 'ticket.updated', 'ticket.status_changed', 'ticket.comment_added',
                     'ticket.worklog_recorded', 'ticket.worklog_corrected', 'ticket.worklog_voided',
                     'ticket.csat_recorded');
