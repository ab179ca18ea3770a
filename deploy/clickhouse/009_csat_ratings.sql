-- Satisfaction ratings: one per ticket, the newest (highest aggregate_version) when a requester rates again.
CREATE TABLE IF NOT EXISTS csat_ratings
(
    ticket_id         String,
    client_id         LowCardinality(String),
    rating            UInt8,
    comment           String,
    occurred_at       DateTime64(3, 'UTC'),
    aggregate_version UInt32,
    event_id          UUID,
    partition         UInt16,
    offset            UInt64
)
ENGINE = ReplacingMergeTree(aggregate_version)
ORDER BY (client_id, ticket_id);
