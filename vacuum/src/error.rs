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

/// An error and all its sources on one line.
pub fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn db(stmt: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Db { stmt, source }
}
