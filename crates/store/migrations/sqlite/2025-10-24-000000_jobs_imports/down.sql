DROP TABLE exports;
DROP TABLE imports;
DROP TABLE jobs;
