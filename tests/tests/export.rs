//! `export` streams the file from one snapshot of the journal: the same bytes
//! as the reference (`egress_signer::build_export`) over the same rows, read
//! in chunks; rows appended during an export are not in it and do not change
//! its range; a client that goes away or a database that fails part way
//! leaves the collector running and no file that looks complete.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use egress_hook::{Call, HookClient};
use egress_tests::bins::bin_dir;
use egress_tests::{output_text, serial, wait_until, Collector, Loadgen, Scratch, TestDb};

fn send_calls(collector: &Collector, db: &TestDb, paths: &[&str]) {
    let hook = HookClient::new(collector.socket());
    let before = db.call_rows();
    for path in paths {
        hook.send_call(Call {
            database: db.name().into(),
            channel: "http".into(),
            host: "api.example.com".into(),
            port: 443,
            path: (*path).into(),
            ..Call::default()
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    let expected = before + paths.len() as i64;
    let rows = wait_until(
        Duration::from_secs(30),
        || db.call_rows(),
        |v| *v >= expected,
    );
    assert_eq!(rows, expected);
}

/// `n` calls from the load generator, in the journal as calls or gaps (a
/// shared host drops some).
fn load(collector: &Collector, db: &TestDb, n: u64) {
    let before = db.accounted();
    Loadgen::new(collector.socket(), db.name())
        .events(n)
        .rate(2_000)
        .run();
    let accounted = db.wait_accounted(before + n as i64, Duration::from_secs(60));
    assert_eq!(accounted, before + n as i64, "{}", db.gap_summary());
}

fn export(collector: &Collector, db: &TestDb, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["export", "--db", db.name(), "-o", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    collector.cli(&args)
}

fn egress_verify(file: &Path, pubkey: &str) -> Output {
    Command::new(bin_dir().join("egress-verify"))
        .arg(file)
        .args(["--pubkey", pubkey])
        .output()
        .expect("spawn egress-verify")
}

fn pubkey(collector: &Collector, db: &TestDb) -> String {
    let out = collector.cli(&["pubkey", "--db", db.name()]);
    assert!(out.status.success(), "pubkey: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn field(file: &str, name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(file).expect("a JSON export");
    doc[name].clone()
}

/// What `build_export` makes of the journal's rows and heads as they are
/// now, with the file's time of export: the reference for the collector's
/// streamed file.
fn reference(collector: &Collector, db: &TestDb, file: &str, from: i64, to: Option<i64>) -> String {
    use egress_collector::db::store;
    let exported_at = field(file, "exported_at_us").as_i64().unwrap();
    let keys = egress_signer::KeyStore::open(collector.dir().join("state"))
        .unwrap()
        .keys(db.name())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&db.superuser_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let rows: Vec<_> = store::rows_in_range(&client, from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let hash = |h: Vec<u8>| <[u8; 32]>::try_from(h).unwrap();
                (r.row, hash(r.prev_hash), hash(r.row_hash))
            })
            .collect();
        let heads: Vec<_> = store::signed_heads(&client)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        egress_signer::build_export(db.name(), &rows, &heads, &keys, exported_at, from, to)
            .to_json()
    })
}

#[test]
fn a_journal_of_many_chunks_streams_the_bytes_of_the_reference_and_verifies() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("export_chunks");
    let collector = Collector::start(db.name());
    let dir = Scratch::new("export_chunks");
    send_calls(
        &collector,
        &db,
        &["/v1/ascii", "/v1/ünïcode/日本", "/v1/\"quoted\"\\"],
    );
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    load(&collector, &db, 300);
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    send_calls(&collector, &db, &["/v1/after-the-last-head"]);
    let head = db.head_seq();
    let pubkey = pubkey(&collector, &db);

    // (from, to, chunk rows): the whole journal in chunks of 7 rows and in
    // one; a range with heads in and out of it; a --to before the end;
    // a --to after the end; a range past the end (no rows).
    let cases: [(i64, Option<i64>, &str); 6] = [
        (1, None, "7"),
        (1, None, "10000"),
        (3, Some(head - 20), "5"),
        (1, Some(2), "1"),
        (2, Some(head + 100), "64"),
        (head + 1, None, "3"),
    ];
    for (from, to, chunk_rows) in cases {
        let file = dir.join(&format!("export-{from}-{to:?}-{chunk_rows}.json"));
        let (from_arg, to_arg) = (from.to_string(), to.map(|t| t.to_string()));
        let mut extra = vec!["--from", &from_arg, "--chunk-rows", chunk_rows];
        if let Some(to) = &to_arg {
            extra.extend(["--to", to]);
        }
        let out = export(&collector, &db, &file, &extra);
        assert!(
            out.status.success(),
            "export {extra:?}: {}",
            output_text(&out)
        );
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written == reference(&collector, &db, &written, from, to),
            "export {extra:?} differs from build_export's bytes:\n{written}"
        );
        let verified = egress_verify(&file, &pubkey);
        assert_eq!(
            verified.status.code(),
            Some(0),
            "egress-verify of export {extra:?}: {}",
            output_text(&verified)
        );
    }
}

/// A raw control connection asking for an export, read by hand: the test
/// decides when to read on.
struct SlowReader {
    reader: BufReader<UnixStream>,
    received: Vec<u8>,
}

impl SlowReader {
    fn ask(collector: &Collector, db: &TestDb, chunk_rows: u32) -> SlowReader {
        let mut stream = UnixStream::connect(collector.control()).unwrap();
        let request =
            serde_json::json!({"cmd": "export", "db": db.name(), "chunk_rows": chunk_rows});
        writeln!(stream, "{request}").unwrap();
        SlowReader {
            reader: BufReader::new(stream),
            received: Vec::new(),
        }
    }

    /// Reads up to the line that opens the rows: by then the collector has
    /// chosen its snapshot and the range.
    fn read_header(&mut self) -> serde_json::Value {
        let mut range = serde_json::Value::Null;
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "reply ended early"
            );
            self.received.extend_from_slice(line.as_bytes());
            if let Some(value) = line.trim_start().strip_prefix("\"range\": ") {
                range = serde_json::from_str(value.trim_end().trim_end_matches(',')).unwrap();
            }
            if line.starts_with("  \"rows\": [") {
                return range;
            }
        }
    }

    fn read_rest(mut self) -> Vec<u8> {
        self.reader.read_to_end(&mut self.received).unwrap();
        self.received
    }
}

/// The journal must be larger than what the control socket buffers, so
/// that the collector is still reading rows while the test appends.
const LARGER_THAN_THE_SOCKET_BUFFER: u64 = 5_000;

#[test]
fn rows_appended_during_an_export_are_not_in_it_and_do_not_change_its_range() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("export_appends");
    let collector = Collector::start(db.name());
    let dir = Scratch::new("export_appends");
    load(&collector, &db, LARGER_THAN_THE_SOCKET_BUFFER);
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    let head_before = db.head_seq();

    let mut export = SlowReader::ask(&collector, &db, 50);
    let range = export.read_header();
    assert_eq!(
        range["to"], head_before,
        "the range is decided at the start"
    );
    // Appended and signed while the collector waits for the test to read on.
    send_calls(&collector, &db, &["/v1/during/1", "/v1/during/2"]);
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    assert!(db.head_seq() > head_before);
    let file = dir.join("export.json");
    let bytes = export.read_rest();
    assert!(
        bytes.len() > 1_000_000,
        "{} bytes: the collector could have written the whole file before the appends",
        bytes.len()
    );
    std::fs::write(&file, &bytes).unwrap();

    let written = String::from_utf8(bytes).unwrap();
    assert!(written.ends_with("\n}\n"), "the file is complete");
    assert_eq!(field(&written, "range")["to"], head_before);
    let rows = field(&written, "rows");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.last().unwrap()["seq"], head_before);
    // The head signed during the export is not its latest: that one would
    // be beyond `to` and make the export look truncated.
    assert!(field(&written, "latest_head")["seq"].as_i64().unwrap() <= head_before);
    let verified = egress_verify(&file, &pubkey(&collector, &db));
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        output_text(&verified)
    );
}

fn export_connections(db: &TestDb) -> i64 {
    db.sql().int(&format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'egress-collector export' AND datname = '{}'",
        db.name()
    ))
}

#[test]
fn a_client_that_goes_away_or_a_database_that_fails_part_way_leaves_the_collector_running() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("export_failures");
    let mut collector = Collector::start(db.name());
    let dir = Scratch::new("export_failures");
    load(&collector, &db, LARGER_THAN_THE_SOCKET_BUFFER);

    // The client hangs up after the header: the export's connection (and
    // its transaction) ends, and the collector serves on.
    let mut gone = SlowReader::ask(&collector, &db, 50);
    gone.read_header();
    assert_eq!(export_connections(&db), 1);
    drop(gone);
    let left = wait_until(
        Duration::from_secs(10),
        || export_connections(&db),
        |n| *n == 0,
    );
    assert_eq!(left, 0, "the abandoned export still holds its connection");
    assert!(collector.is_running());

    // The database fails part way: the reply ends with an error line and
    // without the file's closing brace.
    let mut failing = SlowReader::ask(&collector, &db, 50);
    failing.read_header();
    db.sql()
        .batch(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'egress-collector export' AND datname = '{}'",
            db.name()
        ))
        .unwrap();
    let reply = String::from_utf8(failing.read_rest()).unwrap();
    let last = reply.lines().last().unwrap();
    assert!(
        last.starts_with("{\"") && last.contains("the export failed after"),
        "last line: {last}"
    );
    assert!(!reply.ends_with("\n}\n"));
    assert!(serde_json::from_str::<serde_json::Value>(&reply).is_err());

    // And the service goes on: rows are appended, exports work.
    send_calls(&collector, &db, &["/v1/after"]);
    let file = dir.join("export.json");
    let out = export(&collector, &db, &file, &[]);
    assert!(out.status.success(), "export: {}", output_text(&out));
    let verified = egress_verify(&file, &pubkey(&collector, &db));
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        output_text(&verified)
    );
    assert!(collector.is_running());
    let refused = dir.join("refused.json");
    let out = collector.cli(&[
        "export",
        "--db",
        "no_such_db",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(!refused.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the exported file"
    );
}
