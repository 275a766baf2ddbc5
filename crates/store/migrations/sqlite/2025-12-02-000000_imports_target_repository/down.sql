DROP INDEX imports_target_repository;
