-- Every decision of assignment.events: assignments (to whom, by which strategy, why), escalations, and tickets
-- nobody could take. A ticket's current technician is its latest assignment. Keyed by event_id.
CREATE TABLE IF NOT EXISTS assignment_events
(
    ticket_id              String,
    client_id              LowCardinality(String),
    event_id               UUID,
    event_type             LowCardinality(String),
    occurred_at            DateTime64(3, 'UTC'),
    technician_id          Nullable(String),
    previous_technician_id Nullable(String),
    team                   Nullable(String),
    tier                   Nullable(UInt8),
    from_tier              Nullable(UInt8),
    strategy               Nullable(String),
    reason                 String,
    partition              UInt16,
    offset                 UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (client_id, ticket_id, event_id);
