-- 0022: the collectors that write this database (several hosts, one chain).
-- One row per collector and signing key: who it is, the public key it signs
-- heads with, when it was first seen and its latest heartbeat. `keys --db`
-- lists them beside what the journal and the signed heads say; an auditor
-- pins the keyring from them (docs/SECURITY.md).
--
-- The collector's role never writes the table: it calls
-- egress.collector_heartbeat, which inserts the row of (collector, key) or
-- moves that row's heartbeat forward, and nothing else. A row's identity
-- and first sighting never change, rows are never removed, and a
-- heartbeat never goes back in time.
CREATE TABLE IF NOT EXISTS egress.collector_seen (
    collector     text NOT NULL CHECK (length(collector) BETWEEN 1 AND 200),
    public_key    bytea NOT NULL CHECK (length(public_key) = 32),
    first_seen    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    -- The collector's own version, as it says (informative only).
    version       text CHECK (length(version) <= 100),
    PRIMARY KEY (collector, public_key)
);

CREATE OR REPLACE FUNCTION egress.guard_collector_seen() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'egress.collector_seen: rows are never removed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.collector <> OLD.collector OR NEW.public_key <> OLD.public_key
       OR NEW.first_seen <> OLD.first_seen THEN
        RAISE EXCEPTION 'egress.collector_seen: a collector''s name, key and first sighting never change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.heartbeat_at < OLD.heartbeat_at THEN
        NEW.heartbeat_at := OLD.heartbeat_at;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS collector_seen_guard ON egress.collector_seen;
CREATE TRIGGER collector_seen_guard BEFORE UPDATE OR DELETE ON egress.collector_seen
    FOR EACH ROW EXECUTE FUNCTION egress.guard_collector_seen();
DROP TRIGGER IF EXISTS collector_seen_refuse_truncate ON egress.collector_seen;
CREATE TRIGGER collector_seen_refuse_truncate BEFORE TRUNCATE ON egress.collector_seen
    FOR EACH STATEMENT EXECUTE FUNCTION egress.refuse_change();

-- The collector's one way in: its own row (its name and its key), stamped
-- with the server's clock, not the caller's.
CREATE OR REPLACE FUNCTION egress.collector_heartbeat(p_collector text, p_public_key bytea,
                                                      p_version text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO egress.collector_seen AS c (collector, public_key, version)
        VALUES (p_collector, p_public_key, left(p_version, 100))
        ON CONFLICT (collector, public_key)
        DO UPDATE SET heartbeat_at = now(), version = EXCLUDED.version;
END
$$;

CREATE OR REPLACE VIEW public.network_egress_collector AS
    SELECT collector, public_key, first_seen, heartbeat_at, version
    FROM egress.collector_seen;

ALTER TABLE egress.collector_seen OWNER TO egress_owner;
ALTER VIEW public.network_egress_collector OWNER TO egress_owner;
ALTER FUNCTION egress.guard_collector_seen() OWNER TO egress_owner;
ALTER FUNCTION egress.collector_heartbeat(text, bytea, text) OWNER TO egress_owner;
REVOKE ALL ON FUNCTION egress.guard_collector_seen() FROM PUBLIC;
REVOKE ALL ON FUNCTION egress.collector_heartbeat(text, bytea, text) FROM PUBLIC;
REVOKE ALL ON public.network_egress_collector FROM PUBLIC;
