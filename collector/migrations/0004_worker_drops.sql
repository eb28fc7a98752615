-- 0004: what each worker has reported losing, as running totals per reason.
-- Workers report cumulative counts, so a report lost on the way (a crash of
-- the collector) costs nothing: the next one carries the total, and the
-- collector journals only what it had not accounted yet.

CREATE TABLE egress.worker_drops (
    worker_id   bigint NOT NULL,
    reason      text NOT NULL,
    reported    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, reason)
);

ALTER TABLE egress.worker_drops OWNER TO egress_owner;
