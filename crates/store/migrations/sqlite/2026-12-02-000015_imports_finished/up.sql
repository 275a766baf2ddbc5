-- Retention deletes finished imports oldest first, through this index rather than a scan.
CREATE INDEX imports_finished ON imports (finished_at) WHERE state IN ('succeeded', 'failed', 'canceled');
