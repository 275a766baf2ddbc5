-- Catalog search through an index, and indexes for every filter and order the listings offer (PostgreSQL).
-- Keep in step with ../../sqlite/2026-12-02-200000_search_index/up.sql.

-- Trigram indexes on the lowered name and description serve the listing's `lower(…) LIKE lower('%…%')`
-- as it is, so search keeps its semantics. pg_trgm ships with PostgreSQL (a trusted extension: the
-- database's owner may create it). It lives in one schema per database, wherever it was created first
-- (`public` when this creates it), and its operator class is named with that schema, so the indexes work
-- whatever the connection's search_path. The lock keeps concurrent migrations from creating it twice.
DO $$
DECLARE
    trgm_schema text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('imagegate: CREATE EXTENSION pg_trgm'));
    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX images_name_trgm ON images USING gin (lower(image_name) %I.gin_trgm_ops)', trgm_schema);
    EXECUTE format(
        'CREATE INDEX images_description_trgm ON images USING gin (lower(description) %I.gin_trgm_ops)', trgm_schema
    );
END
$$;

-- The catalog's filters, in id order.
CREATE INDEX images_approval_status ON images (approval_status, id);
DROP INDEX images_category;
CREATE INDEX images_category ON images (category, id);
-- Approval requests by status, oldest first.
DROP INDEX image_approval_requests_status;
CREATE INDEX image_approval_requests_status ON image_approval_requests (status, id);
-- The platform's listing: each order with its tie-break on id, `ready` (a state) in the default order, and
-- one user's imports.
DROP INDEX imports_created_at;
CREATE INDEX imports_created_at ON imports (created_at, id);
DROP INDEX imports_target_tag;
CREATE INDEX imports_target_tag ON imports (target_tag, id);
CREATE INDEX imports_repository ON imports (target_repository, id);
CREATE INDEX imports_state_created_at ON imports (state, created_at, id);
CREATE INDEX imports_created_by ON imports (created_by, created_at, id);
-- Export records newest first, and by phase.
DROP INDEX exports_created_at;
CREATE INDEX exports_created_at ON exports (created_at, id);
CREATE INDEX exports_phase_created_at ON exports (phase, created_at, id);
-- Audit events newest first: all of them, of one image, one kind or one actor.
DROP INDEX audit_events_occurred_at;
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at, id);
DROP INDEX audit_events_image_id;
CREATE INDEX audit_events_image_id ON audit_events (image_id, occurred_at, id);
CREATE INDEX audit_events_event_type ON audit_events (event_type, occurred_at, id);
CREATE INDEX audit_events_actor ON audit_events (actor, occurred_at, id);

-- How many images each (status, category) has, and how many imports each state has, kept by triggers in
-- each change's own transaction: a listing's total without a filter, or with only those filters, and the
-- categories, are read from here instead of counted over every row. An image without a category counts
-- under '' (a category is never empty). Catalog changes already serialise on catalog_generation's row.
CREATE TABLE catalog_counts (
    approval_status TEXT NOT NULL,
    category TEXT NOT NULL,
    image_count BIGINT NOT NULL,
    PRIMARY KEY (approval_status, category)
);
INSERT INTO catalog_counts (approval_status, category, image_count)
SELECT approval_status, coalesce(category, ''), count(*) FROM images GROUP BY approval_status, coalesce(category, '');
-- A change that moves an image between two counts locks both in one order (so two opposite moves cannot
-- deadlock), after making sure the new one exists.
CREATE FUNCTION images_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO catalog_counts (approval_status, category, image_count)
        VALUES (NEW.approval_status, coalesce(NEW.category, ''), 0)
        ON CONFLICT (approval_status, category) DO NOTHING;
        PERFORM 1 FROM catalog_counts
        WHERE (approval_status, category) IN
            ((OLD.approval_status, coalesce(OLD.category, '')), (NEW.approval_status, coalesce(NEW.category, '')))
        ORDER BY approval_status, category
        FOR UPDATE;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE catalog_counts SET image_count = image_count - 1
        WHERE approval_status = OLD.approval_status AND category = coalesce(OLD.category, '');
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO catalog_counts AS c (approval_status, category, image_count)
        VALUES (NEW.approval_status, coalesce(NEW.category, ''), 1)
        ON CONFLICT (approval_status, category) DO UPDATE SET image_count = c.image_count + 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER images_counted_inserted_deleted AFTER INSERT OR DELETE ON images
FOR EACH ROW EXECUTE FUNCTION images_counted();
CREATE TRIGGER images_counted_updated AFTER UPDATE OF approval_status, category ON images
FOR EACH ROW WHEN (OLD.approval_status IS DISTINCT FROM NEW.approval_status OR OLD.category IS DISTINCT FROM NEW.category)
EXECUTE FUNCTION images_counted();

CREATE TABLE import_counts (
    state TEXT PRIMARY KEY,
    import_count BIGINT NOT NULL
);
INSERT INTO import_counts (state, import_count)
SELECT s.state, (SELECT count(*) FROM imports WHERE imports.state = s.state)
FROM (VALUES ('queued'), ('running'), ('succeeded'), ('failed'), ('canceled')) AS s (state);
-- A change of state locks both counts in one order, so that opposite changes (a claim, queued to running,
-- and a retry, running to queued) cannot deadlock.
CREATE FUNCTION imports_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM 1 FROM import_counts WHERE state IN (OLD.state, NEW.state) ORDER BY state FOR UPDATE;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE import_counts SET import_count = import_count - 1 WHERE state = OLD.state;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE import_counts SET import_count = import_count + 1 WHERE state = NEW.state;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER imports_counted_inserted_deleted AFTER INSERT OR DELETE ON imports
FOR EACH ROW EXECUTE FUNCTION imports_counted();
CREATE TRIGGER imports_counted_updated AFTER UPDATE OF state ON imports
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION imports_counted();
