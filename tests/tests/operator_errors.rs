//! Bad input from an operator: each gets one line on stderr naming the
//! thing (path, database, role, key, value) and the fix, and the exit code
//! the documentation gives. The real binaries, a real PostgreSQL.

use std::process::{Command, Output};
use std::time::Duration;

use egress_tests::db::conninfo;
use egress_tests::{bins, serial, wait_until, Collector, Loadgen, Scratch, Sql, TestDb};

fn run(binary: std::path::PathBuf, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env_remove("EGRESS_CONFIG")
        .env_remove("EGRESS_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn")
}

/// Exit code and stderr, which must be exactly one line.
fn failure(out: &Output) -> (Option<i32>, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line on stderr, not:\n{stderr}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code(), stderr)
}

fn collector(args: &[&str]) -> Output {
    run(bins::collector(), args)
}

#[test]
fn an_unknown_log_level_is_refused() {
    let (code, err) = failure(&collector(&["run", "--check", "--log-level", "verbose"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("log.level \"verbose\" is not a level"),
        "{err}"
    );
    assert!(err.contains("--log-level"), "{err}");
}

#[test]
fn an_unknown_watch_channel_is_refused() {
    let out = collector(&["watch", "--channel", "bogus", "--control", "/nonexistent"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // clap's usage error: exit 2, the value, the flag and the values it takes.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'bogus' for '--channel <CHANNEL>'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("http, smtp, imap, pop3, socket, dns"),
        "{stderr}"
    );
}

#[test]
fn run_on_a_database_that_does_not_answer_starts_and_says_so_in_one_error_line() {
    let dir = Scratch::new("nopg");
    let socket_dir = dir.join("no-postgres-here");
    let url = format!(
        "host={} user=egress_collector dbname={{db}}",
        socket_dir.display()
    );
    let ingest = dir.join("ingest.sock");
    let log = std::fs::File::create(dir.join("stderr")).expect("a log file");
    let mut child = Command::new(bins::collector())
        .args([
            "run",
            "--socket",
            &ingest.display().to_string(),
            "--control",
            &dir.join("control.sock").display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
            "--database-url",
            &url,
            "--default-db",
            "egress_nowhere",
        ])
        .env_remove("EGRESS_CONFIG")
        .env_remove("EGRESS_LOG")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    // A server that does not answer is a passing outage, not a mistake in
    // the configuration: the collector must be there to spool what arrives.
    let started = wait_until(Duration::from_secs(30), || ingest.exists(), |up| *up);
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(started, "the ingest socket is bound:\n{stderr}");
    assert!(status.success(), "{status}:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one ERROR line:\n{stderr}");
    let server = format!("{}/.s.PGSQL.5432", socket_dir.display());
    for words in [
        format!("cannot reach PostgreSQL at {server}").as_str(),
        "\"egress_nowhere\"",
        "start PostgreSQL",
        "wait in the spool",
    ] {
        assert!(errors[0].contains(words), "{words:?} in {}", errors[0]);
    }
}

#[test]
fn run_refuses_to_start_on_a_database_without_setup() {
    let _serial = serial();
    let db = TestDb::create("nosetup_run");
    let dir = Scratch::new("nosetup");
    let out = collector(&[
        "run",
        "--socket",
        &dir.join("ingest.sock").display().to_string(),
        "--control",
        &dir.join("control.sock").display().to_string(),
        "--state-dir",
        &dir.join("state").display().to_string(),
        "--database-url",
        &conninfo("postgres", "{db}"),
        "--default-db",
        db.name(),
    ]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("database \"{}\" has no egress journal", db.name())),
        "{err}"
    );
    assert!(
        err.contains("egress-collector setup --database-url"),
        "{err}"
    );
}

#[test]
fn verify_names_an_unreachable_socket_directory_once() {
    let dir = Scratch::new("verifynopg");
    let missing = dir.join("missing");
    let url = format!("host={} user=postgres dbname=odoo", missing.display());
    let (code, err) = failure(&collector(&["verify", "--database-url", &url]));
    assert_eq!(code, Some(2), "could not check: {err}");
    assert!(
        err.contains(&format!("{}/.s.PGSQL.5432", missing.display())),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause once: {err}"
    );
}

#[test]
fn verify_on_a_database_without_setup_suggests_setup() {
    let _serial = serial();
    let db = TestDb::create("nosetup_verify");
    let (code, err) = failure(&collector(&[
        "verify",
        "--database-url",
        &db.superuser_url(),
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("database \"{}\" has no egress schema", db.name())),
        "{err}"
    );
    assert!(
        err.contains("egress-collector setup --database-url") && err.contains(db.name()),
        "{err}"
    );
}

#[test]
fn setup_as_a_role_that_is_not_superuser_says_it_needs_one() {
    let _serial = serial();
    let db = TestDb::create("nosuper");
    let role = format!("egress_t_nosuper_{}", std::process::id());
    let admin = Sql::connect(&conninfo("postgres", "postgres")).unwrap();
    admin
        .batch(&format!("CREATE ROLE {role} LOGIN"))
        .expect("create the plain role");
    let out = collector(&["setup", "--database-url", &conninfo(&role, db.name())]);
    admin.batch(&format!("DROP ROLE {role}")).expect("drop it");
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "setup needs a PostgreSQL superuser and role \"{role}\" is not one"
        )),
        "{err}"
    );
    assert!(err.contains("user=postgres"), "{err}");
}

#[test]
fn loadgen_fails_when_nothing_was_delivered() {
    let dir = Scratch::new("lgnone");
    let socket = dir.join("absent.sock");
    let socket_text = socket.display().to_string();
    let out = run(
        bins::loadgen(),
        &[
            "--socket",
            &socket_text,
            "--db",
            "x",
            "--events",
            "5",
            "--clients",
            "1",
        ],
    );
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("nothing was delivered to {socket_text}")),
        "{err}"
    );
    assert!(err.contains("socket_missing=5"), "{err}");
}

#[test]
fn status_counts_only_live_watchers_and_watch_fails_when_the_collector_goes() {
    let _serial = serial();
    let db = TestDb::new("watchers");
    let mut collector = Collector::start(db.name());
    let watchers = |c: &Collector| c.status().0["watchers"].as_i64().unwrap_or(-1);

    let crashed = collector.watch(&[]);
    let mut kept = collector.watch(&[]);
    assert_eq!(
        wait_until(
            Duration::from_secs(10),
            || watchers(&collector),
            |n| *n == 2
        ),
        2
    );
    // A watcher killed while no row flows is no longer counted.
    // SAFETY: kill(2) on a child process we spawned and have not reaped.
    unsafe { libc::kill(crashed.pid() as libc::pid_t, libc::SIGKILL) };
    drop(crashed);
    assert_eq!(
        wait_until(
            Duration::from_secs(10),
            || watchers(&collector),
            |n| *n == 1
        ),
        1,
        "status counts the dead watcher"
    );

    collector.stop();
    let status = kept
        .wait_exit(Duration::from_secs(30))
        .expect("watch exits when the collector stops");
    let err = kept.stderr_text();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("watch stopped:"), "{err}");
    assert!(err.contains("run `egress-collector watch` again"), "{err}");
}

#[test]
fn verify_counts_signed_heads_in_words_that_agree() {
    let _serial = serial();
    let db = TestDb::odoo_shaped("oneheads");
    let mut collector = Collector::builder(db.name())
        .arg("--sign-interval-secs")
        .arg("86400")
        .start();
    let sent = Loadgen::new(collector.socket(), db.name())
        .events(3)
        .clients(1)
        .run();
    db.wait_accounted(sent.attempted() as i64, Duration::from_secs(30));
    let out = collector.cli(&["sign-now", "--db", db.name()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    collector.stop();
    let heads = db.sql().int("SELECT count(*) FROM egress.signed_head");
    let verified = egress_tests::verify(&db.superuser_url());
    assert!(verified.verified(), "{verified}");
    let expected = if heads == 1 {
        "; 1 signed head checked.".to_owned()
    } else {
        format!("; {heads} signed heads checked.")
    };
    assert!(
        verified.stdout.contains(&expected),
        "{heads} heads: {verified}"
    );
}

#[test]
fn run_names_a_missing_socket_group_before_creating_anything() {
    let dir = Scratch::new("nogroup");
    let state = dir.join("state");
    let (code, err) = failure(&collector(&[
        "run",
        "--socket",
        &dir.join("ingest.sock").display().to_string(),
        "--control",
        &dir.join("control.sock").display().to_string(),
        "--state-dir",
        &state.display().to_string(),
        "--socket-group",
        "egress_no_such_group",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("ingest.socket_group \"egress_no_such_group\" does not exist"),
        "{err}"
    );
    assert!(err.contains("--socket-group"), "{err}");
    assert!(!state.exists(), "nothing is created before the check");
}
