-- 0002: the Egress Components catalogue, and Odoo's view of it (which the
-- Odoo addon lets Network Audit Managers edit; the collector journals edits).

CREATE TABLE egress.component (
    name        text PRIMARY KEY,
    owner       text NOT NULL DEFAULT '',
    purpose     text NOT NULL DEFAULT '',
    class       text NOT NULL CHECK (class IN ('vendor', 'third_party', 'local')),
    hosts       text[] NOT NULL DEFAULT '{}',
    cidrs       text[] NOT NULL DEFAULT '{}',
    ports       integer[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW public.network_egress_component AS
    SELECT name, owner, purpose, class, hosts, cidrs, ports, updated_at FROM egress.component;

ALTER TABLE egress.component OWNER TO egress_owner;
ALTER VIEW public.network_egress_component OWNER TO egress_owner;
REVOKE ALL ON public.network_egress_component FROM PUBLIC;
