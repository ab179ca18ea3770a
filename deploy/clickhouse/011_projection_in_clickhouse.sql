-- ClickHouse does the projection. Each batch of Kafka records arrives in `inbox` as one RowBinary insert of the
-- messages as read (services/reporting/inbox.py); the views below parse each message once and fill every table
-- but the worklog ledger, which needs each worklog's history and its client's calendar (reporting/ledger.py).
--
-- The service has validated every message against the contract before it gets here. `event` holds the message
-- re-encoded only where it is not the current schema in its strict JSON form (an older schema_version, a value
-- the contract coerces, an unknown event type); the views read it instead of `message` then, so they know one shape
-- of each event, never its history or the contract's coercions.
--
-- A message the views would read otherwise than the contract does fails the insert, and the service finds it by
-- bisecting its batch and dead-letters it with ClickHouse's error text: a value its column cannot hold (e.g. a tier
-- above 255, accurateCast), a moment not in RFC 3339 form (the contract also takes e.g. Unix times in strings), a
-- key repeated (the contract takes its last value, ClickHouse's JSON functions the first).
--
-- Redelivery: the batch carries an insert_deduplication_token of its partitions' offset ranges, and each table
-- keeps the tokens of its last 1,000 inserts (non_replicated_deduplication_window; a server's replicated tables
-- have their own window). The tables' keys still collapse whatever a batch of other boundaries repeats.
-- A moment of the contract as ClickHouse reads it: RFC 3339, with the variations the contract's parser also takes
-- (lower-case t and z, a space or _ between date and time, a comma before the fraction, an offset without colon).
CREATE FUNCTION IF NOT EXISTS contract_moment AS (text) ->
    parseDateTime64BestEffort(translate(upper(text), '_,', 'T.'), 3, 'UTC');

CREATE FUNCTION IF NOT EXISTS is_contract_moment AS (text) ->
    match(text, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt _][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$');

CREATE FUNCTION IF NOT EXISTS has_repeated_keys AS (keys) -> length(arrayDistinct(keys)) != length(keys);

CREATE TABLE IF NOT EXISTS inbox
(
    topic     LowCardinality(String),
    partition UInt16,
    offset    UInt64,
    message   String COMMENT 'the record value as read',
    event     String COMMENT 'the event in its current schema when the message is not; empty when it is'
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS inbox_events
(
    topic             LowCardinality(String),
    partition         UInt16,
    offset            UInt64,
    message           String,
    event_id          UUID,
    event_type        LowCardinality(String),
    schema_version    UInt16,
    occurred_at       DateTime64(3, 'UTC'),
    ticket_id         String,
    client_id         LowCardinality(String),
    aggregate_version Nullable(UInt32),
    producer          LowCardinality(String),
    correlation_id    String,
    data              String COMMENT 'the JSON object of the event data'
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS inbox_events_from_inbox TO inbox_events AS
WITH if(event = '', message, event) AS json,
     JSONExtract(
        json,
        'Tuple(event_id String, event_type String, schema_version UInt16, occurred_at String, ticket_id String,
               client_id String, aggregate_version Nullable(Int64), producer String, correlation_id String,
               data String)'
     ) AS e
SELECT topic,
       partition,
       offset,
       message,
       toUUID(e.event_id)                                            AS event_id,
       e.event_type                                                  AS event_type,
       e.schema_version                                              AS schema_version,
       contract_moment(e.occurred_at)                                AS occurred_at,
       e.ticket_id                                                   AS ticket_id,
       e.client_id                                                   AS client_id,
       accurateCast(e.aggregate_version, 'Nullable(UInt32)')         AS aggregate_version,
       e.producer                                                    AS producer,
       e.correlation_id                                              AS correlation_id,
       e.data                                                        AS data
FROM inbox
WHERE throwIf(has_repeated_keys(JSONExtractKeys(json)) OR has_repeated_keys(JSONExtractKeys(e.data))
                  OR (e.event_type = 'ticket.updated' AND has_repeated_keys(JSONExtractKeys(e.data, 'changes'))),
              'a key appears twice in the message: the contract reads its last value, these views its first') = 0
  AND throwIf(NOT is_contract_moment(e.occurred_at), 'occurred_at: not a moment in RFC 3339 form') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS ticket_events_from_inbox TO ticket_events AS
SELECT event_id, event_type, schema_version, occurred_at, ticket_id, client_id, aggregate_version, producer,
       correlation_id, message AS payload, topic, partition, offset
FROM inbox_events;

-- Every ticket event moves its ticket to a new version; created, updated and status_changed also set fields
-- (NULL: left as it is; the tickets view takes the newest value that is not NULL).
CREATE MATERIALIZED VIEW IF NOT EXISTS ticket_changes_from_inbox TO ticket_changes AS
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
       multiIf(created, 'new',
               event_type = 'ticket.status_changed', JSONExtractString(data, 'to_status'), NULL) AS status,
       if(created, occurred_at, NULL)                                                            AS created_at
FROM inbox_events
WHERE topic = 'tickets.events'
  AND event_type IN ('ticket.created', 'ticket.updated', 'ticket.status_changed', 'ticket.comment_added',
                     'ticket.worklog_recorded', 'ticket.worklog_corrected', 'ticket.worklog_voided',
                     'ticket.csat_recorded');

-- A worklog's values as of one version of its ticket; a void keeps only the key. Its split into business hours
-- lives in the ledger alone.
ALTER TABLE worklogs DROP COLUMN IF EXISTS business_minutes;

CREATE MATERIALIZED VIEW IF NOT EXISTS worklogs_from_inbox TO worklogs AS
WITH event_type = 'ticket.worklog_voided' AS voided,
     JSONExtract(data, 'Tuple(worklog_id String, technician_id String, minutes Int64, billable Bool,
                              performed_at String)') AS worklog
SELECT toUUID(worklog.worklog_id)                                                           AS worklog_id,
       ticket_id,
       client_id,
       if(voided, '', worklog.technician_id)                                                AS technician_id,
       if(voided, 0, accurateCast(worklog.minutes, 'UInt16'))                               AS minutes,
       if(voided, false, worklog.billable)                                                  AS billable,
       if(voided, occurred_at, contract_moment(worklog.performed_at))                       AS performed_at,
       voided,
       event_id,
       assumeNotNull(aggregate_version)                                                     AS aggregate_version,
       partition,
       offset
FROM inbox_events
WHERE topic = 'tickets.events'
  AND event_type IN ('ticket.worklog_recorded', 'ticket.worklog_corrected', 'ticket.worklog_voided')
  AND throwIf(NOT voided AND NOT is_contract_moment(worklog.performed_at),
              'performed_at: not a moment in RFC 3339 form') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS ticket_status_changes_from_inbox TO ticket_status_changes AS
SELECT ticket_id, client_id, assumeNotNull(aggregate_version) AS aggregate_version, occurred_at,
       JSONExtractString(data, 'from_status') AS from_status,
       JSONExtractString(data, 'to_status')   AS to_status,
       JSONExtractString(data, 'reason')      AS reason,
       event_id, partition, offset
FROM inbox_events
WHERE topic = 'tickets.events' AND event_type = 'ticket.status_changed';

CREATE MATERIALIZED VIEW IF NOT EXISTS ticket_comments_from_inbox TO ticket_comments AS
SELECT ticket_id, client_id, assumeNotNull(aggregate_version) AS aggregate_version, occurred_at,
       toUUID(JSONExtractString(data, 'comment_id'))     AS comment_id,
       JSONExtractString(data, 'author_id')              AS author_id,
       JSONExtractString(data, 'author_role')            AS author_role,
       JSONExtractString(data, 'visibility') = 'public'  AS public,
       event_id, partition, offset
FROM inbox_events
WHERE topic = 'tickets.events' AND event_type = 'ticket.comment_added';

CREATE MATERIALIZED VIEW IF NOT EXISTS csat_ratings_from_inbox TO csat_ratings AS
SELECT ticket_id, client_id,
       accurateCast(JSONExtractInt(data, 'rating'), 'UInt8') AS rating,
       JSONExtractString(data, 'comment')                    AS comment,
       occurred_at, assumeNotNull(aggregate_version) AS aggregate_version, event_id, partition, offset
FROM inbox_events
WHERE topic = 'tickets.events' AND event_type = 'ticket.csat_recorded';

-- A warning carries its threshold, a pause or resume the status that caused it; the other reasons (retargeted,
-- stopped) are in ticket_events' payload.
CREATE MATERIALIZED VIEW IF NOT EXISTS sla_clock_events_from_inbox TO sla_clock_events AS
WITH JSONExtract(data, 'Tuple(metric String, policy_id String, policy_version Int64, calendar_id String,
                              calendar_version Int64, target_business_seconds Int64, deadline String,
                              elapsed_business_seconds Int64, remaining_business_seconds Int64,
                              threshold Nullable(Float64), reason String)') AS clock
SELECT ticket_id, client_id, clock.metric AS metric, event_id, event_type, occurred_at,
       clock.policy_id                                                 AS policy_id,
       accurateCast(clock.policy_version, 'UInt32')                    AS policy_version,
       clock.calendar_id                                               AS calendar_id,
       accurateCast(clock.calendar_version, 'UInt32')                  AS calendar_version,
       accurateCast(clock.target_business_seconds, 'UInt32')           AS target_business_seconds,
       contract_moment(clock.deadline)                                 AS deadline,
       accurateCast(clock.elapsed_business_seconds, 'UInt32')          AS elapsed_business_seconds,
       clock.remaining_business_seconds                                AS remaining_business_seconds,
       if(event_type = 'sla.warning', clock.threshold, NULL)           AS threshold,
       if(event_type IN ('sla.paused', 'sla.resumed'), clock.reason, '') AS reason,
       partition, offset
FROM inbox_events
WHERE topic = 'sla.events'
  AND event_type IN ('sla.clock_started', 'sla.paused', 'sla.resumed', 'sla.warning', 'sla.breached', 'sla.met',
                     'sla.retargeted', 'sla.clock_stopped')
  AND throwIf(NOT is_contract_moment(clock.deadline), 'deadline: not a moment in RFC 3339 form') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS assignment_events_from_inbox TO assignment_events AS
WITH event_type = 'assignment.assigned'  AS assigned,
     event_type = 'assignment.escalated' AS escalated,
     JSONExtract(data, 'Tuple(technician_id Nullable(String), previous_technician_id Nullable(String),
                              team Nullable(String), tier Nullable(Int64), to_tier Nullable(Int64),
                              from_tier Nullable(Int64), strategy Nullable(String), reason String)') AS decision
SELECT ticket_id, client_id, event_id, event_type, occurred_at,
       if(assigned, decision.technician_id, NULL)                                          AS technician_id,
       if(assigned, decision.previous_technician_id, NULL)                                 AS previous_technician_id,
       decision.team                                                                       AS team,
       accurateCast(multiIf(assigned, decision.tier, escalated, decision.to_tier, NULL), 'Nullable(UInt8)') AS tier,
       accurateCast(if(escalated, decision.from_tier, NULL), 'Nullable(UInt8)')           AS from_tier,
       if(assigned, decision.strategy, NULL)                                               AS strategy,
       decision.reason                                                                     AS reason,
       partition, offset
FROM inbox_events
WHERE topic = 'assignment.events'
  AND event_type IN ('assignment.assigned', 'assignment.escalated', 'assignment.unassignable');

ALTER TABLE ticket_events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tickets MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE worklogs MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE ticket_status_changes MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE ticket_comments MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE csat_ratings MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE sla_clock_events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE assignment_events MODIFY SETTING non_replicated_deduplication_window = 1000;
