-- A counter every change to the catalog's images and tags raises, in the transaction of the change, so
-- that a server can keep admission decisions in memory and know with one row's read when they are stale.
CREATE TABLE catalog_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 0);
CREATE TRIGGER images_inserted_generation AFTER INSERT ON images
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER images_updated_generation AFTER UPDATE ON images
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER images_deleted_generation AFTER DELETE ON images
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER image_tags_inserted_generation AFTER INSERT ON image_tags
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER image_tags_updated_generation AFTER UPDATE ON image_tags
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER image_tags_deleted_generation AFTER DELETE ON image_tags
BEGIN UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1; END;
