-- Audit retention (`retention.audit`): the writer may delete the oldest
-- records, and only while a row here permits it, inside the transaction
-- that first appends the `purged` checkpoint naming the seq and hash the
-- remaining chain starts after. Any other DELETE is still refused.
CREATE TABLE audit_purge (
    upto INTEGER NOT NULL
) STRICT;

DROP TRIGGER audit_refuse_delete;

CREATE TRIGGER audit_refuse_delete BEFORE DELETE ON audit
WHEN NOT EXISTS (SELECT 1 FROM audit_purge WHERE OLD.seq <= upto)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
