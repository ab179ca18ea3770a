-- Every event of tickets.events as read, event types this service does not know yet included, so that a report
-- added later can be built from here. A redelivered event has the same event_id and collapses into one row.
CREATE TABLE IF NOT EXISTS ticket_events
(
    event_id          UUID,
    event_type        LowCardinality(String),
    schema_version    UInt16,
    occurred_at       DateTime64(3, 'UTC'),
    ticket_id         String,
    client_id         LowCardinality(String),
    aggregate_version Nullable(UInt32),
    producer          LowCardinality(String),
    correlation_id    String,
    payload           String COMMENT 'the event as JSON; only the envelope for an unknown event type',
    topic             LowCardinality(String),
    partition         UInt16,
    offset            UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;
