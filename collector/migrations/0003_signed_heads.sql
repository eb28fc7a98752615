-- 0003: signed chain heads (append-only), Odoo's view of them, and the one
-- narrow path by which the collector mirrors the latest into Odoo's settings.

CREATE TABLE egress.signed_head (
    id            bigserial PRIMARY KEY,
    database      text NOT NULL,
    seq           bigint NOT NULL,
    row_hash      bytea NOT NULL,
    -- The exact instant signed (microseconds since the epoch), and the same
    -- as a timestamp for people.
    signed_at_us  bigint NOT NULL,
    signed_at     timestamptz NOT NULL,
    hmac          bytea NOT NULL,
    signature     bytea NOT NULL,
    public_key    bytea NOT NULL,
    collector     text NOT NULL
);

-- One refusal for every append-only table, naming the table.
CREATE OR REPLACE FUNCTION egress.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER signed_head_refuse_update_delete
    BEFORE UPDATE OR DELETE ON egress.signed_head
    FOR EACH ROW EXECUTE FUNCTION egress.refuse_change();

CREATE TRIGGER signed_head_refuse_truncate
    BEFORE TRUNCATE ON egress.signed_head
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_change();

CREATE VIEW public.network_signed_head AS
    SELECT id, database, seq, row_hash, signed_at_us, signed_at, hmac, signature, public_key, collector
    FROM egress.signed_head;

-- Writes only `mit_network_audit.signed_head`, whoever calls it; runs with
-- its owner's rights so the collector's role needs no write access to Odoo's
-- settings. Without Odoo's table (not initialised yet) it does nothing.
CREATE FUNCTION egress.mirror_signed_head(head text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('public.ir_config_parameter') IS NULL THEN
        RETURN false;
    END IF;
    UPDATE public.ir_config_parameter SET value = head WHERE key = 'mit_network_audit.signed_head';
    IF NOT FOUND THEN
        INSERT INTO public.ir_config_parameter (key, value) VALUES ('mit_network_audit.signed_head', head);
    END IF;
    RETURN true;
END
$$;

ALTER TABLE egress.signed_head OWNER TO egress_owner;
ALTER VIEW public.network_signed_head OWNER TO egress_owner;
ALTER FUNCTION egress.mirror_signed_head(text) OWNER TO egress_owner;
REVOKE ALL ON FUNCTION egress.mirror_signed_head(text) FROM PUBLIC;
REVOKE ALL ON public.network_signed_head FROM PUBLIC;
