DROP INDEX jobs_one_retention;
DROP INDEX imports_finished;
