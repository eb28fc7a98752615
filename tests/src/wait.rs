//! Bounded polling (tests never depend on timing otherwise), and the lock that
//! runs the end-to-end tests one at a time: two load tests sharing two cores
//! would measure each other.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Polls `probe` every 100 ms until `done` holds or `timeout` passes, and
/// returns the last value either way: the caller asserts on it.
pub fn wait_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls a count until it reaches `expected` (or goes past it, or `timeout`
/// passes), then reads it again after it has had time to overshoot, and
/// returns that value.
pub fn wait_for_value(timeout: Duration, expected: i64, mut probe: impl FnMut() -> i64) -> i64 {
    let reached = wait_until(timeout, &mut probe, |v| *v >= expected);
    if reached < expected {
        return reached;
    }
    std::thread::sleep(Duration::from_millis(1500));
    probe()
}

/// Holds an exclusive `flock` on a well-known file: tests of every test
/// binary (and under nextest, every process) run one at a time.
pub struct SerialGuard {
    _file: File,
}

pub fn serial() -> SerialGuard {
    let path = std::env::temp_dir().join("egress-tests.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; it is released when the file closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    SerialGuard { _file: file }
}

/// `net.unix.max_dgram_qlen`, the length of a datagram socket's receive queue.
pub fn dgram_qlen() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A test that expects no drop at a steady rate needs a receive queue that
/// absorbs scheduling hiccups; the default of 10 does not. Returns whether
/// the test may go on. Below `min` it panics with the fix, unless
/// `scripts/test.sh` found it could not raise the queue (not root): then it
/// sets `EGRESS_TESTS_SKIP_LOG`, this appends a SKIP line there that
/// test.sh prints at the end, and the test returns without asserting.
#[must_use]
pub fn require_dgram_qlen(min: u64, test: &str) -> bool {
    let qlen = dgram_qlen().unwrap_or(0);
    if qlen >= min {
        return true;
    }
    let fix =
        "run `sysctl -w net.unix.max_dgram_qlen=512` as root (scripts/test.sh does when it can)";
    if let Some(log) = std::env::var_os("EGRESS_TESTS_SKIP_LOG") {
        use std::io::Write;
        let line = format!(
            "SKIP {test}: needs net.unix.max_dgram_qlen >= {min}, this host has {qlen}; {fix}\n"
        );
        let written = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if written.is_ok() {
            return false;
        }
    }
    panic!("net.unix.max_dgram_qlen is {qlen}; this test needs at least {min}: {fix}");
}
