ALTER TABLE imports DROP COLUMN registry_secret_name;
ALTER TABLE imports DROP COLUMN registry_secret_namespace;
