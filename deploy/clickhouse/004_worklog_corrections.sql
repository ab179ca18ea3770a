-- Corrections and voids of worklogs, and the minutes inside business hours. A correction (full new values) or a
-- void writes a row with the worklog's key and its own, higher aggregate_version, so FINAL keeps the newest
-- version whatever order the events arrive in; queries then drop voided worklogs (WHERE after FINAL).
-- Rows written before this migration read voided = false and business_minutes = 0 until a rebuild.
ALTER TABLE worklogs ADD COLUMN IF NOT EXISTS voided Bool DEFAULT false AFTER performed_at;
ALTER TABLE worklogs ADD COLUMN IF NOT EXISTS business_minutes UInt16 DEFAULT 0 AFTER minutes;
