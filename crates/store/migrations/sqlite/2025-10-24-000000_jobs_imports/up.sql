-- The job queue, imports (the user-visible record of each import job) and export records (SQLite).
-- Keep in step with ../../postgres/2025-10-24-000000_jobs_imports/up.sql and src/schema.rs:
-- timestamps are 64-bit integer microseconds since the Unix epoch (UTC), JSON is stored as text.

-- The queue's mechanics only: what the job is, when it is due, and which worker holds it until when.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
) STRICT;

-- Claims scan in this order and stop at the first due job.
CREATE INDEX jobs_claim_order ON jobs (priority DESC, id);

CREATE TABLE imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The references as they print (and parse back); the parts below are copies, for filters and grouping.
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    source_registry TEXT NOT NULL,
    source_repository TEXT NOT NULL,
    target_registry TEXT NOT NULL,
    target_repository TEXT NOT NULL,
    target_tag TEXT,
    platforms TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout_secs INTEGER NOT NULL,
    error TEXT,
    description TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    digest TEXT,
    artifacts TEXT NOT NULL DEFAULT '[]',
    layers TEXT NOT NULL DEFAULT '[]',
    -- The queue row while the import is queued or running.
    job_id INTEGER REFERENCES jobs (id) ON DELETE SET NULL
) STRICT;

-- At most one active import of a source into a target, whatever the code above does.
CREATE UNIQUE INDEX imports_one_active ON imports (source, target) WHERE state IN ('queued', 'running');
CREATE INDEX imports_source_target ON imports (source, target);
CREATE INDEX imports_source_image ON imports (source_registry, source_repository);
CREATE INDEX imports_created_at ON imports (created_at);
CREATE INDEX imports_target_tag ON imports (target_tag);
CREATE INDEX imports_job_id ON imports (job_id);

CREATE TABLE exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    registry_host TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    source TEXT,
    description TEXT,
    created_by TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('Pending', 'Running', 'Succeeded', 'Failed')),
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX exports_created_at ON exports (created_at);
