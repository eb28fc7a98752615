//! `TestDb`: a fresh database per test, prepared by the real `egress-collector
//! setup` and dropped `WITH (FORCE)` afterwards; `Sql`: a blocking client.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

use tokio_postgres::{NoTls, Row};

use crate::{bins, pg_socket_dir, wait, HOOK_GAP_REASONS};

static NEXT: AtomicU32 = AtomicU32::new(0);
static CLEAN_STALE: Once = Once::new();

/// A blocking PostgreSQL client: tests are plain threads, so each client owns
/// a current-thread runtime that drives its connection while a query runs.
pub struct Sql {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Sql {
    pub fn connect(conninfo: &str) -> Result<Sql, tokio_postgres::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime");
        let (client, connection) = rt.block_on(tokio_postgres::connect(conninfo, NoTls))?;
        rt.spawn(async move {
            let _ = connection.await;
        });
        Ok(Sql { rt, client })
    }

    /// Runs statements separated by `;` (simple protocol, autocommit).
    pub fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    pub fn query(&self, sql: &str) -> Vec<Row> {
        self.rt
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)))
    }

    /// The first column of the only row, as an integer; NULL reads as 0.
    pub fn int(&self, sql: &str) -> i64 {
        let row = self
            .rt
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
        row.get::<_, Option<i64>>(0).unwrap_or(0)
    }

    pub fn bool(&self, sql: &str) -> bool {
        let row = self
            .rt
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
        row.get::<_, Option<bool>>(0).unwrap_or(false)
    }

    /// Runs `statement` and asserts that PostgreSQL refuses it for lack of
    /// privilege (SQLSTATE 42501); a failure names the session's role.
    pub fn assert_refused(&self, statement: &str) {
        let outcome = self.batch(statement);
        let role = self.text("SELECT current_user::text").unwrap_or_default();
        match outcome {
            Ok(()) => panic!("as {role}, `{statement}` succeeded"),
            Err(e) => assert_eq!(
                e.code().map(|c| c.code()),
                Some("42501"),
                "as {role}, `{statement}` must be refused for lack of privilege, got {}",
                describe(&e)
            ),
        }
    }

    pub fn text(&self, sql: &str) -> Option<String> {
        let row = self
            .rt
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
        row.get::<_, Option<String>>(0)
    }
}

/// An error with its SQLSTATE and server message, not just "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// libpq key=value connection string for the local server as `user`.
pub fn conninfo(user: &str, dbname: &str) -> String {
    format!("host={} user={user} dbname={dbname}", pg_socket_dir())
}

/// A uniquely named database with the egress schema installed by
/// `egress-collector setup`, dropped when the value is dropped.
pub struct TestDb {
    name: String,
    /// Odoo's role for this database: made by the test, unique, never
    /// `odoo` (a host's own `odoo` role may be a superuser).
    odoo_role: String,
    admin: Sql,
    sql: Option<Sql>,
}

impl TestDb {
    /// Creates `egress_t_<tag>_<pid>_<n>` and runs `setup` on it.
    pub fn new(tag: &str) -> TestDb {
        let db = TestDb::create(tag);
        let out = db.run_setup();
        assert!(
            out.status.success(),
            "egress-collector setup failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// Like `new`, with Odoo's settings table (`ir_config_parameter`) made
    /// first by Odoo's role, as in a real Odoo database.
    pub fn new_odoo(tag: &str) -> TestDb {
        let db = TestDb::create(tag);
        db.create_odoo_settings_table();
        let out = db.run_setup();
        assert!(
            out.status.success(),
            "egress-collector setup failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// Odoo's settings table, made and owned by Odoo's role as in a real
    /// Odoo database (so that role may put triggers, policies on it).
    fn create_odoo_settings_table(&self) {
        self.sql()
            .batch(&format!(
                "SET ROLE {}; \
                 CREATE TABLE public.ir_config_parameter ( \
                     id serial PRIMARY KEY, key varchar NOT NULL UNIQUE, value text NOT NULL); \
                 RESET ROLE",
                self.odoo_role
            ))
            .unwrap_or_else(|e| panic!("create ir_config_parameter: {}", describe(&e)));
    }

    /// Sets an Odoo setting as the addon's settings page does, as Odoo's
    /// role: in Odoo's `ir_config_parameter` (when there is one) for Odoo's
    /// own use, and in the egress inbox `public.network_egress_setting`,
    /// from which the collector takes it.
    pub fn set_setting(&self, key: &str, value: &str) {
        let q = |s: &str| s.replace('\'', "''");
        let inbox = if self
            .sql()
            .bool("SELECT to_regclass('public.network_egress_setting') IS NOT NULL")
        {
            format!(
                "INSERT INTO public.network_egress_setting (key, value) VALUES ('{}', '{}');",
                q(key),
                q(value)
            )
        } else {
            // A schema from before the inbox (an older collector's setup).
            String::new()
        };
        let own = if self
            .sql()
            .bool("SELECT to_regclass('public.ir_config_parameter') IS NOT NULL")
        {
            format!(
                "INSERT INTO public.ir_config_parameter (key, value) VALUES ('{}', '{}') \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;",
                q(key),
                q(value)
            )
        } else {
            String::new()
        };
        self.sql()
            .batch(&format!(
                "SET ROLE {role}; {own} {inbox} RESET ROLE",
                role = self.odoo_role,
            ))
            .unwrap_or_else(|e| panic!("set {key}: {}", describe(&e)));
    }

    /// Odoo's role of this database (unique to it).
    pub fn odoo_role(&self) -> &str {
        &self.odoo_role
    }

    /// A session logged in as Odoo's role, with only its own rights.
    pub fn odoo(&self) -> Sql {
        Sql::connect(&conninfo(&self.odoo_role, &self.name))
            .unwrap_or_else(|e| panic!("connect as {}: {}", self.odoo_role, describe(&e)))
    }

    /// Lets the collector prune with a clock of its own (`vacuum-now
    /// --now-us`), as a superuser may allow for drills.
    pub fn allow_vacuum_clock(&self) {
        self.sql()
            .batch(
                "INSERT INTO egress.trust_option (key, value) VALUES ('vacuum_clock', 'on') \
                 ON CONFLICT (key) DO UPDATE SET value = 'on'",
            )
            .unwrap_or_else(|e| panic!("allow the vacuum clock: {}", describe(&e)));
    }

    /// The journal's last seq (0 when empty).
    pub fn head_seq(&self) -> i64 {
        self.sql()
            .int("SELECT coalesce(max(seq), 0)::bigint FROM egress.journal")
    }

    /// A database shaped like Odoo's: `ir_config_parameter` exists before
    /// setup (so setup grants the collector read access to the audit
    /// settings, and the signed head has somewhere to be mirrored).
    pub fn odoo_shaped(tag: &str) -> TestDb {
        let db = TestDb::create(tag);
        db.create_odoo_settings_table();
        let out = db.run_setup();
        assert!(
            out.status.success(),
            "setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// Creates the empty database, without running setup.
    pub fn create(tag: &str) -> TestDb {
        let admin = Sql::connect(&conninfo("postgres", "postgres"))
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {}: {e}", pg_socket_dir()));
        CLEAN_STALE.call_once(|| drop_stale_databases(&admin));
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("egress_t_{tag}_{}_{n}", std::process::id());
        // Odoo's role logs in and owns its database (and so, from
        // PostgreSQL 15, the `public` schema), as Odoo's own does.
        let odoo_role = format!("egress_t_odoo_{}_{n}", std::process::id());
        admin
            .batch(&format!(
                "DROP ROLE IF EXISTS {odoo_role}; \
                 CREATE ROLE {odoo_role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB"
            ))
            .unwrap_or_else(|e| panic!("CREATE ROLE {odoo_role}: {}", describe(&e)));
        admin
            .batch(&format!("CREATE DATABASE \"{name}\" OWNER {odoo_role}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", describe(&e)));
        let sql = Sql::connect(&conninfo("postgres", &name))
            .unwrap_or_else(|e| panic!("connect to {name}: {}", describe(&e)));
        TestDb {
            name,
            odoo_role,
            admin,
            sql: Some(sql),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Superuser connection string of this database (for `setup`, `verify`).
    pub fn superuser_url(&self) -> String {
        conninfo("postgres", &self.name)
    }

    /// A superuser session on this database.
    pub fn sql(&self) -> &Sql {
        self.sql.as_ref().expect("connected")
    }

    /// Runs `egress-collector setup` on this database and returns its output.
    pub fn run_setup(&self) -> Output {
        Command::new(bins::collector())
            .args([
                "setup",
                "--database-url",
                &self.superuser_url(),
                "--odoo-role",
                &self.odoo_role,
            ])
            .env_remove("EGRESS_DATABASE_URL")
            .env_remove("EGRESS_ODOO_ROLE")
            .output()
            .expect("spawn egress-collector setup")
    }

    pub fn rows(&self) -> i64 {
        self.sql().int("SELECT count(*) FROM egress.journal")
    }

    pub fn call_rows(&self) -> i64 {
        self.sql()
            .int("SELECT count(*) FROM egress.journal WHERE kind = 'call'")
    }

    /// Sum of `gap_count` over every gap entry.
    pub fn gap_sum(&self) -> i64 {
        self.sql()
            .int("SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal")
    }

    /// Sum of `gap_count` of the gap entries with this reason.
    pub fn gap_sum_for(&self, reason: &str) -> i64 {
        self.sql().int(&format!(
            "SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal \
             WHERE kind = 'gap' AND gap_reason = '{}'",
            reason.replace('\'', "''")
        ))
    }

    /// Events lost on the hook side (reported by the clients themselves).
    pub fn hook_gap_sum(&self) -> i64 {
        let list: Vec<String> = HOOK_GAP_REASONS.iter().map(|r| format!("'{r}'")).collect();
        self.sql().int(&format!(
            "SELECT coalesce(sum(gap_count), 0)::bigint FROM egress.journal \
             WHERE kind = 'gap' AND gap_reason IN ({})",
            list.join(",")
        ))
    }

    /// The accounting identity's left side: call rows plus events in gaps.
    pub fn accounted(&self) -> i64 {
        self.sql().int(
            "SELECT (count(*) FILTER (WHERE kind = 'call') \
                     + coalesce(sum(gap_count), 0))::bigint FROM egress.journal",
        )
    }

    /// `seq` runs 1, 2, ... count(*) with nothing missing or repeated.
    pub fn seq_gapless(&self) -> bool {
        self.sql().bool(
            "SELECT count(*) = max(seq) AND min(seq) = 1 AND count(DISTINCT seq) = count(*) \
             FROM egress.journal",
        )
    }

    /// How many rows share a `seq` with another row.
    pub fn duplicate_seqs(&self) -> i64 {
        self.sql()
            .int("SELECT (count(*) - count(DISTINCT seq))::bigint FROM egress.journal")
    }

    /// Gap entries, one line each, for assertion messages.
    pub fn gap_summary(&self) -> String {
        self.sql()
            .query(
                "SELECT gap_reason, count(*)::bigint, coalesce(sum(gap_count), 0)::bigint \
                 FROM egress.journal WHERE kind = 'gap' GROUP BY gap_reason ORDER BY 1",
            )
            .iter()
            .map(|r| {
                format!(
                    "{}: {} entries, {} events",
                    r.get::<_, Option<String>>(0).unwrap_or_default(),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Waits (≤ `timeout`) until calls + gaps reach `expected`, and returns
    /// the settled value.
    pub fn wait_accounted(&self, expected: i64, timeout: Duration) -> i64 {
        wait::wait_for_value(timeout, expected, || self.accounted())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.sql.take();
        if let Err(e) = self.admin.batch(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )) {
            eprintln!("could not drop database {}: {}", self.name, describe(&e));
        }
        // Its privileges went with the database; other databases it may
        // have been granted something in (by a test) are cleaned first.
        if let Err(e) = self
            .admin
            .batch(&format!("DROP ROLE IF EXISTS {}", self.odoo_role))
        {
            eprintln!("could not drop role {}: {}", self.odoo_role, describe(&e));
        }
    }
}

/// Databases left by test processes that died before dropping them.
fn drop_stale_databases(admin: &Sql) {
    for row in admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'egress\\_t\\_%'") {
        let name: String = row.get(0);
        let mut parts = name.rsplit('_');
        let _n = parts.next();
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = admin.batch(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
    for row in
        admin.query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'egress\\_t\\_odoo\\_%'")
    {
        let name: String = row.get(0);
        let mut parts = name.rsplit('_');
        let _n = parts.next();
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = admin.batch(&format!("DROP ROLE IF EXISTS {name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_database_is_dropped_with_its_value() {
        let db = TestDb::create("harness");
        let name = db.name().to_string();
        assert_eq!(
            db.sql().text("SELECT current_database()::text").as_deref(),
            Some(name.as_str())
        );
        let admin = Sql::connect(&conninfo("postgres", "postgres")).unwrap();
        drop(db);
        let left = admin.int(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ));
        assert_eq!(left, 0, "{name} is dropped");
    }
}
