DROP TABLE repositories;
DROP TABLE registry_secrets;
