//! The one rule for an Odoo database's name, applied wherever a name comes
//! in (ingest, the control socket, the config, the spool) and wherever one
//! names something (connection strings, key files, exports).
//!
//! Odoo's database manager accepts `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; a database
//! created with `createdb` and served by `odoo -d` may also begin with `_`,
//! as PostgreSQL's identifiers may. Both are accepted: a name Odoo serves
//! must be journaled and signed alike. A leading `-` or `.` is not (an
//! option, `.`/`..` or a hidden key file), nor anything that could change a
//! connection string or a path (spaces, quotes, `/`, `=`, non-ASCII).

/// Longest database name (PostgreSQL's identifier limit, in bytes).
pub const MAX_DATABASE_NAME: usize = 63;

/// The rule, as error messages state it.
pub const DATABASE_NAME_RULE: &str = "ASCII letters, digits, '_', '-' or '.', starting with a \
     letter, a digit or '_', at most 63 characters";

/// Whether `name` may name a database (`DATABASE_NAME_RULE`).
pub fn valid_database_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() || *first == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_DATABASE_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_odoo_serves_are_accepted() {
        let longest = "a".repeat(MAX_DATABASE_NAME);
        for good in ["odoo", "prod_db", "odoo-17.0", "Acme2", "x", "7", &longest] {
            assert!(valid_database_name(good), "{good:?}");
        }
    }

    #[test]
    fn a_leading_underscore_is_accepted() {
        // PostgreSQL's identifiers may start with `_`, and Odoo serves such a
        // database: it was once journaled by ingest but refused a key.
        assert!(valid_database_name("_odoo"));
        assert!(valid_database_name("_"));
    }

    #[test]
    fn names_that_could_change_a_connection_string_or_a_path_are_refused() {
        let long = "x".repeat(MAX_DATABASE_NAME + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-db",
            "a b",
            "db' host=evil",
            "a=b",
            "a/b",
            "a\\b",
            "é",
            "a\0",
            &long,
        ] {
            assert!(!valid_database_name(bad), "{bad:?}");
        }
    }
}
