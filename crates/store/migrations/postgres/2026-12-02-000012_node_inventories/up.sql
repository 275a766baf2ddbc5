-- The node inventory: each node's last report of its container runtime's images (PostgreSQL).
-- Keep in step with ../../sqlite/2026-12-02-000012_node_inventories/up.sql and src/schema.rs:
-- timestamps are BIGINT microseconds since the Unix epoch (UTC), JSON is stored as text.

CREATE TABLE node_inventories (
    name TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    runtime_name TEXT,
    runtime_version TEXT,
    -- The last successful report; NULL until there is one.
    last_report_at BIGINT,
    -- The last attempt, successful or not: staleness is counted from here.
    last_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    interval_secs BIGINT NOT NULL CHECK (interval_secs > 0),
    -- The images of the last successful report, a JSON array of image_core::inventory::RuntimeImage.
    images TEXT NOT NULL DEFAULT '[]'
);
