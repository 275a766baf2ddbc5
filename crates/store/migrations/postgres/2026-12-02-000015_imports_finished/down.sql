DROP INDEX imports_finished;
