DROP TRIGGER image_tags_generation ON image_tags;
DROP TRIGGER images_generation ON images;
DROP FUNCTION bump_catalog_generation();
DROP TABLE catalog_generation;
