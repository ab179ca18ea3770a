-- Status history: one row per ticket.status_changed, keyed by the ticket's version, so a redelivery or a replay
-- collapses into the same row. Backlog over time and resolution times are read from here.
CREATE TABLE IF NOT EXISTS ticket_status_changes
(
    ticket_id         String,
    client_id         LowCardinality(String),
    aggregate_version UInt32,
    occurred_at       DateTime64(3, 'UTC'),
    from_status       LowCardinality(String),
    to_status         LowCardinality(String),
    reason            String,
    event_id          UUID,
    partition         UInt16,
    offset            UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (client_id, ticket_id, aggregate_version);
