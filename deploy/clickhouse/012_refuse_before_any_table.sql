-- A batch refused by the views must leave every table as it was: its bisection inserts the good messages again,
-- under other deduplication tokens. ClickHouse pushes a block to the views of inbox_events one after the other, in
-- an order of its own, and each writes its part as it goes: a cast refused in assignment_events' view came after
-- ticket_events had kept the batch, or before, from one database to the next. So inbox_events' one view, through
-- which every message passes before any table is written, now also checks every value a later view casts to a
-- narrower column or reads as a moment, with the column named in the refusal (the dead-letter reason). The later
-- views keep their own casts and checks, which no longer fail.
CREATE FUNCTION IF NOT EXISTS cannot_hold AS (value, type) -> value IS NOT NULL AND accurateCastOrNull(value, type) IS NULL;

ALTER TABLE inbox_events_from_inbox MODIFY QUERY
WITH if(event = '', message, event) AS json,
     JSONExtract(
        json,
        'Tuple(event_id String, event_type String, schema_version UInt16, occurred_at String, ticket_id String,
               client_id String, aggregate_version Nullable(Int64), producer String, correlation_id String,
               data String)'
     ) AS e,
     JSONExtract(
        e.data,
        'Tuple(minutes Nullable(Int64), performed_at Nullable(String), rating Nullable(Int64),
               policy_version Nullable(Int64), calendar_version Nullable(Int64),
               target_business_seconds Nullable(Int64), elapsed_business_seconds Nullable(Int64),
               deadline Nullable(String), tier Nullable(Int64), to_tier Nullable(Int64), from_tier Nullable(Int64))'
     ) AS v,
     topic = 'tickets.events' AND e.event_type IN ('ticket.worklog_recorded', 'ticket.worklog_corrected') AS worked,
     topic = 'tickets.events' AND e.event_type = 'ticket.csat_recorded' AS rated,
     topic = 'sla.events' AND e.event_type IN ('sla.clock_started', 'sla.paused', 'sla.resumed', 'sla.warning',
                                               'sla.breached', 'sla.met', 'sla.retargeted', 'sla.clock_stopped') AS timed,
     topic = 'assignment.events' AND e.event_type = 'assignment.assigned' AS assigned,
     topic = 'assignment.events' AND e.event_type = 'assignment.escalated' AS escalated
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
  AND throwIf(NOT is_contract_moment(e.occurred_at), 'occurred_at: not a moment in RFC 3339 form') = 0
  AND throwIf(worked AND cannot_hold(v.minutes, 'UInt16'), 'minutes: above 65535, what worklogs.minutes holds') = 0
  AND throwIf(worked AND NOT is_contract_moment(ifNull(v.performed_at, '')),
              'performed_at: not a moment in RFC 3339 form') = 0
  AND throwIf(rated AND cannot_hold(v.rating, 'UInt8'), 'rating: above 255, what csat_ratings.rating holds') = 0
  AND throwIf(timed AND (cannot_hold(v.policy_version, 'UInt32') OR cannot_hold(v.calendar_version, 'UInt32')
                         OR cannot_hold(v.target_business_seconds, 'UInt32')
                         OR cannot_hold(v.elapsed_business_seconds, 'UInt32')),
              'a version or a number of business seconds outside 0 to 4294967295, what sla_clock_events holds') = 0
  AND throwIf(timed AND NOT is_contract_moment(ifNull(v.deadline, '')), 'deadline: not a moment in RFC 3339 form') = 0
  AND throwIf((assigned AND cannot_hold(v.tier, 'UInt8'))
                  OR (escalated AND (cannot_hold(v.to_tier, 'UInt8') OR cannot_hold(v.from_tier, 'UInt8'))),
              'tier: above 255, what assignment_events holds') = 0;
