-- An import is refused when another source already holds its target repository; this finds the holder.
CREATE INDEX imports_target_repository ON imports (target_registry, target_repository);
