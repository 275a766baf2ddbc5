DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '\_\_%' LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS imagegate_data_changed ON %I', t);
    END LOOP;
END
$$;
DROP FUNCTION imagegate_data_changed();
