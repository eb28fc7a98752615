//! The journal row's one field table: each field's name, its column in
//! `egress.journal`, the column's SQL type and its canonical kind
//! (docs/JOURNAL_FORMAT.md §2).
//!
//! Every other copy of the field list is derived from `FIELDS` or checked
//! against it by a test: `JournalRow` and its canonical encoding (here), the
//! collector's COPY columns, types, encoder and decoder, the signer's export
//! row, migration 0001, and — through `proto/vectors/journal_fields.json`,
//! written from this table and checked against it — the Python verifiers and
//! the Odoo addon. A new field starts here.

/// How a field is written into the canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 8 bytes, big-endian, signed.
    Int,
    /// A 4-byte length, then UTF-8.
    Text,
    /// An 8-byte count, then each item as `Text`.
    List,
    /// One byte, 0 or 1.
    Bool,
    /// A 4-byte length, then the bytes.
    Bytes,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Text => "text",
            Kind::List => "list",
            Kind::Bool => "bool",
            Kind::Bytes => "bytes",
        }
    }
}

/// A journal column's type in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Bigint,
    Text,
    TextArray,
    Boolean,
    Bytea,
    /// A field whose name ends in `_us`: microseconds since the Unix epoch
    /// in the row, a `timestamptz` in the table.
    Timestamptz,
}

impl SqlType {
    /// As migration 0001 spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            SqlType::Bigint => "bigint",
            SqlType::Text => "text",
            SqlType::TextArray => "text[]",
            SqlType::Boolean => "boolean",
            SqlType::Bytea => "bytea",
            SqlType::Timestamptz => "timestamptz",
        }
    }
}

/// One field of the journal row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name in `JournalRow`, in exports and in the vectors.
    pub name: &'static str,
    /// Its column in `egress.journal` (differs for the two timestamps).
    pub column: &'static str,
    pub sql: SqlType,
    pub kind: Kind,
    /// Never NULL: written without a presence byte (the first five).
    pub required: bool,
}

const fn field(name: &'static str, sql: SqlType, kind: Kind) -> Field {
    Field {
        name,
        column: name,
        sql,
        kind,
        required: false,
    }
}

const fn required(field: Field) -> Field {
    Field {
        required: true,
        ..field
    }
}

const fn time(name: &'static str, column: &'static str) -> Field {
    Field {
        name,
        column,
        sql: SqlType::Timestamptz,
        kind: Kind::Int,
        required: false,
    }
}

use Kind::{Bool, Bytes, Int, List, Text};
use SqlType::{Bigint, Boolean, Bytea, TextArray};

/// How many fields the row has (and the canonical encoding holds).
pub const FIELD_COUNT: usize = 42;

/// The journal row's fields, in canonical order.
pub const FIELDS: [Field; FIELD_COUNT] = [
    required(field("seq", Bigint, Int)),
    required(field("database", SqlType::Text, Text)),
    required(field("kind", SqlType::Text, Text)),
    required(time("recorded_at_us", "recorded_at")),
    required(field("collector", SqlType::Text, Text)),
    field("worker_id", Bigint, Int),
    field("worker_pid", Bigint, Int),
    field("worker_uid", Bigint, Int),
    field("worker_seq", Bigint, Int),
    time("started_at_us", "started_at"),
    field("duration_us", Bigint, Int),
    field("channel", SqlType::Text, Text),
    field("protocol", SqlType::Text, Text),
    field("direction", SqlType::Text, Text),
    field("method", SqlType::Text, Text),
    field("host", SqlType::Text, Text),
    field("port", Bigint, Int),
    field("path", SqlType::Text, Text),
    field("query_keys", TextArray, List),
    field("header_names", TextArray, List),
    field("src_ip", SqlType::Text, Text),
    field("src_port", Bigint, Int),
    field("dst_ip", SqlType::Text, Text),
    field("dst_port", Bigint, Int),
    field("tls", Boolean, Bool),
    field("status", Bigint, Int),
    field("error_class", SqlType::Text, Text),
    field("bytes_out", Bigint, Int),
    field("bytes_in", Bigint, Int),
    field("fingerprint", Bytea, Bytes),
    field("addon", SqlType::Text, Text),
    field("addon_path", TextArray, List),
    field("stack", TextArray, List),
    field("trigger_kind", SqlType::Text, Text),
    field("trigger_name", SqlType::Text, Text),
    field("odoo_uid", Bigint, Int),
    field("component", SqlType::Text, Text),
    field("class", SqlType::Text, Text),
    field("self_egress", Boolean, Bool),
    field("gap_count", Bigint, Int),
    field("gap_reason", SqlType::Text, Text),
    field("detail", SqlType::Text, Text),
];

/// The two columns stored with each row and not hashed into it: the
/// previous row's hash and this row's.
pub const HASH_COLUMNS: [&str; 2] = ["prev_hash", "row_hash"];

/// How many columns `egress.journal` has.
pub const COLUMN_COUNT: usize = FIELD_COUNT + HASH_COLUMNS.len();

/// One column of `egress.journal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Field(Field),
    /// `prev_hash` or `row_hash` (bytea, 32 bytes).
    Hash(&'static str),
}

impl Column {
    /// The column's name in the table.
    pub const fn column(&self) -> &'static str {
        match self {
            Column::Field(f) => f.column,
            Column::Hash(name) => name,
        }
    }

    /// The name in exports: the field's name, or the hash's.
    pub const fn name(&self) -> &'static str {
        match self {
            Column::Field(f) => f.name,
            Column::Hash(name) => name,
        }
    }

    pub const fn sql(&self) -> SqlType {
        match self {
            Column::Field(f) => f.sql,
            Column::Hash(_) => SqlType::Bytea,
        }
    }
}

/// `egress.journal`'s columns in the order the collector writes and reads
/// them (and an export writes a row's fields): `seq`, the two hashes, then
/// the other fields in canonical order.
pub const COLUMNS: [Column; COLUMN_COUNT] = {
    let mut out = [Column::Hash(""); COLUMN_COUNT];
    out[0] = Column::Field(FIELDS[0]);
    out[1] = Column::Hash(HASH_COLUMNS[0]);
    out[2] = Column::Hash(HASH_COLUMNS[1]);
    let mut i = 1;
    while i < FIELD_COUNT {
        out[i + 2] = Column::Field(FIELDS[i]);
        i += 1;
    }
    out
};

/// The position of the column named `name` in `COLUMNS`; a name that is
/// not a column fails the build where it is used as a constant.
pub const fn column_index(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMN_COUNT {
        if str_eq(COLUMNS[i].column(), name) {
            return i;
        }
        i += 1;
    }
    panic!("not a column of egress.journal")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The field list as published in `proto/vectors/journal_fields.json`, for
/// verifiers in other languages to check their copies against.
pub fn published() -> String {
    let mut out = String::from("{\n");
    out.push_str(&format!(
        "  \"canonical_version\": {},\n",
        crate::journal::CANONICAL_VERSION
    ));
    out.push_str("  \"fields\": [\n");
    for (i, f) in FIELDS.iter().enumerate() {
        let comma = if i + 1 < FIELDS.len() { "," } else { "" };
        out.push_str(&format!(
            "    {{\"name\": \"{}\", \"column\": \"{}\", \"sql_type\": \"{}\", \"kind\": \"{}\", \"required\": {}}}{comma}\n",
            f.name,
            f.column,
            f.sql.as_str(),
            f.kind.as_str(),
            f.required
        ));
    }
    out.push_str("  ],\n");
    out.push_str(&format!(
        "  \"hash_columns\": [\"{}\", \"{}\"],\n",
        HASH_COLUMNS[0], HASH_COLUMNS[1]
    ));
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("\"{}\"", c.column()))
        .collect();
    out.push_str(&format!("  \"columns\": [{}]\n", columns.join(", ")));
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{JournalRow, CANONICAL_VERSION};
    use serde_json::{json, Map, Value};

    /// A value for field `i` of its kind, different from every other field's.
    fn sample(i: usize) -> Value {
        let f = &FIELDS[i];
        match f.kind {
            Kind::Int => json!(1000 + i as i64),
            Kind::Text => json!(format!("{}-{i}", f.name)),
            Kind::List => json!([format!("{}-{i}", f.name), "x"]),
            Kind::Bool => json!([true, false, false][i % 3]),
            Kind::Bytes => json!([i as u8, 0xff]),
        }
    }

    /// The canonical encoding written from the table alone.
    fn encode_by_table(row: &Map<String, Value>) -> Vec<u8> {
        let mut out = vec![CANONICAL_VERSION];
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for f in &FIELDS {
            let value = &row[f.name];
            if !f.required {
                if value.is_null() {
                    out.push(0);
                    continue;
                }
                out.push(1);
            }
            match f.kind {
                Kind::Int => out.extend_from_slice(&value.as_i64().unwrap().to_be_bytes()),
                Kind::Text => text(&mut out, value.as_str().unwrap()),
                Kind::List => {
                    let items = value.as_array().unwrap();
                    out.extend_from_slice(&(items.len() as i64).to_be_bytes());
                    for item in items {
                        text(&mut out, item.as_str().unwrap());
                    }
                }
                Kind::Bool => out.push(u8::from(value.as_bool().unwrap())),
                Kind::Bytes => {
                    let bytes: Vec<u8> = serde_json::from_value(value.clone()).unwrap();
                    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out
    }

    #[test]
    fn journal_row_has_the_fields_of_the_table() {
        let default = serde_json::to_value(JournalRow::default()).unwrap();
        let mut in_row: Vec<&str> = default
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut in_table: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        in_row.sort_unstable();
        in_table.sort_unstable();
        assert_eq!(in_row, in_table, "JournalRow's fields against FIELDS");
    }

    #[test]
    fn each_field_is_encoded_at_its_place_with_its_kind() {
        // One row per optional field with only that field set, and one with
        // every field set: JournalRow::canonical must write what the table says.
        let base: Map<String, Value> = FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let value = if f.required { sample(i) } else { Value::Null };
                (f.name.to_string(), value)
            })
            .collect();
        let mut rows = vec![base.clone()];
        for (i, f) in FIELDS.iter().enumerate().filter(|(_, f)| !f.required) {
            let mut row = base.clone();
            row.insert(f.name.to_string(), sample(i));
            rows.push(row);
        }
        rows.push(
            FIELDS
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.to_string(), sample(i)))
                .collect(),
        );
        for row in rows {
            let journal: JournalRow = serde_json::from_value(Value::Object(row.clone()))
                .unwrap_or_else(|e| panic!("JournalRow cannot read {row:?}: {e}"));
            assert_eq!(journal.canonical(), encode_by_table(&row), "{row:?}");
        }
    }

    #[test]
    fn the_published_field_list_is_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/journal_fields.json");
        if std::env::var_os("EGRESS_WRITE_VECTORS").is_some() {
            std::fs::write(path, published()).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            committed,
            published(),
            "proto/vectors/journal_fields.json differs from proto's FIELDS; \
             EGRESS_WRITE_VECTORS=1 cargo test -p egress-proto rewrites it"
        );
        let parsed: Value = serde_json::from_str(&committed).unwrap();
        assert_eq!(parsed["fields"].as_array().unwrap().len(), FIELD_COUNT);
    }

    #[test]
    fn columns_are_seq_the_hashes_then_the_fields() {
        let names: Vec<&str> = COLUMNS.iter().map(Column::column).collect();
        assert_eq!(&names[..4], ["seq", "prev_hash", "row_hash", "database"]);
        assert_eq!(names[5], "recorded_at");
        assert_eq!(names.last(), Some(&"detail"));
        assert_eq!(column_index("row_hash"), 2);
        assert_eq!(column_index("detail"), COLUMN_COUNT - 1);
    }
}
