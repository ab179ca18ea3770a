-- The current state of every ticket. An event carries only what it changes, so each column keeps the value of the
-- highest aggregate_version that set it (argMax): events may arrive again or out of order (a replay, a rebuild)
-- and the state is still that of the newest version. argMax, min and max ignore repeats, which is what makes
-- redelivered changes harmless on their way through the materialized view.

-- What one ticket event changes, as the projector writes it; a Null table keeps nothing, the view below does.
CREATE TABLE IF NOT EXISTS ticket_changes
(
    event_id          UUID,
    ticket_id         String,
    client_id         LowCardinality(String),
    aggregate_version UInt32,
    occurred_at       DateTime64(3, 'UTC'),
    requester_id      Nullable(String),
    title             Nullable(String),
    category          Nullable(String),
    priority          Nullable(String),
    channel           Nullable(String),
    status            Nullable(String),
    created_at        Nullable(DateTime64(3, 'UTC')),
    partition         UInt16,
    offset            UInt64
)
ENGINE = Null;

-- Read with argMaxMerge(column) ... GROUP BY client_id, ticket_id.
CREATE TABLE IF NOT EXISTS tickets
(
    client_id         LowCardinality(String),
    ticket_id         String,
    aggregate_version SimpleAggregateFunction(max, UInt32),
    requester_id      AggregateFunction(argMax, Nullable(String), UInt32),
    title             AggregateFunction(argMax, Nullable(String), UInt32),
    category          AggregateFunction(argMax, Nullable(String), UInt32),
    priority          AggregateFunction(argMax, Nullable(String), UInt32),
    channel           AggregateFunction(argMax, Nullable(String), UInt32),
    status            AggregateFunction(argMax, Nullable(String), UInt32),
    created_at        SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    updated_at        SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (client_id, ticket_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tickets_from_changes TO tickets AS
SELECT
    client_id,
    ticket_id,
    max(ticket_changes.aggregate_version)                          AS aggregate_version,
    argMaxState(requester_id, ticket_changes.aggregate_version)    AS requester_id,
    argMaxState(title, ticket_changes.aggregate_version)           AS title,
    argMaxState(category, ticket_changes.aggregate_version)        AS category,
    argMaxState(priority, ticket_changes.aggregate_version)        AS priority,
    argMaxState(channel, ticket_changes.aggregate_version)         AS channel,
    argMaxState(status, ticket_changes.aggregate_version)          AS status,
    min(ticket_changes.created_at)                                 AS created_at,
    max(occurred_at)                                               AS updated_at
FROM ticket_changes
GROUP BY client_id, ticket_id;
