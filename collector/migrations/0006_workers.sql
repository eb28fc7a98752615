-- 0006: the Odoo workers seen sending events for this database, for the
-- Trust Report's capture coverage, and Odoo's views of them and of the
-- rollup watermark.
--
-- One row per worker (a worker id is random per process, new after every
-- fork). The collector's chain appender upserts a worker in the transaction
-- of a batch that holds its events, at most about every 30 s per worker, so
-- `last_seen` trails the worker's last event by up to that much. The hook
-- fields are the worker's own account in its latest `Hello`; pid and uid are
-- the kernel's. Not part of the chain: a summary, like the rollups.
CREATE TABLE egress.worker_seen (
    -- A stable id for Odoo models; the key is the worker id.
    id            bigserial UNIQUE,
    worker_id     bigint PRIMARY KEY,
    -- The host name of the collector that last wrote the row (as in
    -- egress.journal.collector).
    collector     text NOT NULL,
    pid           bigint,
    uid           bigint,
    -- `native` (the Rust extension), `python` (the pure-Python fallback),
    -- `rust` (the Rust API); NULL until the worker's `Hello` was received.
    hook_mode     text,
    hook_version  text,
    odoo_version  text,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    -- Calls received from this worker for this database, journaled or
    -- accounted without a row (capture off, channel disabled).
    calls_seen    bigint NOT NULL DEFAULT 0
);

-- The report counts the workers seen in a period.
CREATE INDEX worker_seen_last_seen ON egress.worker_seen (last_seen);

CREATE VIEW public.network_egress_worker AS
    SELECT id, worker_id, collector, pid, uid, hook_mode, hook_version, odoo_version,
           first_seen, last_seen, calls_seen
    FROM egress.worker_seen;

-- How far the rollups go: the last journal seq they hold. `id` for Odoo models.
CREATE VIEW public.network_egress_rollup_state AS
    SELECT 1 AS id, watermark, updated_at FROM egress.rollup_state;

ALTER TABLE egress.worker_seen OWNER TO egress_owner;
ALTER VIEW public.network_egress_worker OWNER TO egress_owner;
ALTER VIEW public.network_egress_rollup_state OWNER TO egress_owner;
REVOKE ALL ON public.network_egress_worker FROM PUBLIC;
REVOKE ALL ON public.network_egress_rollup_state FROM PUBLIC;
