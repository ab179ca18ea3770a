-- Who answered a ticket and when (not what: bodies stay in ticket_events). First response times are read here.
CREATE TABLE IF NOT EXISTS ticket_comments
(
    ticket_id         String,
    client_id         LowCardinality(String),
    aggregate_version UInt32,
    occurred_at       DateTime64(3, 'UTC'),
    comment_id        UUID,
    author_id         String,
    author_role       LowCardinality(String),
    public            Bool,
    event_id          UUID,
    partition         UInt16,
    offset            UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (client_id, ticket_id, aggregate_version);
