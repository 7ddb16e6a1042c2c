-- When a delivery finished: acknowledged (`done`) or out of attempts
-- (`dead`); NULL while it is open. Retention (`retention.deliveries`)
-- deletes finished deliveries by this time. Rows that finished before
-- this column existed take their last error's time, else their
-- publication's.
ALTER TABLE deliveries ADD COLUMN finished_at TEXT;

UPDATE deliveries SET finished_at = COALESCE(last_error_at, published_at)
WHERE state IN ('done', 'dead');

CREATE INDEX deliveries_finished ON deliveries (finished_at)
    WHERE state IN ('done', 'dead');
