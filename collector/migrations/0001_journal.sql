-- 0001: the hash-chained journal, per-worker sequence cursors, and Odoo's read view.
-- Run by `egress-collector setup` as a superuser, inside one transaction, once.

CREATE TABLE egress.journal (
    seq           bigint PRIMARY KEY,
    prev_hash     bytea NOT NULL,
    row_hash      bytea NOT NULL,
    database      text NOT NULL,
    kind          text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    collector     text NOT NULL,
    worker_id     bigint,
    worker_pid    bigint,
    worker_uid    bigint,
    worker_seq    bigint,
    started_at    timestamptz,
    duration_us   bigint,
    channel       text,
    protocol      text,
    direction     text,
    method        text,
    host          text,
    port          bigint,
    path          text,
    query_keys    text[],
    header_names  text[],
    src_ip        text,
    src_port      bigint,
    dst_ip        text,
    dst_port      bigint,
    tls           boolean,
    status        bigint,
    error_class   text,
    bytes_out     bigint,
    bytes_in      bigint,
    fingerprint   bytea,
    addon         text,
    addon_path    text[],
    stack         text[],
    trigger_kind  text,
    trigger_name  text,
    odoo_uid      bigint,
    component     text,
    class         text,
    self_egress   boolean,
    gap_count     bigint,
    gap_reason    text,
    detail        text
);

-- The last sequence number accounted for each worker, written in the same
-- transaction as its rows, so a restarted collector sees exactly which
-- events were lost while it was down.
CREATE TABLE egress.worker_cursor (
    worker_id   bigint PRIMARY KEY,
    last_seq    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Append-only at the database level: whoever connects, rows cannot be
-- changed or removed. Only the table owner (a NOLOGIN role) or a superuser
-- could disable these triggers, and the chain would still show it.
CREATE FUNCTION egress.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'egress.journal is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER journal_refuse_update_delete
    BEFORE UPDATE OR DELETE ON egress.journal
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();

CREATE TRIGGER journal_refuse_truncate
    BEFORE TRUNCATE ON egress.journal
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_change();

-- What Odoo reads. `id` is what Odoo models expect as a primary key.
CREATE VIEW public.network_egress_log AS
    SELECT seq AS id, j.* FROM egress.journal j;

ALTER TABLE egress.journal OWNER TO egress_owner;
ALTER TABLE egress.worker_cursor OWNER TO egress_owner;
ALTER FUNCTION egress.refuse_change() OWNER TO egress_owner;
ALTER VIEW public.network_egress_log OWNER TO egress_owner;
REVOKE ALL ON public.network_egress_log FROM PUBLIC;
