-- Catalog search through an index, and indexes for every filter and order the listings offer (SQLite).
-- Keep in step with ../../postgres/2026-12-02-200000_search_index/up.sql.

-- The images' names and descriptions as trigrams: a substring of three characters or more is found
-- through the index (`images_search MATCH '"redis"'`). An external-content table: it stores only the
-- index and reads the text from `images`; the triggers below keep it in step in each change's own
-- transaction. The trigram tokenizer folds case, so it finds a superset of what the listing's
-- case-insensitive `LIKE` keeps; the listing applies that `LIKE` to the rows it finds.
CREATE VIRTUAL TABLE images_search USING fts5(
    image_name, description, content = 'images', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER images_search_inserted AFTER INSERT ON images
BEGIN
    INSERT INTO images_search (rowid, image_name, description) VALUES (new.id, new.image_name, new.description);
END;
CREATE TRIGGER images_search_deleted AFTER DELETE ON images
BEGIN
    INSERT INTO images_search (images_search, rowid, image_name, description)
    VALUES ('delete', old.id, old.image_name, old.description);
END;
CREATE TRIGGER images_search_updated AFTER UPDATE OF image_name, description ON images
BEGIN
    INSERT INTO images_search (images_search, rowid, image_name, description)
    VALUES ('delete', old.id, old.image_name, old.description);
    INSERT INTO images_search (rowid, image_name, description) VALUES (new.id, new.image_name, new.description);
END;
INSERT INTO images_search (images_search) VALUES ('rebuild');

-- The catalog's status filter, in id order (SQLite appends the rowid to every index).
CREATE INDEX images_approval_status ON images (approval_status);
-- The platform's listing: `ready` (a state) in its default order, and its order by repository.
CREATE INDEX imports_state_created_at ON imports (state, created_at);
CREATE INDEX imports_repository ON imports (target_repository);
-- The platform's listing of one user's imports.
CREATE INDEX imports_created_by ON imports (created_by, created_at);
-- Export records by phase, newest first.
CREATE INDEX exports_phase_created_at ON exports (phase, created_at);
-- Audit events of one image, one kind or one actor, newest first.
DROP INDEX audit_events_image_id;
CREATE INDEX audit_events_image_id ON audit_events (image_id, occurred_at);
CREATE INDEX audit_events_event_type ON audit_events (event_type, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor, occurred_at);

-- How many images each (status, category) has, and how many imports each state has, kept by triggers in
-- each change's own transaction: a listing's total without a filter, or with only those filters, and the
-- categories, are read from here instead of counted over every row. An image without a category counts
-- under '' (a category is never empty).
CREATE TABLE catalog_counts (
    approval_status TEXT NOT NULL,
    category TEXT NOT NULL,
    image_count INTEGER NOT NULL,
    PRIMARY KEY (approval_status, category)
) STRICT;
INSERT INTO catalog_counts (approval_status, category, image_count)
SELECT approval_status, coalesce(category, ''), count(*) FROM images GROUP BY approval_status, coalesce(category, '');
CREATE TRIGGER images_counted_inserted AFTER INSERT ON images
BEGIN
    INSERT OR IGNORE INTO catalog_counts (approval_status, category, image_count)
    VALUES (new.approval_status, coalesce(new.category, ''), 0);
    UPDATE catalog_counts SET image_count = image_count + 1
    WHERE approval_status = new.approval_status AND category = coalesce(new.category, '');
END;
CREATE TRIGGER images_counted_deleted AFTER DELETE ON images
BEGIN
    UPDATE catalog_counts SET image_count = image_count - 1
    WHERE approval_status = old.approval_status AND category = coalesce(old.category, '');
END;
CREATE TRIGGER images_counted_updated AFTER UPDATE OF approval_status, category ON images
WHEN old.approval_status IS NOT new.approval_status OR old.category IS NOT new.category
BEGIN
    UPDATE catalog_counts SET image_count = image_count - 1
    WHERE approval_status = old.approval_status AND category = coalesce(old.category, '');
    INSERT OR IGNORE INTO catalog_counts (approval_status, category, image_count)
    VALUES (new.approval_status, coalesce(new.category, ''), 0);
    UPDATE catalog_counts SET image_count = image_count + 1
    WHERE approval_status = new.approval_status AND category = coalesce(new.category, '');
END;

CREATE TABLE import_counts (
    state TEXT PRIMARY KEY,
    import_count INTEGER NOT NULL
) STRICT;
INSERT INTO import_counts (state, import_count)
SELECT state, 0 FROM (
    SELECT 'queued' AS state UNION ALL SELECT 'running' UNION ALL SELECT 'succeeded' UNION ALL SELECT 'failed'
    UNION ALL SELECT 'canceled'
);
UPDATE import_counts SET import_count = (SELECT count(*) FROM imports WHERE imports.state = import_counts.state);
CREATE TRIGGER imports_counted_inserted AFTER INSERT ON imports
BEGIN
    UPDATE import_counts SET import_count = import_count + 1 WHERE state = new.state;
END;
CREATE TRIGGER imports_counted_deleted AFTER DELETE ON imports
BEGIN
    UPDATE import_counts SET import_count = import_count - 1 WHERE state = old.state;
END;
CREATE TRIGGER imports_counted_updated AFTER UPDATE OF state ON imports WHEN old.state IS NOT new.state
BEGIN
    UPDATE import_counts SET import_count = import_count - 1 WHERE state = old.state;
    UPDATE import_counts SET import_count = import_count + 1 WHERE state = new.state;
END;
