-- The kube-style resources: registry secrets (credentials, the password encrypted by the store) and
-- repositories (tags kept in sync on an interval) (SQLite).
-- Keep in step with ../../postgres/2025-11-01-000000_kube_resources/up.sql and src/schema.rs:
-- timestamps are 64-bit integer microseconds since the Unix epoch (UTC), JSON is stored as text.

CREATE TABLE registry_secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    -- `v1:` and the base64 of a 24-byte nonce followed by the XChaCha20-Poly1305 ciphertext, whose associated
    -- data is the row's namespace and name. Never the password itself.
    password_sealed TEXT NOT NULL,
    provider TEXT NOT NULL CHECK (provider IN ('harbor', 'dockerhub', 'aliyun', 'other')),
    insecure INTEGER NOT NULL DEFAULT 0 CHECK (insecure IN (0, 1)),
    ca_bundle TEXT,
    verify_status TEXT NOT NULL DEFAULT 'untested' CHECK (verify_status IN ('success', 'failed', 'untested')),
    verify_message TEXT,
    verify_timestamp INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (namespace, name)
) STRICT;

CREATE TABLE repositories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    -- The store refuses to delete a secret that a repository uses; the foreign key only backs that up.
    registry_ref_namespace TEXT NOT NULL,
    registry_ref_name TEXT NOT NULL,
    sync_interval_secs INTEGER NOT NULL CHECK (sync_interval_secs > 0),
    sync_timeout_secs INTEGER NOT NULL CHECK (sync_timeout_secs > 0),
    retry_count INTEGER NOT NULL CHECK (retry_count >= 0),
    sync_status TEXT CHECK (sync_status IN ('Syncing', 'Success', 'Failed')),
    sync_message TEXT,
    last_synced INTEGER,
    next_sync_at INTEGER NOT NULL,
    manifest TEXT,
    -- The queued or running sync job. No foreign key on purpose: finishing a job deletes it without
    -- touching this row (no cascade, so no lock taken job first, repository second); a job_id whose job
    -- is gone counts as none.
    job_id INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (namespace, name),
    FOREIGN KEY (registry_ref_namespace, registry_ref_name)
        REFERENCES registry_secrets (namespace, name) ON DELETE RESTRICT
) STRICT;

CREATE INDEX repositories_next_sync_at ON repositories (next_sync_at);
CREATE INDEX repositories_registry_ref ON repositories (registry_ref_namespace, registry_ref_name);
