-- The registry secret an import reads its source with (none: the configured credentials).
ALTER TABLE imports ADD COLUMN registry_secret_namespace TEXT;
ALTER TABLE imports ADD COLUMN registry_secret_name TEXT;
