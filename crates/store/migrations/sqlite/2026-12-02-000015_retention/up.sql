-- Retention deletes finished imports oldest first, through this index rather than a scan.
CREATE INDEX imports_finished ON imports (finished_at) WHERE state IN ('succeeded', 'failed', 'canceled');
-- One retention job in the queue at a time, however many servers schedule it.
CREATE UNIQUE INDEX jobs_one_retention ON jobs (job_type) WHERE job_type = 'retention';
