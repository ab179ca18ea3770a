-- Hours per client without FINAL: a signed ledger of worklogs. The projector writes, for every worklog event it has
-- not applied yet, a +1 row with the worklog's new values and, when the event replaces a version that counted
-- (a correction or a void), a -1 row cancelling that version; a void of a worklog that did not count writes a
-- 0 row, which only records that the worklog is voided. Sums over any set of rows are then exact without merging
-- anything, and the aggregate projection below keeps them per day, client, technician and ticket, so a month of
-- 10M worklogs is read as some hundred thousand pre-summed rows. Which events are applied is decided from this
-- table alone (the newest row of each worklog, by aggregate_version then sign), and a batch's rows are one insert,
-- so state and sums can never disagree, whatever is redelivered (see reporting/ledger.py).
CREATE TABLE IF NOT EXISTS worklog_ledger
(
    client_id         LowCardinality(String),
    ticket_id         String,
    worklog_id        UUID,
    aggregate_version UInt32 COMMENT 'of the event that wrote the row',
    sign              Int8 COMMENT '+1 counts this version, -1 cancels the version replaced, 0 marks a void',
    technician_id     LowCardinality(String),
    performed_at      DateTime64(3, 'UTC'),
    day               Date32 DEFAULT toDate32(performed_at),
    billable          Bool,
    minutes           Int32 COMMENT 'signed: the minutes this row adds to the sums',
    business_minutes  Int32 COMMENT 'signed, like minutes',
    event_id          UUID,
    partition         UInt16,
    offset            UInt64,
    PROJECTION hours_by_day
    (
        SELECT day, client_id, technician_id, ticket_id,
               sum(minutes), sumIf(minutes, billable), sum(business_minutes), sumIf(business_minutes, billable),
               sum(sign), sumIf(sign, billable)
        GROUP BY day, client_id, technician_id, ticket_id
    )
)
ENGINE = MergeTree
ORDER BY (client_id, ticket_id, worklog_id);

-- Worklogs projected before this migration: one row for the newest version of each, once (only into an empty
-- ledger, so that running this again after a crash adds nothing).
INSERT INTO worklog_ledger (client_id, ticket_id, worklog_id, aggregate_version, sign, technician_id, performed_at,
                            billable, minutes, business_minutes, event_id, partition, offset)
SELECT client_id, ticket_id, worklog_id, aggregate_version, if(voided, 0, 1), technician_id, performed_at, billable,
       if(voided, 0, minutes), if(voided, 0, business_minutes), event_id, partition, offset
FROM worklogs FINAL
WHERE NOT EXISTS (SELECT * FROM worklog_ledger);
