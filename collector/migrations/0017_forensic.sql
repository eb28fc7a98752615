-- 0017: forensic body capture (docs/SECURITY.md, "Forensic capture").
--
-- `egress.forensic_state`: whether capture is on for this database, for which
-- scope and until when; one row, written by the collector in the same
-- transaction as the journal entry (kind `forensic_capture`) that records
-- the change, so the journal is the history and this row only its summary.
--
-- `egress.forensic_body`: the sealed bodies. Each is XChaCha20-Poly1305
-- ciphertext under a key that lives only in the collector's state directory,
-- with the call's journal seq and row hash as associated data: it opens only
-- for the row it was sealed for. Odoo's role has no right on it at all; the
-- collector may insert and read, never update. A body goes with its call's
-- row when retention prunes the journal (ON DELETE CASCADE).
CREATE TABLE IF NOT EXISTS egress.forensic_state (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- The journal entry that set this state.
    entry_seq     bigint NOT NULL,
    active        boolean NOT NULL,
    host          text,
    addon         text,
    channel       text,
    expires_at    timestamptz,
    max_body_bytes bigint NOT NULL,
    changed_by    text NOT NULL,
    changed_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS egress.forensic_body (
    journal_seq   bigint NOT NULL REFERENCES egress.journal (seq) ON DELETE CASCADE,
    -- `request` or `response`.
    part          text NOT NULL CHECK (part IN ('request', 'response')),
    -- First 8 bytes of SHA-256 of the key, hex: which collector's key opens it.
    key_id        text NOT NULL,
    nonce         bytea NOT NULL,
    ciphertext    bytea NOT NULL,
    -- Bytes captured, and the whole body's length (larger when truncated).
    captured_len  bigint NOT NULL,
    total_len     bigint NOT NULL,
    truncated     boolean NOT NULL,
    stored_at     timestamptz NOT NULL,
    PRIMARY KEY (journal_seq, part)
);

CREATE OR REPLACE FUNCTION egress.forensic_body_immutable() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'egress.forensic_body is append-only';
END $$;

DROP TRIGGER IF EXISTS forensic_body_no_update ON egress.forensic_body;
CREATE TRIGGER forensic_body_no_update BEFORE UPDATE ON egress.forensic_body
    FOR EACH ROW EXECUTE FUNCTION egress.forensic_body_immutable();

-- What the Trust Report shows Odoo: whether capture is on, its scope, expiry
-- and who switched it. Never a body.
CREATE OR REPLACE VIEW public.network_forensic_state AS
    SELECT 1 AS id, entry_seq, active, host, addon, channel, expires_at, max_body_bytes,
           changed_by, changed_at
    FROM egress.forensic_state;

ALTER TABLE egress.forensic_state OWNER TO egress_owner;
ALTER TABLE egress.forensic_body OWNER TO egress_owner;
ALTER FUNCTION egress.forensic_body_immutable() OWNER TO egress_owner;
ALTER VIEW public.network_forensic_state OWNER TO egress_owner;
REVOKE ALL ON egress.forensic_body FROM PUBLIC;
REVOKE ALL ON public.network_forensic_state FROM PUBLIC;
