-- A counter every change to the catalog's images and tags raises, in the transaction of the change, so
-- that a server can keep admission decisions in memory and know with one row's read when they are stale.
CREATE TABLE catalog_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 0);
CREATE FUNCTION bump_catalog_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER images_generation AFTER INSERT OR UPDATE OR DELETE ON images
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
CREATE TRIGGER image_tags_generation AFTER INSERT OR UPDATE OR DELETE ON image_tags
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
