DROP INDEX imports_active_target;
