-- 0007: the trust boundary (docs/SECURITY.md). No egress object reads or
-- writes a relation that Odoo's role owns: the audit settings come in
-- through an egress-owned inbox that Odoo may only INSERT into, the signed
-- head is no longer mirrored into Odoo's ir_config_parameter, a signed head
-- must name a row that exists with that hash, and retention pruning goes
-- through one function that enforces the configured retention and the
-- signed head, and requires its own journal entry in the same transaction.

-- Settings, as Odoo hands them over: one row per change, never updated or
-- removed; the latest row of a key is its value (NULL: the key was removed,
-- the default applies). Odoo's role inserts through the view
-- public.network_egress_setting; who and when are stamped here, not taken
-- from the inserter.
CREATE TABLE IF NOT EXISTS egress.setting (
    id        bigserial PRIMARY KEY,
    key       text NOT NULL CHECK (key IN (
                  'mit_network_audit.enabled',
                  'mit_network_audit.strict_redaction',
                  'mit_network_audit.retention_days',
                  'mit_network_audit.disabled_channels')),
    value     text CHECK (length(value) <= 1000),
    -- The Odoo user who changed it, as Odoo says (informative only).
    odoo_uid  bigint,
    set_at    timestamptz NOT NULL DEFAULT now(),
    db_user   text NOT NULL DEFAULT current_user
);
CREATE INDEX IF NOT EXISTS setting_key_id ON egress.setting (key, id DESC);

-- The id comes from this trigger alone, which runs as the owner: Odoo's
-- role, inserting through its view, needs no right on the schema or the
-- sequence. It reads and writes nothing but the new row and the sequence.
ALTER TABLE egress.setting ALTER COLUMN id DROP DEFAULT;

CREATE OR REPLACE FUNCTION egress.stamp_setting() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The inserter chooses none of these (an id of its own would pin
    -- the order of changes).
    NEW.id := nextval('egress.setting_id_seq');
    NEW.set_at := now();
    NEW.db_user := session_user;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS setting_stamp ON egress.setting;
CREATE TRIGGER setting_stamp BEFORE INSERT ON egress.setting
    FOR EACH ROW EXECUTE FUNCTION egress.stamp_setting();
DROP TRIGGER IF EXISTS setting_refuse_update_delete ON egress.setting;
CREATE TRIGGER setting_refuse_update_delete BEFORE UPDATE OR DELETE ON egress.setting
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();
DROP TRIGGER IF EXISTS setting_refuse_truncate ON egress.setting;
CREATE TRIGGER setting_refuse_truncate BEFORE TRUNCATE ON egress.setting
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_change();

-- Odoo's door into the inbox (an updatable view: an INSERT through it runs
-- with the view owner's rights on egress.setting, and only its columns).
CREATE OR REPLACE VIEW public.network_egress_setting AS
    SELECT id, key, value, odoo_uid, set_at, db_user FROM egress.setting;

-- What the egress side reads: the current value of each key.
CREATE OR REPLACE VIEW egress.current_setting AS
    SELECT DISTINCT ON (s.key) s.key, s.value
    FROM egress.setting s ORDER BY s.key, s.id DESC;

-- Options that only a superuser sets (by hand, with psql): none is set by
-- default. `vacuum_clock` = 'on' lets the collector prune with a clock of
-- its own choosing (tests, drills); the vacuum entry then says so.
CREATE TABLE IF NOT EXISTS egress.trust_option (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

-- The signed head is no longer mirrored into Odoo's table (the addon shows
-- it from public.network_signed_head).
DROP FUNCTION IF EXISTS egress.mirror_signed_head(text);

-- A signed head names a row that exists, with that hash.
CREATE OR REPLACE FUNCTION egress.check_signed_head() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM egress.journal j
                   WHERE j.seq = NEW.seq AND j.row_hash = NEW.row_hash) THEN
        RAISE EXCEPTION 'egress.signed_head: no journal row seq % has that row_hash', NEW.seq
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.database <> current_database() THEN
        RAISE EXCEPTION 'egress.signed_head: signed for database %, this is %',
            NEW.database, current_database()
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS signed_head_check ON egress.signed_head;
CREATE TRIGGER signed_head_check BEFORE INSERT ON egress.signed_head
    FOR EACH ROW EXECUTE FUNCTION egress.check_signed_head();

-- Every prune, as the pruning function recorded it. A deferred check at
-- commit requires the `vacuum` journal entry for the range, appended after
-- the head the prune saw: no prune without its entry.
CREATE TABLE IF NOT EXISTS egress.prune_log (
    id           bigserial PRIMARY KEY,
    pruned_at    timestamptz NOT NULL DEFAULT now(),
    first_seq    bigint NOT NULL,
    last_seq     bigint NOT NULL,
    head_before  bigint NOT NULL,
    cutoff       timestamptz NOT NULL,
    retention_days integer NOT NULL,
    clock_override boolean NOT NULL
);

CREATE OR REPLACE FUNCTION egress.require_vacuum_entry() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM egress.journal j
        WHERE j.seq > NEW.head_before AND j.kind = 'vacuum'
          AND CASE WHEN j.kind = 'vacuum' AND j.detail IS NOT NULL AND left(j.detail, 1) = '{'
                   THEN (j.detail::jsonb ->> 'first_seq') = NEW.first_seq::text
                    AND (j.detail::jsonb ->> 'last_seq') = NEW.last_seq::text
                   ELSE false END) THEN
        RAISE EXCEPTION 'rows % to % were pruned without their vacuum entry in the journal',
            NEW.first_seq, NEW.last_seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS prune_log_requires_entry ON egress.prune_log;
CREATE CONSTRAINT TRIGGER prune_log_requires_entry AFTER INSERT ON egress.prune_log
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION egress.require_vacuum_entry();
DROP TRIGGER IF EXISTS prune_log_refuse_update_delete ON egress.prune_log;
CREATE TRIGGER prune_log_refuse_update_delete BEFORE UPDATE OR DELETE ON egress.prune_log
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();

-- The collector's one way to prune: the retention is the configured one
-- (egress.setting), "now" is the server's unless a superuser allowed a
-- clock (egress.trust_option vacuum_clock), the rows go through
-- egress.vacuum_journal's rules (below the latest matching signed head, in
-- the rollups), and the caller must journal the `vacuum` entry before it
-- commits. Returns no row when nothing may go.
CREATE OR REPLACE FUNCTION egress.prune_journal(p_max_rows bigint, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (first_seq bigint, last_seq bigint, removed bigint, anchor bytea,
               signed_seq bigint, cutoff timestamptz, retention_days integer,
               clock_override boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_days integer;
    v_text text;
    v_now timestamptz := now();
    v_override boolean := false;
    v_head bigint;
    r record;
BEGIN
    SELECT c.value INTO v_text FROM egress.current_setting c
        WHERE c.key = 'mit_network_audit.retention_days';
    v_days := CASE WHEN btrim(coalesce(v_text, '')) ~ '^[0-9]{1,6}$'
                   THEN btrim(v_text)::integer ELSE 0 END;
    IF v_days = 0 THEN
        RETURN;
    END IF;
    IF p_now IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM egress.trust_option o
                       WHERE o.key = 'vacuum_clock' AND o.value = 'on') THEN
            RAISE EXCEPTION 'a vacuum clock is not allowed on this database (egress.trust_option vacuum_clock)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        v_now := p_now;
        v_override := true;
    END IF;
    PERFORM pg_advisory_xact_lock(111494975288179);
    SELECT max(j.seq) INTO v_head FROM egress.journal j;
    SELECT * INTO r FROM egress.vacuum_journal(v_now - make_interval(days => v_days), p_max_rows);
    IF NOT FOUND OR r.first_seq IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO egress.prune_log (first_seq, last_seq, head_before, cutoff, retention_days, clock_override)
        VALUES (r.first_seq, r.last_seq, v_head, v_now - make_interval(days => v_days), v_days, v_override);
    first_seq := r.first_seq;
    last_seq := r.last_seq;
    removed := r.removed;
    anchor := r.anchor;
    signed_seq := r.signed_seq;
    cutoff := v_now - make_interval(days => v_days);
    retention_days := v_days;
    clock_override := v_override;
    RETURN NEXT;
END
$$;

ALTER TABLE egress.setting OWNER TO egress_owner;
ALTER VIEW public.network_egress_setting OWNER TO egress_owner;
ALTER VIEW egress.current_setting OWNER TO egress_owner;
ALTER TABLE egress.trust_option OWNER TO egress_owner;
ALTER TABLE egress.prune_log OWNER TO egress_owner;
ALTER FUNCTION egress.stamp_setting() OWNER TO egress_owner;
ALTER FUNCTION egress.check_signed_head() OWNER TO egress_owner;
ALTER FUNCTION egress.require_vacuum_entry() OWNER TO egress_owner;
ALTER FUNCTION egress.prune_journal(bigint, timestamptz) OWNER TO egress_owner;
REVOKE ALL ON FUNCTION egress.prune_journal(bigint, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION egress.vacuum_journal(timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON public.network_egress_setting FROM PUBLIC;
-- Functions are executable by PUBLIC by default: these are trigger
-- functions, but nothing is gained by letting anyone call them.
REVOKE ALL ON FUNCTION egress.stamp_setting() FROM PUBLIC;
REVOKE ALL ON FUNCTION egress.check_signed_head() FROM PUBLIC;
REVOKE ALL ON FUNCTION egress.require_vacuum_entry() FROM PUBLIC;
