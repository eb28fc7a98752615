//! `setup`: roles, schema, versioned idempotent migrations and grants, run
//! once per Odoo database as a PostgreSQL superuser.
//!
//! Roles: `egress_owner` (NOLOGIN) owns every object, so neither the
//! collector's role nor Odoo's can alter or disable the journal's
//! append-only triggers; the collector's role may only INSERT and SELECT;
//! Odoo's role may only SELECT the read view.

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};

pub use crate::db::OWNER_ROLE;

/// (version, name, SQL), applied in order, each once.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "journal",
        include_str!("../../migrations/0001_journal.sql"),
    ),
    (
        2,
        "components",
        include_str!("../../migrations/0002_components.sql"),
    ),
    (
        3,
        "signed_heads",
        include_str!("../../migrations/0003_signed_heads.sql"),
    ),
    (
        4,
        "worker_drops",
        include_str!("../../migrations/0004_worker_drops.sql"),
    ),
    (
        5,
        "rollups",
        include_str!("../../migrations/0005_rollups.sql"),
    ),
    (
        6,
        "workers",
        include_str!("../../migrations/0006_workers.sql"),
    ),
    (
        7,
        "trust_boundary",
        include_str!("../../migrations/0007_trust_boundary.sql"),
    ),
    (
        17,
        "forensic",
        include_str!("../../migrations/0017_forensic.sql"),
    ),
    (
        22,
        "collectors",
        include_str!("../../migrations/0022_collectors.sql"),
    ),
    (
        23,
        "policy_notify",
        include_str!("../../migrations/0023_policy_notify.sql"),
    ),
];

/// Serialises concurrent `setup` runs on one database.
const SETUP_LOCK_KEY: i64 = 0x6567_7365_7475; // "egsetu"

pub struct SetupOptions {
    pub database_url: String,
    pub odoo_role: String,
    pub collector_role: String,
}

#[derive(Debug, Default)]
pub struct SetupReport {
    pub applied: Vec<String>,
    pub already: Vec<String>,
    /// Catalogue entries added from the seed (existing ones are kept).
    pub components_added: u64,
    /// What Odoo's role may do that voids the database-level promises
    /// (superuser, may create roles), in plain words; empty when nothing.
    pub odoo_role_powers: Vec<&'static str>,
}

/// What Odoo's role may do beyond its own objects that voids the
/// database-level promises, from `pg_roles` (never from Odoo's objects).
pub async fn odoo_role_powers(
    client: &impl tokio_postgres::GenericClient,
    odoo_role: &str,
) -> Result<Vec<&'static str>> {
    let row = client
        .query_opt(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolbypassrls \
             FROM pg_catalog.pg_roles r WHERE r.rolname = $1",
            &[&odoo_role],
        )
        .await
        .map_err(db("read Odoo's role"))?;
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let mut powers = Vec::new();
    if row.get::<_, bool>(0) {
        powers.push("is a superuser");
    }
    if row.get::<_, bool>(1) {
        powers.push("may create roles");
    }
    if row.get::<_, bool>(2) {
        powers.push("bypasses row-level security");
    }
    Ok(powers)
}

/// Role names are interpolated into SQL (identifiers cannot be bound as
/// parameters), so they are held to a strict shape first.
fn checked_role(name: &str) -> Result<String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(format!("\"{name}\""))
    } else {
        Err(Error::Config(format!(
            "role name {name:?} must be lowercase letters, digits and _ (at most 63)"
        )))
    }
}

fn db(stmt: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Db { stmt, source }
}

pub async fn connect(url: &str) -> Result<Client> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("database URL does not parse: {e}")))?;
    crate::db::databases::pin_search_path(&mut config);
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        Error::Database(crate::db::startup::Target::of(&config).connect_problem(&e))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub async fn setup(options: &SetupOptions) -> Result<SetupReport> {
    let owner = checked_role(OWNER_ROLE)?;
    let collector = checked_role(&options.collector_role)?;
    let odoo = checked_role(&options.odoo_role)?;
    let mut client = connect(&options.database_url).await?;
    let tx = client.transaction().await.map_err(db("begin"))?;
    // Setup runs as a superuser: nothing Odoo's role made in `public` (a
    // function or operator shadowing a built-in) may be resolved meanwhile.
    tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
        .await
        .map_err(db("pin search_path"))?;
    tx.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[&SETUP_LOCK_KEY],
    )
    .await
    .map_err(db("lock"))?;
    // Roles are cluster-wide: another database's setup may create them at
    // the same moment, hence both error codes.
    let create_role = |role: &str, login: &str| {
        format!(
            "DO $$ BEGIN CREATE ROLE {role} {login}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        )
    };
    let roles = [
        create_role(&owner, "NOLOGIN"),
        create_role(&collector, "LOGIN"),
        create_role(&odoo, "NOLOGIN"),
        format!("CREATE SCHEMA IF NOT EXISTS egress AUTHORIZATION {owner};"),
        "CREATE TABLE IF NOT EXISTS egress.schema_migrations (\
             version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now());"
            .to_owned(),
        format!("ALTER TABLE egress.schema_migrations OWNER TO {owner};"),
    ];
    tx.batch_execute(&roles.join("\n"))
        .await
        .map_err(db("create roles and schema"))?;
    let mut report = SetupReport::default();
    for (version, name, sql) in MIGRATIONS {
        let label = format!("{version:04}_{name}");
        let done = tx
            .query_opt(
                "SELECT 1 FROM egress.schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(db("read migrations"))?
            .is_some();
        if done {
            report.already.push(label);
            continue;
        }
        tx.batch_execute(sql).await.map_err(db("apply migration"))?;
        tx.execute(
            "INSERT INTO egress.schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(db("record migration"))?;
        report.applied.push(label);
    }
    let odoo_name = &options.odoo_role;
    let grants = format!(
        "REVOKE ALL ON SCHEMA egress FROM PUBLIC;
         GRANT USAGE ON SCHEMA egress TO {collector};
         GRANT SELECT, INSERT ON egress.journal TO {collector};
         GRANT SELECT, INSERT, UPDATE ON egress.worker_cursor TO {collector};
         GRANT SELECT, INSERT, UPDATE ON egress.worker_drops TO {collector};
         GRANT SELECT ON egress.schema_migrations TO {collector};
         GRANT SELECT ON egress.component TO {collector};
         REVOKE ALL ON public.network_egress_log FROM PUBLIC;
         GRANT SELECT ON public.network_egress_log TO {odoo};
         REVOKE ALL ON public.network_egress_component FROM PUBLIC;
         GRANT SELECT, INSERT, UPDATE, DELETE ON public.network_egress_component TO {odoo};
         GRANT SELECT, INSERT ON egress.signed_head TO {collector};
         GRANT USAGE ON SEQUENCE egress.signed_head_id_seq TO {collector};
         GRANT SELECT ON public.network_signed_head TO {odoo};
         GRANT SELECT, INSERT, UPDATE ON egress.rollup, egress.rollup_gap TO {collector};
         GRANT USAGE ON SEQUENCE egress.rollup_id_seq TO {collector};
         GRANT SELECT, INSERT ON egress.rollup_event TO {collector};
         GRANT SELECT, UPDATE ON egress.rollup_state TO {collector};
         GRANT SELECT, INSERT ON egress.verify_result TO {collector};
         GRANT USAGE ON SEQUENCE egress.verify_result_id_seq TO {collector};
         REVOKE ALL ON FUNCTION egress.vacuum_journal(timestamptz, bigint) FROM {collector};
         GRANT EXECUTE ON FUNCTION egress.prune_journal(bigint, timestamptz) TO {collector};
         GRANT SELECT ON egress.current_setting, egress.setting, egress.trust_option TO {collector};
         REVOKE ALL ON public.network_egress_setting FROM PUBLIC;
         GRANT SELECT, INSERT ON public.network_egress_setting TO {odoo};
         GRANT SELECT ON public.network_egress_rollup, public.network_egress_rollup_gap,
             public.network_egress_rollup_event, public.network_egress_verify_result TO {odoo};
         GRANT SELECT, INSERT, UPDATE ON egress.worker_seen TO {collector};
         GRANT USAGE ON SEQUENCE egress.worker_seen_id_seq TO {collector};
         GRANT SELECT ON public.network_egress_worker, public.network_egress_rollup_state
             TO {odoo};
         GRANT SELECT, INSERT, UPDATE ON egress.forensic_state TO {collector};
         GRANT SELECT, INSERT ON egress.forensic_body TO {collector};
         GRANT SELECT ON public.network_forensic_state TO {odoo};
         GRANT SELECT ON egress.collector_seen TO {collector};
         GRANT EXECUTE ON FUNCTION egress.collector_heartbeat(text, bytea, text) TO {collector};
         GRANT SELECT ON public.network_egress_collector TO {odoo};
         -- Earlier versions read and wrote Odoo's settings table with
         -- egress rights; those rights go (REVOKE runs nothing of Odoo's).
         DO $$ BEGIN
             IF pg_catalog.to_regclass('public.ir_config_parameter') IS NOT NULL THEN
                 REVOKE ALL ON public.ir_config_parameter FROM {collector}, {owner};
             END IF;
             IF pg_catalog.to_regclass('public.ir_config_parameter_id_seq') IS NOT NULL THEN
                 REVOKE ALL ON SEQUENCE public.ir_config_parameter_id_seq FROM {owner};
             END IF;
         END $$;
         INSERT INTO egress.trust_option (key, value) VALUES ('odoo_role', '{odoo_name}')
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;"
    );
    tx.batch_execute(&grants)
        .await
        .map_err(db("grant privileges"))?;
    let seed = crate::pipeline::catalogue::parse_file(crate::pipeline::catalogue::SEED)?;
    report.components_added = crate::db::store::seed_components(&tx, &seed).await?;
    report.odoo_role_powers = odoo_role_powers(&tx, &options.odoo_role).await?;
    tx.commit().await.map_err(db("commit"))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vacuum_function_takes_the_chain_lock_of_the_appenders() {
        let (_, _, sql) = MIGRATIONS.iter().find(|m| m.1 == "rollups").unwrap();
        let lock = format!("pg_advisory_xact_lock({})", egress_proto::CHAIN_LOCK_KEY);
        assert!(sql.contains(&lock), "0005 must lock with {lock}");
    }

    #[test]
    fn the_policy_triggers_notify_the_channel_the_collector_listens_on() {
        let (_, _, sql) = MIGRATIONS
            .iter()
            .find(|m| m.0 == crate::db::POLICY_NOTIFY_MIGRATION)
            .unwrap();
        let notify = format!("pg_notify('{}', '')", crate::db::POLICY_CHANNEL);
        assert!(sql.contains(&notify), "0023 must call {notify}");
    }

    #[test]
    fn role_names_cannot_carry_sql() {
        assert_eq!(checked_role("odoo").unwrap(), "\"odoo\"");
        for bad in ["", "Odoo", "a\"; DROP", "1abc", "a-b", &"a".repeat(64)] {
            assert!(checked_role(bad).is_err(), "{bad:?}");
        }
    }
}
