//! The collector library's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error during {stmt}: {}", chain_text(source))]
    Db {
        stmt: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("database {database} does not exist")]
    NoSuchDatabase { database: String },
    #[error("no database connection for {database}: {reason}")]
    Pool { database: String, reason: String },
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("control socket: {0}")]
    Control(String),
    /// A database problem already explained for the operator: which
    /// database, role and server, and the fix (`db::startup`).
    #[error("{0}")]
    Database(String),
}

impl Error {
    /// Whether retrying the same rows can never succeed (the database
    /// refused the data itself), as opposed to a connection or schema problem
    /// that an operator can fix while the collector keeps the rows queued.
    pub fn is_data_rejection(&self) -> bool {
        match self {
            Error::Db { source, .. } => source.code().is_some_and(|code| {
                let class = &code.code()[..2];
                // 22: data exception, 23: integrity violation, 54: program limit.
                matches!(class, "22" | "23" | "54")
            }),
            _ => false,
        }
    }
}

impl Error {
    /// The database server's disk is full (SQLSTATE class 53, disk_full).
    pub fn is_disk_full(&self) -> bool {
        let coded = match self {
            Error::Db { source, .. } => source
                .code()
                .is_some_and(|c| c == &tokio_postgres::error::SqlState::DISK_FULL),
            _ => false,
        };
        coded || chain_text(self).contains("No space left on device")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use egress_proto::error::chain_text;
