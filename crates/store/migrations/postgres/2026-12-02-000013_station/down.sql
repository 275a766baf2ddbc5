DROP TABLE station_registries;
DROP TABLE sessions;
