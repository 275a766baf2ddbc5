DROP TABLE station_downloads;
DROP TABLE station_registries;
DROP TABLE sessions;
