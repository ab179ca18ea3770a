-- Time technicians recorded on tickets, the source of hours per client. One row per worklog_id: a redelivered
-- event replaces its own row instead of adding hours, and a later correction of the worklog (a newer
-- aggregate_version) wins. Read with FINAL so that duplicates not merged yet are never counted.
CREATE TABLE IF NOT EXISTS worklogs
(
    worklog_id        UUID,
    ticket_id         String,
    client_id         LowCardinality(String),
    technician_id     LowCardinality(String),
    minutes           UInt16,
    billable          Bool,
    performed_at      DateTime64(3, 'UTC'),
    event_id          UUID,
    aggregate_version UInt32,
    partition         UInt16,
    offset            UInt64,
    INDEX performed_at_range performed_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree(aggregate_version)
ORDER BY (client_id, ticket_id, worklog_id);
