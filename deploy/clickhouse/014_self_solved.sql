-- The knowledge article a requester solved their ticket with themselves (ticket.status_changed's article_id): the
-- deflections report counts them per service and article.
ALTER TABLE ticket_status_changes ADD COLUMN IF NOT EXISTS article_id Nullable(String) AFTER reason;

ALTER TABLE ticket_status_changes_from_inbox MODIFY QUERY
SELECT ticket_id, client_id, assumeNotNull(aggregate_version) AS aggregate_version, occurred_at,
       JSONExtractString(data, 'from_status')              AS from_status,
       JSONExtractString(data, 'to_status')                AS to_status,
       JSONExtractString(data, 'reason')                   AS reason,
       JSONExtract(data, 'article_id', 'Nullable(String)') AS article_id,
       event_id, partition, offset
FROM inbox_events
WHERE topic = 'tickets.events' AND event_type = 'ticket.status_changed';
