-- Every committed change is announced on this schema's change channel, which servers listen on to know
-- when what they keep in memory may be stale (see the store's `changes` module): one notification per
-- statement, which PostgreSQL folds with the transaction's others and delivers when it commits.
CREATE FUNCTION imagegate_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imagegate_changes_' || md5(TG_TABLE_SCHEMA), '');
    RETURN NULL;
END
$$;

-- On every table there is; a later migration that adds a table adds its trigger (a test checks).
DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '\_\_%' LOOP
        EXECUTE format(
            'CREATE TRIGGER imagegate_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION imagegate_data_changed()', t);
    END LOOP;
END
$$;
