//! A private PostgreSQL cluster for outage and crash tests: `initdb` into a
//! scratch directory, its own Unix socket directory, no TCP. The test stops
//! and starts it at will without touching the shared server.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{bins, db::describe, Scratch, Sql};

/// The uid PostgreSQL runs as when the tests run as root (initdb refuses root).
fn postgres_ids() -> Option<(u32, u32)> {
    if nix_is_root() {
        let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
        let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
        let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some((uid, gid))
    } else {
        None
    }
}

fn nix_is_root() -> bool {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<v>/bin`).
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions
        .last()
        .expect("a PostgreSQL version in /usr/lib/postgresql")
        .join("bin")
        .join(name)
}

/// A running (or stopped) private cluster; stopped and removed on drop.
pub struct PgCluster {
    // Holds the data and socket directories (removed last).
    _dir: Scratch,
    data: PathBuf,
    sockets: PathBuf,
    ids: Option<(u32, u32)>,
    running: bool,
}

impl PgCluster {
    /// `initdb` and start. Superuser `postgres`, trust authentication.
    pub fn start(tag: &str) -> PgCluster {
        let dir = Scratch::new(tag);
        let data = dir.join("data");
        let sockets = dir.join("sock");
        let ids = postgres_ids();
        for path in [&data, &sockets] {
            std::fs::create_dir_all(path).expect("create the cluster's directories");
            if let Some((uid, gid)) = ids {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let mut cluster = PgCluster {
            _dir: dir,
            data,
            sockets,
            ids,
            running: false,
        };
        let data = cluster.data.display().to_string();
        cluster.run(
            &pg_bin("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_server();
        cluster
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args).env_remove("PGDATA").env_remove("PGHOST");
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{}\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&mut self) {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off -c max_connections=50",
            self.sockets.display()
        );
        let log = self.sockets.join("postgres.log").display().to_string();
        let data = self.data.display().to_string();
        self.run(
            &pg_bin("pg_ctl"),
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server (fast: connections are cut, as in an outage).
    pub fn stop_server(&mut self) {
        let data = self.data.display().to_string();
        self.run(
            &pg_bin("pg_ctl"),
            &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
        );
        self.running = false;
    }

    /// libpq connection string to `dbname` as `user`.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host={} user={user} dbname={dbname}",
            self.sockets.display()
        )
    }

    /// Creates `name` and runs `egress-collector setup` on it.
    pub fn create_database(&self, name: &str) {
        let admin = Sql::connect(&self.conninfo("postgres", "postgres"))
            .unwrap_or_else(|e| panic!("connect to the private cluster: {}", describe(&e)));
        admin
            .batch(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", describe(&e)));
        let out = Command::new(bins::collector())
            .args(["setup", "--database-url", &self.conninfo("postgres", name)])
            .env_remove("EGRESS_DATABASE_URL")
            .output()
            .expect("spawn egress-collector setup");
        assert!(
            out.status.success(),
            "setup on the private cluster failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A superuser session on `name`.
    pub fn sql(&self, name: &str) -> Sql {
        Sql::connect(&self.conninfo("postgres", name))
            .unwrap_or_else(|e| panic!("connect to {name}: {}", describe(&e)))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            let mut cmd = Command::new(pg_bin("pg_ctl"));
            cmd.args(["-D", &data, "-m", "immediate", "-w", "stop"]);
            if let Some((uid, gid)) = self.ids {
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.output();
        }
    }
}
