//! Runs the real `egress-loadgen` and parses its final report.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bins, Scratch};

/// How long any loadgen run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// What a loadgen run said at exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadgenReport {
    /// Events the socket accepted.
    pub sent: u64,
    /// Events the clients could not send (and counted).
    pub dropped: u64,
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Whether every client's drop report reached the socket.
    pub drops_reported: bool,
    pub clients: u64,
    pub events_per_client: Option<u64>,
    pub elapsed_ms: Option<u64>,
}

impl LoadgenReport {
    /// Events the clients tried to send: what the journal must account for.
    pub fn attempted(&self) -> u64 {
        self.sent + self.dropped
    }

    /// Parses the `--json` report: one JSON object on the last non-empty line.
    pub fn parse_json(stdout: &str) -> Result<LoadgenReport, String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .ok_or("loadgen printed nothing")?;
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let num = |key: &str| {
            v[key]
                .as_u64()
                .ok_or_else(|| format!("no integer `{key}` in loadgen report: {line}"))
        };
        let dropped_by_reason = match v["dropped_by_reason"].as_object() {
            Some(map) => map
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect(),
            None => BTreeMap::new(),
        };
        Ok(LoadgenReport {
            sent: num("sent")?,
            dropped: num("dropped")?,
            dropped_by_reason,
            drops_reported: v["drops_reported"]
                .as_bool()
                .ok_or_else(|| format!("no boolean `drops_reported`: {line}"))?,
            clients: num("clients")?,
            events_per_client: v["events_per_client"].as_u64(),
            elapsed_ms: v["elapsed_ms"].as_u64(),
        })
    }

    /// Parses the plain report line
    /// `sent=<n> dropped=<n> drops_reported=<bool> clients=<k>`.
    pub fn parse_text(stdout: &str) -> Result<LoadgenReport, String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.contains("sent="))
            .ok_or_else(|| format!("no `sent=` line in loadgen output:\n{stdout}"))?;
        let mut fields = BTreeMap::new();
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.split_once('=') {
                fields.insert(k, v);
            }
        }
        let num = |key: &str| -> Result<u64, String> {
            fields
                .get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no integer `{key}=` in: {line}"))
        };
        Ok(LoadgenReport {
            sent: num("sent")?,
            dropped: num("dropped")?,
            drops_reported: match fields.get("drops_reported") {
                Some(&"true") => true,
                Some(&"false") => false,
                _ => return Err(format!("no `drops_reported=true|false` in: {line}")),
            },
            clients: num("clients")?,
            ..LoadgenReport::default()
        })
    }
}

/// A loadgen invocation, built up then run (or spawned).
#[derive(Debug, Clone)]
pub struct Loadgen {
    socket: PathBuf,
    db: String,
    events: u64,
    clients: u64,
    rate: Option<u64>,
    linger_ms: Option<u64>,
    uid: Option<u32>,
}

impl Loadgen {
    /// One client sending 100 events to `db` through `socket`, full speed.
    pub fn new(socket: &Path, db: &str) -> Loadgen {
        Loadgen {
            socket: socket.to_path_buf(),
            db: db.to_string(),
            events: 100,
            clients: 1,
            rate: None,
            linger_ms: None,
            uid: None,
        }
    }

    /// Events per client.
    pub fn events(mut self, n: u64) -> Self {
        self.events = n;
        self
    }

    pub fn clients(mut self, k: u64) -> Self {
        self.clients = k;
        self
    }

    /// Events per second per client.
    pub fn rate(mut self, r: u64) -> Self {
        self.rate = Some(r);
        self
    }

    /// How long each client keeps retrying its exit report.
    pub fn linger_ms(mut self, ms: u64) -> Self {
        self.linger_ms = Some(ms);
        self
    }

    /// Runs as this uid (and gid), without supplementary groups.
    pub fn as_uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Total events the run will try to send.
    pub fn total(&self) -> u64 {
        self.events * self.clients
    }

    pub fn spawn(&self) -> RunningLoadgen {
        let dir = Scratch::new("lg");
        let mut binary = bins::loadgen();
        if self.uid.is_some() {
            // The build tree may not be reachable by an unprivileged uid.
            let copy = dir.join("egress-loadgen");
            std::fs::copy(&binary, &copy).expect("copy egress-loadgen");
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                .expect("chmod egress-loadgen");
            binary = copy;
        }
        let stdout = std::fs::File::create(dir.join("stdout")).expect("create loadgen stdout");
        let stderr = std::fs::File::create(dir.join("stderr")).expect("create loadgen stderr");
        let mut cmd = Command::new(&binary);
        cmd.arg("--socket")
            .arg(&self.socket)
            .args(["--db", &self.db])
            .args(["--events", &self.events.to_string()])
            .args(["--clients", &self.clients.to_string()])
            .arg("--json")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(rate) = self.rate {
            cmd.args(["--rate", &rate.to_string()]);
        }
        if let Some(ms) = self.linger_ms {
            cmd.args(["--linger-ms", &ms.to_string()]);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        let child = cmd.spawn().expect("spawn egress-loadgen");
        RunningLoadgen {
            child: Some(child),
            dir,
            started: Instant::now(),
            total: self.total(),
        }
    }

    /// Runs to completion and returns the report.
    pub fn run(&self) -> LoadgenReport {
        self.spawn().wait()
    }
}

/// A loadgen process still running.
pub struct RunningLoadgen {
    child: Option<Child>,
    dir: Scratch,
    started: Instant,
    total: u64,
}

impl RunningLoadgen {
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits for exit (≤ 10 min) and parses the report; checks that it
    /// accounts for every event (`sent + dropped = N × K`).
    pub fn wait(mut self) -> LoadgenReport {
        self.wait_timed().0
    }

    /// Like `wait`, also returning the wall time from spawn to exit.
    pub fn wait_timed(&mut self) -> (LoadgenReport, Duration) {
        let mut child = self.child.take().expect("not waited yet");
        let deadline = self.started + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "egress-loadgen still running after {RUN_TIMEOUT:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = self.started.elapsed();
        let stdout = std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default();
        let report = LoadgenReport::parse_json(&stdout)
            .unwrap_or_else(|e| panic!("cannot parse the loadgen report: {e}\n{}", self.output()));
        // It fails (exit 1) exactly when nothing at all was delivered.
        let expected = if report.sent == 0 && self.total > 0 {
            1
        } else {
            0
        };
        assert_eq!(
            status.code(),
            Some(expected),
            "egress-loadgen exited with {status} having sent {}:\n{}",
            report.sent,
            self.output()
        );
        assert_eq!(
            report.attempted(),
            self.total,
            "loadgen's sent + dropped is not N × K: {report:?}\n{}",
            self.output()
        );
        (report, wall)
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
        )
    }
}

impl Drop for RunningLoadgen {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_json_report() {
        let out = "starting\n{\"sent\":90,\"dropped\":10,\"dropped_by_reason\":{\"buffer_full\":10},\
                   \"drops_reported\":true,\"clients\":2,\"events_per_client\":50,\"elapsed_ms\":12}\n";
        let r = LoadgenReport::parse_json(out).unwrap();
        assert_eq!(
            (r.sent, r.dropped, r.clients, r.attempted()),
            (90, 10, 2, 100)
        );
        assert_eq!(r.dropped_by_reason["buffer_full"], 10);
        assert!(r.drops_reported);
        assert_eq!(r.events_per_client, Some(50));
    }

    #[test]
    fn parses_the_text_report() {
        let r =
            LoadgenReport::parse_text("sent=5 dropped=0 drops_reported=false clients=1\n").unwrap();
        assert_eq!(
            (r.sent, r.dropped, r.drops_reported, r.clients),
            (5, 0, false, 1)
        );
        assert!(
            LoadgenReport::parse_text("sent=5 dropped=x drops_reported=true clients=1").is_err()
        );
    }
}
