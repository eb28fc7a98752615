-- 0005: the Trust Report's rollups, the retention vacuum's one privileged
-- path, and recorded verification results.
--
-- Rollups are sums of journal rows kept in tables of their own. The vacuum
-- never touches them, so the history of who talked to whom outlives the
-- detail rows it prunes. `egress.rollup_state.watermark` is the last journal
-- seq folded into them; it moves in the same transaction as the sums, so a
-- restarted collector continues from it without counting a row twice.

-- Calls, per UTC day (of recorded_at) × attributed addon × component × class
-- × channel × host. Absent text is '' (a key column cannot be NULL), class
-- absent is 'unknown'; the read view turns '' back into NULL.
CREATE TABLE egress.rollup (
    -- A stable id for Odoo models; the key is the composite below.
    id           bigserial UNIQUE,
    day          date NOT NULL,
    addon        text NOT NULL,
    component    text NOT NULL,
    class        text NOT NULL,
    channel      text NOT NULL,
    host         text NOT NULL,
    calls        bigint NOT NULL,
    bytes_out    bigint NOT NULL,
    bytes_in     bigint NOT NULL,
    -- Calls with an error_class, or a status of 400 or more.
    errors       bigint NOT NULL,
    self_egress  bigint NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (day, addon, component, class, channel, host)
);

-- Gap entries per UTC day and reason: how many entries, how many events lost.
CREATE TABLE egress.rollup_gap (
    day          date NOT NULL,
    reason       text NOT NULL,
    entries      bigint NOT NULL,
    events       bigint NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (day, reason)
);

-- Rows that are rare and matter one by one (settings changes, vacuums): kept
-- whole, so capture on/off history survives the rows' pruning.
CREATE TABLE egress.rollup_event (
    seq          bigint PRIMARY KEY,
    recorded_at  timestamptz NOT NULL,
    kind         text NOT NULL,
    detail       text
);

-- One row: the last journal seq folded into the three tables above.
CREATE TABLE egress.rollup_state (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    watermark    bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO egress.rollup_state (id, watermark) VALUES (true, 0);

-- Outcomes of `egress-collector verify` (and of Odoo's Verify button), for
-- the report's trust chip. Append-only like the journal.
CREATE TABLE egress.verify_result (
    id           bigserial PRIMARY KEY,
    checked_at   timestamptz NOT NULL DEFAULT now(),
    verified     boolean NOT NULL,
    rows_checked bigint NOT NULL,
    first_seq    bigint,
    last_seq     bigint,
    broken_seq   bigint,
    message      text NOT NULL,
    checked_by   text NOT NULL DEFAULT current_user
);

CREATE TRIGGER verify_result_refuse_update_delete
    BEFORE UPDATE OR DELETE ON egress.verify_result
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();

CREATE TRIGGER verify_result_refuse_truncate
    BEFORE TRUNCATE ON egress.verify_result
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_change();

-- DELETE on the journal: refused, except inside egress.vacuum_journal, which
-- alone sets `egress.vacuum` (through its SET clause, undone when it
-- returns) and runs as the owner. Anyone may set a custom setting, hence the
-- owner check too; UPDATE and TRUNCATE stay refused for everyone.
CREATE FUNCTION egress.refuse_delete_outside_vacuum() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('egress.vacuum', true) = 'on' AND current_user = 'egress_owner' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '%.% is append-only: DELETE refused (only the retention vacuum deletes rows)',
        TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER journal_refuse_update_delete ON egress.journal;

CREATE TRIGGER journal_refuse_update
    BEFORE UPDATE ON egress.journal
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();

-- Per statement: one check, however many rows the vacuum removes.
CREATE TRIGGER journal_refuse_delete
    BEFORE DELETE ON egress.journal
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_delete_outside_vacuum();

-- The only way rows leave the journal. Removes the oldest rows, as one
-- prefix (the chain stays verifiable from the first remaining row's
-- prev_hash), at most `p_max_rows` of them, each:
--   recorded before `p_cutoff` (the prefix stops at the first row that is not),
--   strictly below the latest signed head that matches the journal (a head
--     whose row_hash is not the journal's is ignored: it proves nothing),
--   and already folded into the rollups (at or below the watermark).
-- Takes the chain lock (egress_proto::CHAIN_LOCK_KEY) so no appender writes
-- meanwhile; the caller journals the `vacuum` entry in the same transaction.
-- Returns the removed range, its size and the new anchor (the row_hash of
-- the last removed row = prev_hash of the first remaining one); no row when
-- nothing may be removed.
CREATE FUNCTION egress.vacuum_journal(p_cutoff timestamptz, p_max_rows bigint)
RETURNS TABLE (first_seq bigint, last_seq bigint, removed bigint, anchor bytea, signed_seq bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET egress.vacuum = 'on'
AS $$
DECLARE
    v_first bigint;
    v_signed bigint;
    v_watermark bigint;
    v_limit bigint;
    v_stop bigint;
    v_last bigint;
    v_anchor bytea;
    v_removed bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(111494975288179);
    SELECT j.seq INTO v_first FROM egress.journal j ORDER BY j.seq LIMIT 1;
    SELECT max(h.seq) INTO v_signed
        FROM egress.signed_head h JOIN egress.journal j ON j.seq = h.seq AND j.row_hash = h.row_hash;
    SELECT s.watermark INTO v_watermark FROM egress.rollup_state s;
    IF v_first IS NULL OR v_signed IS NULL OR v_watermark IS NULL OR p_max_rows < 1 THEN
        RETURN;
    END IF;
    v_limit := least(v_signed - 1, v_watermark, v_first + p_max_rows - 1);
    -- Walks the primary key from the oldest row: it reads only the rows it
    -- is about to remove, plus the one that stops it.
    SELECT j.seq INTO v_stop FROM egress.journal j
        WHERE j.seq >= v_first AND j.seq <= v_limit AND j.recorded_at >= p_cutoff
        ORDER BY j.seq LIMIT 1;
    v_last := coalesce(v_stop - 1, v_limit);
    IF v_last < v_first THEN
        RETURN;
    END IF;
    SELECT j.row_hash INTO v_anchor FROM egress.journal j WHERE j.seq = v_last;
    DELETE FROM egress.journal j WHERE j.seq >= v_first AND j.seq <= v_last;
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    first_seq := v_first;
    last_seq := v_last;
    removed := v_removed;
    anchor := v_anchor;
    signed_seq := v_signed;
    RETURN NEXT;
END
$$;

-- What Odoo reads: the rollups, with '' back to NULL.
CREATE VIEW public.network_egress_rollup AS
    SELECT id, day, NULLIF(addon, '') AS addon, NULLIF(component, '') AS component, class,
           channel, NULLIF(host, '') AS host, calls, bytes_out, bytes_in, errors, self_egress,
           first_seen, last_seen
    FROM egress.rollup;

CREATE VIEW public.network_egress_rollup_gap AS
    SELECT day, reason, entries, events, first_seen, last_seen FROM egress.rollup_gap;

CREATE VIEW public.network_egress_rollup_event AS
    SELECT seq AS id, seq, recorded_at, kind, detail FROM egress.rollup_event;

CREATE VIEW public.network_egress_verify_result AS
    SELECT id, checked_at, verified, rows_checked, first_seq, last_seq, broken_seq, message, checked_by
    FROM egress.verify_result;

ALTER TABLE egress.rollup OWNER TO egress_owner;
ALTER TABLE egress.rollup_gap OWNER TO egress_owner;
ALTER TABLE egress.rollup_event OWNER TO egress_owner;
ALTER TABLE egress.rollup_state OWNER TO egress_owner;
ALTER TABLE egress.verify_result OWNER TO egress_owner;
ALTER FUNCTION egress.refuse_delete_outside_vacuum() OWNER TO egress_owner;
ALTER FUNCTION egress.vacuum_journal(timestamptz, bigint) OWNER TO egress_owner;
REVOKE ALL ON FUNCTION egress.vacuum_journal(timestamptz, bigint) FROM PUBLIC;
ALTER VIEW public.network_egress_rollup OWNER TO egress_owner;
ALTER VIEW public.network_egress_rollup_gap OWNER TO egress_owner;
ALTER VIEW public.network_egress_rollup_event OWNER TO egress_owner;
ALTER VIEW public.network_egress_verify_result OWNER TO egress_owner;
REVOKE ALL ON public.network_egress_rollup FROM PUBLIC;
REVOKE ALL ON public.network_egress_rollup_gap FROM PUBLIC;
REVOKE ALL ON public.network_egress_rollup_event FROM PUBLIC;
REVOKE ALL ON public.network_egress_verify_result FROM PUBLIC;
