-- 0023: settings and catalogue changes are pushed to the collectors. After
-- any statement that hands over a setting (egress.setting) or edits the
-- Egress Components catalogue (egress.component), the channel
-- `egress_policy` is notified, at commit, and every collector listening on
-- this database re-reads both from these tables.
--
-- The notification carries nothing (an empty payload): anybody who can
-- connect may NOTIFY any channel, Odoo's role included, so a notification
-- is only ever a hint to re-read what egress_owner's tables say, never data.
-- The collector coalesces them (one re-read in flight per database, and at
-- most one every 100 ms), so a flood costs it a few re-reads, no more.
--
-- Statement-level, not per row: a statement that inserts a thousand
-- catalogue entries notifies once, and PostgreSQL folds identical
-- notifications of one transaction into one.

-- Not SECURITY DEFINER: pg_notify needs no right, and the function touches
-- no relation. It runs as whoever changed the table; its search_path is
-- pinned so that nothing Odoo's role made can stand in for pg_notify.
CREATE OR REPLACE FUNCTION egress.notify_policy_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('egress_policy', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS setting_notify ON egress.setting;
CREATE TRIGGER setting_notify AFTER INSERT ON egress.setting
    FOR EACH STATEMENT EXECUTE FUNCTION egress.notify_policy_changed();
DROP TRIGGER IF EXISTS component_notify ON egress.component;
CREATE TRIGGER component_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON egress.component
    FOR EACH STATEMENT EXECUTE FUNCTION egress.notify_policy_changed();

ALTER FUNCTION egress.notify_policy_changed() OWNER TO egress_owner;
-- A trigger function needs no EXECUTE right to fire; nobody calls it.
REVOKE ALL ON FUNCTION egress.notify_policy_changed() FROM PUBLIC;
