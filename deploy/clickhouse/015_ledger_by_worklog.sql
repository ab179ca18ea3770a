-- The ledger's rows again, ordered by worklog: before a batch's worklogs are applied, the projector looks up the
-- newest row of each (reporting/warehouse.py). The ledger is ordered by client and ticket for the reports, so that
-- lookup read its whole worklog_id column, and grew with the ledger: 80-110 ms for six worklogs in a ledger of
-- 10M rows, on every batch, however small (docs/benchmarks.md, "the ledger lookup"). ClickHouse reads this
-- projection instead when a query filters on worklog_id: the granules of the worklogs asked for, 14-21 ms.
ALTER TABLE worklog_ledger ADD PROJECTION IF NOT EXISTS by_worklog (SELECT * ORDER BY worklog_id);

-- Rows written before this migration; waited for, so that the service projects only once the lookup is cheap.
ALTER TABLE worklog_ledger MATERIALIZE PROJECTION by_worklog SETTINGS mutations_sync = 2;
