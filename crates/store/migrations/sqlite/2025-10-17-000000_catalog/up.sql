-- The catalog, its audit trail, and users (SQLite).
-- Keep in step with ../../postgres/2025-10-17-000000_catalog/up.sql and src/schema.rs:
-- ids and timestamps are 64-bit integers (timestamps in microseconds since the Unix epoch, UTC),
-- booleans are 0/1, event details are JSON text.

CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_name TEXT NOT NULL,
    registry TEXT NOT NULL,
    namespace TEXT NOT NULL,
    description TEXT,
    category TEXT,
    is_official INTEGER NOT NULL DEFAULT 0 CHECK (is_official IN (0, 1)),
    approval_status TEXT NOT NULL CHECK (approval_status IN ('pending', 'approved', 'rejected')),
    approved_by TEXT,
    approved_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (registry, namespace, image_name)
) STRICT;

CREATE INDEX images_category ON images (category);

CREATE TABLE image_tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    digest TEXT,
    size_bytes INTEGER,
    architecture TEXT,
    os TEXT,
    pushed_at INTEGER,
    is_recommended INTEGER NOT NULL DEFAULT 0 CHECK (is_recommended IN (0, 1)),
    is_deprecated INTEGER NOT NULL DEFAULT 0 CHECK (is_deprecated IN (0, 1)),
    security_scan_status TEXT,
    vulnerabilities_count INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (image_id, tag)
) STRICT;

-- At most one recommended tag per image, whatever the code above does.
CREATE UNIQUE INDEX image_tags_one_recommended ON image_tags (image_id) WHERE is_recommended;

CREATE TABLE image_approval_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_name TEXT NOT NULL,
    registry TEXT NOT NULL,
    namespace TEXT NOT NULL,
    tag TEXT,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reviewed_by TEXT,
    reviewed_at INTEGER,
    notes TEXT,
    rejection_reason TEXT,
    image_id INTEGER REFERENCES images (id) ON DELETE SET NULL
) STRICT;

CREATE INDEX image_approval_requests_status ON image_approval_requests (status);
CREATE INDEX image_approval_requests_image_id ON image_approval_requests (image_id);

-- No foreign keys: the history outlives what it describes.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    image_id INTEGER,
    tag_id INTEGER,
    request_id INTEGER,
    details TEXT NOT NULL
) STRICT;

CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_image_id ON audit_events (image_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

-- The commonly used official images the catalog starts with, all approved by `system` at migration time.
WITH seed (position, image_name, namespace, description, category, is_official) AS (VALUES
    (1, 'redis', 'library', 'Redis in-memory data structure store, used as a database, cache and message broker', 'database', 1),
    (2, 'postgres', 'library', 'PostgreSQL object-relational database system', 'database', 1),
    (3, 'mysql', 'library', 'MySQL relational database server', 'database', 1),
    (4, 'mongo', 'library', 'MongoDB document database', 'database', 1),
    (5, 'influxdb', 'library', 'InfluxDB time series database', 'database', 1),
    (6, 'nginx', 'library', 'NGINX web server and reverse proxy', 'web', 1),
    (7, 'node', 'library', 'Node.js JavaScript runtime', 'runtime', 1),
    (8, 'python', 'library', 'Python programming language runtime', 'runtime', 1),
    (9, 'grafana', 'grafana', 'Grafana dashboards and visualisation for metrics, logs and traces', 'monitoring', 0)
), clock (us) AS (SELECT CAST(unixepoch('subsec') * 1000000 AS INTEGER))
INSERT INTO images
    (image_name, registry, namespace, description, category, is_official, approval_status, approved_by, approved_at,
     created_at, updated_at)
SELECT image_name, 'docker.io', namespace, description, category, is_official, 'approved', 'system', us, us, us
FROM seed, clock
ORDER BY position;

WITH seed (position, tag, is_recommended) AS (VALUES
    (1, '7-alpine', 1),
    (2, '7.2-alpine', 0),
    (3, '7.4-alpine', 0),
    (4, 'latest', 0)
), clock (us) AS (SELECT CAST(unixepoch('subsec') * 1000000 AS INTEGER))
INSERT INTO image_tags (image_id, tag, architecture, os, is_recommended, is_deprecated, created_at, updated_at)
SELECT images.id, seed.tag, 'amd64', 'linux', seed.is_recommended, 0, us, us
FROM images, seed, clock
WHERE images.registry = 'docker.io' AND images.namespace = 'library' AND images.image_name = 'redis'
ORDER BY seed.position;
