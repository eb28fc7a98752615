//! The real `egress-collector run` process, and its `status`, `verify` and
//! `watch` subcommands.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bins, db::conninfo, Scratch};

/// Every environment variable the collector reads: tests pass options
/// explicitly and must not inherit the developer's settings.
const COLLECTOR_ENV: &[&str] = &[
    "EGRESS_SOCKET",
    "EGRESS_CONTROL",
    "EGRESS_STATE_DIR",
    "EGRESS_COLLECTOR_ID",
    "EGRESS_DATABASE_URL",
    "EGRESS_DEFAULT_DB",
    "EGRESS_ALLOW_UIDS",
    "EGRESS_SOCKET_MODE",
    "EGRESS_CONTROL_ALLOW_UIDS",
    "EGRESS_CONTROL_EXPORT_UIDS",
    "EGRESS_CONFIG",
];

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in COLLECTOR_ENV {
        cmd.env_remove(var);
    }
    cmd
}

pub struct CollectorBuilder {
    default_db: String,
    allow_uids: Vec<u32>,
    socket_mode: Option<String>,
    database_url: Option<String>,
    extra: Vec<String>,
}

impl CollectorBuilder {
    /// Another server than the shared one (a private cluster).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_string());
        self
    }

    /// Also accept datagrams from `uid` (the collector's own uid always is).
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.allow_uids.push(uid);
        self
    }

    /// Mode of the ingest socket, e.g. `0666`.
    pub fn socket_mode(mut self, mode: &str) -> Self {
        self.socket_mode = Some(mode.to_string());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    /// Starts the collector and waits until it is ready.
    pub fn start(self) -> Collector {
        let mut collector = self.build();
        collector.launch();
        collector
    }

    /// Prepares the directories and arguments without starting anything, so
    /// a client can be pointed at the socket path before the collector runs.
    pub fn build(self) -> Collector {
        let dir = Scratch::new("col");
        let socket = dir.join("ingest.sock");
        let control = dir.join("control.sock");
        let state = dir.join("state");
        std::fs::create_dir_all(&state).expect("create the state dir");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--socket".into(),
            socket.display().to_string(),
            "--control".into(),
            control.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--database-url".into(),
            self.database_url
                .unwrap_or_else(|| conninfo("egress_collector", "{db}")),
            "--default-db".into(),
            self.default_db,
        ];
        for uid in self.allow_uids {
            args.push("--allow-uid".into());
            args.push(uid.to_string());
        }
        if let Some(mode) = self.socket_mode {
            args.push("--socket-mode".into());
            args.push(mode);
        }
        args.extend(self.extra);
        Collector {
            log: dir.join("collector.log"),
            dir,
            socket,
            control,
            args,
            child: None,
            starts: 0,
        }
    }
}

/// A running `egress-collector run` with its own socket, control socket and
/// state directory. Its stderr and stdout go to `collector.log` (appended
/// across restarts), which is printed if the test fails.
pub struct Collector {
    // Declared before `dir` so the process is gone before its files are.
    child: Option<Child>,
    dir: Scratch,
    socket: PathBuf,
    control: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    starts: u32,
}

/// Identity of a socket file: a restarted collector re-binds a new one, and
/// the old path may survive a kill -9, so "the file exists" alone is not
/// readiness after a restart.
fn file_id(path: &Path) -> Option<(u64, i64, i64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

impl Collector {
    pub fn builder(default_db: &str) -> CollectorBuilder {
        CollectorBuilder {
            default_db: default_db.to_string(),
            allow_uids: Vec::new(),
            socket_mode: None,
            database_url: None,
            extra: Vec::new(),
        }
    }

    /// Starts a collector whose default database is `default_db`.
    pub fn start(default_db: &str) -> Collector {
        Collector::builder(default_db).start()
    }

    /// Starts the (built, stopped or killed) collector with its options and
    /// directories, and waits until both of its sockets are freshly bound.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the collector is already running");
        let before = (file_id(&self.socket), file_id(&self.control));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the collector log");
        self.starts += 1;
        let mut cmd = Command::new(bins::collector());
        clean_env(&mut cmd)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn egress-collector run");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let now = (file_id(&self.socket), file_id(&self.control));
            let fresh = |now: &Option<_>, before: &Option<_>| now.is_some() && now != before;
            if fresh(&now.0, &before.0) && fresh(&now.1, &before.1) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "egress-collector run exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "egress-collector run did not create {} and {} within {:?}:\n{}",
                    self.socket.display(),
                    self.control.display(),
                    READY_TIMEOUT,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn control(&self) -> &Path {
        &self.control
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the collector is running").id()
    }

    /// The collector's log so far (all runs).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child, which has not been reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("the collector is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for a graceful exit, which must be status 0.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "egress-collector exited with {status} after SIGTERM:\n{}",
                self.log_text()
            ),
            None => panic!(
                "egress-collector still running {STOP_TIMEOUT:?} after SIGTERM:\n{}",
                self.log_text()
            ),
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(STOP_TIMEOUT)
            .expect("a SIGKILLed process exits");
    }

    /// SIGTERM, then start again.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// `egress-collector status --json`, parsed.
    pub fn status(&self) -> Status {
        let mut cmd = Command::new(bins::collector());
        let out = clean_env(&mut cmd)
            .args(["status", "--control"])
            .arg(&self.control)
            .arg("--json")
            .output()
            .expect("spawn egress-collector status");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "egress-collector status failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let json = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("status --json printed no JSON object ({e}):\n{stdout}"));
        Status(json)
    }

    /// Peak resident set size (VmHWM) of the running collector, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sends `n` HTTPS calls of the `mail` addon to api.openai.com (paths
    /// `/v1/item/<i>`, 100 bytes out) for `db` through a real hook client,
    /// one at a time (the kernel's queue is short), and waits until every
    /// one is journaled.
    pub fn send_calls(&self, db: &crate::TestDb, n: i64) {
        let hook = egress_hook::HookClient::new(self.socket());
        let before = db.call_rows();
        for i in 0..n {
            hook.send_call(egress_hook::Call {
                database: db.name().into(),
                channel: "http".into(),
                host: "api.openai.com".into(),
                port: 443,
                path: format!("/v1/item/{i}"),
                bytes_out: 100,
                stack: vec![egress_hook::StackFrame {
                    file: "/odoo/addons/mail/models/mail_mail.py".into(),
                    function: "send".into(),
                    line: 1,
                }],
                ..egress_hook::Call::default()
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        let rows = crate::wait_until(
            Duration::from_secs(30),
            || db.call_rows(),
            |v| *v >= before + n,
        );
        assert_eq!(rows, before + n, "every call is journaled");
    }

    /// `egress-collector <args> --control <ours>`, e.g. `["sign-now", "--db", x]`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bins::collector());
        clean_env(&mut cmd)
            .args(args)
            .arg("--control")
            .arg(&self.control)
            .output()
            .expect("spawn egress-collector")
    }

    /// `cli` run as another uid (and gid), from a copy of the binary that
    /// uid can execute, in `dir` (which it must be able to write). The
    /// control socket is opened to every uid first: the check under test is
    /// the collector's, not the file system's.
    pub fn cli_as_uid(&self, uid: u32, dir: &Scratch, args: &[&str]) -> Output {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let binary = dir.join("egress-collector");
        if !binary.exists() {
            std::fs::copy(bins::collector(), &binary).expect("copy egress-collector");
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
                .expect("chmod egress-collector");
        }
        std::fs::set_permissions(&self.control, std::fs::Permissions::from_mode(0o666))
            .expect("chmod the control socket");
        let mut cmd = Command::new(&binary);
        clean_env(&mut cmd)
            .args(args)
            .arg("--control")
            .arg(&self.control)
            .current_dir(dir.path())
            .uid(uid)
            .gid(uid)
            .output()
            .expect("spawn egress-collector as another uid")
    }

    /// `egress-collector watch --control <ours> <args>`, streaming.
    pub fn watch(&self, args: &[&str]) -> Watch {
        let mut cmd = Command::new(bins::collector());
        clean_env(&mut cmd)
            .arg("watch")
            .arg("--control")
            .arg(&self.control)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Watch::spawn(cmd)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== collector log ({} start(s)) =====", self.starts);
            eprintln!("{}", self.log_text());
            eprintln!("===== end of collector log =====");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `status --json`.
#[derive(Debug, Clone)]
pub struct Status(pub Value);

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

impl Status {
    pub fn datagrams(&self) -> i64 {
        int(&self.0["ingest"]["datagrams"])
    }

    pub fn accepted(&self) -> i64 {
        int(&self.0["ingest"]["accepted"])
    }

    /// Datagrams rejected for `reason` (0 when the reason is absent).
    pub fn rejected(&self, reason: &str) -> i64 {
        int(&self.0["ingest"]["rejected"][reason])
    }

    /// Sum over every reject reason.
    pub fn rejected_total(&self) -> i64 {
        match self.0["ingest"]["rejected"].as_object() {
            Some(map) => map.values().map(int).sum(),
            None => 0,
        }
    }

    pub fn database(&self, name: &str) -> &Value {
        &self.0["databases"][name]
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The outcome of `egress-collector verify`.
#[derive(Debug)]
pub struct Verify {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The sentence a verified chain prints.
pub const VERIFIED_OK: &str = "Audit chain verified OK — no tampering detected.";

impl Verify {
    pub fn verified(&self) -> bool {
        self.code == Some(0) && self.stdout.contains(VERIFIED_OK)
    }

    /// Whether the output (stdout or stderr) names `seq n` (and not, say,
    /// `seq n0`).
    pub fn names_seq(&self, n: i64) -> bool {
        let needle = format!("seq {n}");
        [&self.stdout, &self.stderr].iter().any(|text| {
            text.match_indices(&needle)
                .any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
    }
}

impl std::fmt::Display for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `egress-collector verify --database-url <url>`.
pub fn verify(database_url: &str) -> Verify {
    verify_with(database_url, &[])
}

/// `egress-collector verify --database-url <url> <extra…>` (e.g. `--pubkey`),
/// also read in chunks of 2 rows over 3 connections, which must agree.
pub fn verify_with(database_url: &str, extra: &[&str]) -> Verify {
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bins::collector());
        let out = clean_env(&mut cmd)
            .args(["verify", "--database-url", database_url])
            .args(extra)
            .args(args)
            .output()
            .expect("spawn egress-collector verify");
        Verify {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let verified = run(&[]);
    // Read in COPY chunks of 2 rows (boundaries everywhere in a test's small
    // journal) over 3 connections, the verdict must be the same; the counts after it may not,
    // when a running collector signs a head in between.
    let chunked = run(&["--no-record", "--chunk-rows", "2", "--connections", "3"]);
    assert!(
        !chunked.stderr.contains("cannot share its snapshot"),
        "{chunked}"
    );
    let verdict = |v: &Verify| (v.code, v.stdout.lines().next().map(str::to_owned));
    assert_eq!(
        verdict(&verified),
        verdict(&chunked),
        "verify read in chunks of 2 rows differs:\n{verified}\n{chunked}"
    );
    verified
}

/// A running `watch`: its stdout lines arrive on a channel; killed on drop.
pub struct Watch {
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Watch {
    fn spawn(mut cmd: Command) -> Watch {
        let mut child = cmd.spawn().expect("spawn egress-collector watch");
        let lines = pipe_lines(child.stdout.take().expect("piped stdout"));
        let stderr = pipe_lines(child.stderr.take().expect("piped stderr"));
        Watch {
            child,
            lines,
            stderr,
        }
    }

    /// The next non-empty line, or None after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => return Some(line),
                Err(_) => return None,
            }
        }
    }

    /// The next line parsed as a JSON object; panics if it is not one.
    pub fn next_json(&mut self, timeout: Duration) -> Value {
        let Some(line) = self.next_line(timeout) else {
            panic!(
                "watch printed no line within {timeout:?}; stderr:\n{}",
                self.stderr_text()
            );
        };
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {line}"))
    }

    /// Whatever the watcher printed on stderr so far.
    pub fn stderr_text(&mut self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Its exit status, once it exits within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id (to end it as a crashed client would).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe_lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A finished command's stdout then its stderr, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
