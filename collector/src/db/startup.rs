//! Database problems in one line for the operator (the start-up check,
//! `verify`, `setup`): which database, as which role, on which server, and
//! what to run or change.

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::db::databases::config_for;
use crate::error::{chain_text, Error, Result};

/// What the start-up check found of the default database.
pub enum Readiness {
    /// It answers and has an egress journal.
    Ready,
    /// The server does not answer now (stopped, starting, out of reach): a
    /// passing condition that the spool rides out, so the collector starts
    /// and says so. The text names the server and the fix.
    Unreachable(String),
}

/// Connects to `database` as the URL template says and reads the journal's
/// head. A server that answers and refuses (no such database, a role that
/// may not connect, no `setup`) is an error to fix before starting: runs
/// before the ingest socket exists, so the refusal loses no event (senders
/// count theirs as `socket_missing` and report them once a collector
/// listens). A server that does not answer is not: the collector must be
/// there to keep what workers send meanwhile.
pub async fn check_database(template: &str, database: &str) -> Result<Readiness> {
    let config = config_for(template, database)?;
    let target = Target::of(&config);
    let client = match config.connect(NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) if server_unreachable(&e) => {
            return Ok(Readiness::Unreachable(target.connect_problem(&e)))
        }
        Err(e) => return Err(Error::Database(target.connect_problem(&e))),
    };
    match crate::db::store::read_head(&client).await {
        Ok(_) => Ok(Readiness::Ready),
        Err(Error::Db { source, .. }) => Err(Error::Database(target.query_problem(&source))),
        Err(e) => Err(e),
    }
}

/// No answer from the server, or "not now" (starting up, shutting down):
/// nothing an operator configured wrong.
fn server_unreachable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => *code == SqlState::CANNOT_CONNECT_NOW,
    }
}

/// Where a connection goes, to name it in messages.
pub struct Target {
    pub database: String,
    pub role: String,
    pub server: String,
}

impl Target {
    pub fn of(config: &tokio_postgres::Config) -> Target {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let server = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => format!("{host}:{port}"),
            Some(Host::Unix(dir)) => format!("{}/.s.PGSQL.{port}", dir.display()),
            None => "the default server".to_owned(),
        };
        Target {
            database: config.get_dbname().unwrap_or("(default)").to_owned(),
            role: config.get_user().unwrap_or("(the OS user)").to_owned(),
            server,
        }
    }

    /// Why a connection failed, and the fix.
    pub fn connect_problem(&self, e: &tokio_postgres::Error) -> String {
        let Target {
            database,
            role,
            server,
        } = self;
        match e.code() {
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => format!(
                "database {database:?} does not exist on {server}: create it (Odoo does), \
                 then {}",
                setup_hint(database)
            ),
            Some(c)
                if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    || *c == SqlState::INVALID_PASSWORD =>
            {
                format!(
                    "role {role:?} may not connect to database {database:?} on {server} ({}): \
                     {}, or fix the role in the database URL",
                    db_message(e),
                    setup_hint(database)
                )
            }
            _ => format!(
                "cannot reach PostgreSQL at {server} for database {database:?} ({}): start \
                 PostgreSQL or fix the host in the database URL",
                chain_text(e)
            ),
        }
    }

    /// Why a statement on the egress schema failed, and the fix.
    pub fn query_problem(&self, e: &tokio_postgres::Error) -> String {
        let Target { database, role, .. } = self;
        match e.code() {
            Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME => {
                format!(
                    "database {database:?} has no egress journal ({}): {}",
                    db_message(e),
                    setup_hint(database)
                )
            }
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
                "role {role:?} may not read the egress journal of database {database:?} ({}): \
                 connect as egress_collector, or {}",
                db_message(e),
                setup_hint(database)
            ),
            _ => format!(
                "database {database:?} answered with an error ({})",
                chain_text(e)
            ),
        }
    }
}

/// The setup command for `database`, as the README gives it.
pub fn setup_hint(database: &str) -> String {
    format!(
        "run `egress-collector setup --database-url \"host=/var/run/postgresql user=postgres \
         dbname={database}\"` as a PostgreSQL superuser"
    )
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| chain_text(e))
}
