//! The vacuum crate's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error during {stmt}: {}", chain_text(source))]
    Db {
        stmt: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("no database connection for {database}: {reason}")]
    Pool { database: String, reason: String },
    #[error("{0}")]
    Journal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use egress_proto::error::chain_text;

pub(crate) fn db(stmt: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Db { stmt, source }
}
