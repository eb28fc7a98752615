//! One collector per state directory and per ingest socket: an exclusive
//! `flock` on a lock file in each, taken before anything is bound. A second
//! `run` on the same paths would otherwise unlink and re-bind the live
//! sockets, leaving the first collector unreachable (and its spool shared).
//! The kernel drops a `flock` when its holder dies, so a dead collector's
//! lock never blocks a restart, and its stale socket is still replaced.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Name of the lock file in the state directory.
pub const STATE_LOCK: &str = "collector.lock";

/// Held for the life of the service; the locks go with it.
#[derive(Debug)]
pub struct InstanceLock {
    _held: Vec<Flock<File>>,
}

impl InstanceLock {
    /// Locks `state_dir/collector.lock` and `<ingest socket>.lock`, and writes
    /// this process's pid into each, for the next one to name.
    pub fn acquire(state_dir: &Path, ingest_socket: &Path) -> Result<InstanceLock> {
        let mut socket_lock = ingest_socket.as_os_str().to_owned();
        socket_lock.push(".lock");
        let paths = [state_dir.join(STATE_LOCK), PathBuf::from(socket_lock)];
        let mut held = Vec::new();
        for path in paths {
            held.push(lock_one(&path)?);
        }
        Ok(InstanceLock { _held: held })
    }
}

fn lock_one(path: &Path) -> Result<Flock<File>> {
    let err = |source| Error::State {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let pid = std::process::id();
            locked.set_len(0).map_err(err)?;
            locked.rewind().map_err(err)?;
            writeln!(locked, "{pid}").map_err(err)?;
            Ok(locked)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            Err(Error::Config(format!(
                "another collector (pid {pid}) is running on {}; stop it first, or give this one its own [state] dir and [ingest] socket",
                path.display()
            )))
        }
        Err((_, errno)) => Err(err(errno.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_paths_names_the_holder_and_a_released_one_is_free() {
        let dir = std::env::temp_dir().join(format!("egress-lock-{}", std::process::id()));
        let socket = dir.join("ingest.sock");
        let first = InstanceLock::acquire(&dir, &socket).unwrap();
        let second = InstanceLock::acquire(&dir, &socket)
            .unwrap_err()
            .to_string();
        assert!(
            second.contains(&format!("pid {}", std::process::id())),
            "{second}"
        );
        drop(first);
        InstanceLock::acquire(&dir, &socket).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
