-- Every event of sla.events with its clock data flattened: a clock's state is its latest event, its outcome the
-- sla.met or sla.breached of its newest policy version. Keyed by event_id, so redeliveries collapse.
CREATE TABLE IF NOT EXISTS sla_clock_events
(
    ticket_id                  String,
    client_id                  LowCardinality(String),
    metric                     LowCardinality(String),
    event_id                   UUID,
    event_type                 LowCardinality(String),
    occurred_at                DateTime64(3, 'UTC'),
    policy_id                  LowCardinality(String),
    policy_version             UInt32,
    calendar_id                LowCardinality(String),
    calendar_version           UInt32,
    target_business_seconds    UInt32,
    deadline                   DateTime64(3, 'UTC'),
    elapsed_business_seconds   UInt32,
    remaining_business_seconds Int64,
    threshold                  Nullable(Float32),
    reason                     String,
    partition                  UInt16,
    offset                     UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (client_id, ticket_id, metric, event_id);
