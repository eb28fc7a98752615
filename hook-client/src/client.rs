//! `HookClient`: the public sender, shared by all threads of a worker, and the
//! fork detection that gives a forked child a worker of its own.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_proto::{Call, ConfigChange, Hello, StackFrame};

use crate::body::CapturedBody;
use crate::fit;
use crate::forks;
use crate::sender::{Outbox, Queued};
use crate::state::State;

/// How a `HookClient` describes itself and how often it reports drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOptions {
    /// `Hello::hook_mode` when the caller leaves it empty: `rust` for this
    /// API, `native` for the Python extension.
    pub hook_mode: String,
    /// `Hello::hook_version` when the caller leaves it empty.
    pub hook_version: String,
    /// Least time between two automatic `Drops` reports, so a flapping
    /// collector is not flooded with them.
    pub drops_report_interval: Duration,
    /// How long calls given to `queue_call` close together (within this of
    /// the last send) gather before the sender thread sends them as one
    /// batch; a call after a quiet spell is sent at once by its caller. The
    /// most a call waits, and what a process killed outright (SIGKILL) can
    /// lose with no trace.
    pub send_delay: Duration,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            hook_mode: "rust".into(),
            hook_version: env!("CARGO_PKG_VERSION").into(),
            drops_report_interval: Duration::from_millis(100),
            send_delay: Duration::from_millis(2),
        }
    }
}

/// What this worker (this process, since its last fork) has sent and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Calls the kernel accepted.
    pub sent: u64,
    /// Calls that could not be sent; `sent + dropped` is every `send_call`.
    pub dropped: u64,
    /// `dropped`, by reason label (`socket_missing`, `buffer_full`, ...).
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Events of any kind counted as dropped and not yet carried by an
    /// accepted `Drops` report.
    pub pending_drops: u64,
    /// `Hello` and `ConfigChange` messages the kernel accepted.
    pub other_sent: u64,
    /// `Hello` and `ConfigChange` messages that could not be sent.
    pub other_dropped: u64,
    /// `Drops` datagrams the kernel accepted.
    pub reports_sent: u64,
}

/// Fire-and-forget sender of egress-proto messages to the collector's Unix
/// datagram socket. Every method returns promptly and never fails: what
/// cannot be sent is counted and reported later in a `Drops` message.
///
/// Share one client between threads (`&self` everywhere). After `fork()` the
/// child notices on its next call and starts over as a new worker.
pub struct HookClient {
    path: PathBuf,
    options: HookOptions,
    /// The worker of the process that last used the client. Replaced, never
    /// mutated in place, after a fork; see `worker()`.
    current: AtomicPtr<Worker>,
}

/// One worker: a process's identity and its sending state (shared with its
/// sender thread, if `queue_call` started one).
struct Worker {
    pid: u32,
    /// `forks::generation()` when the worker was made.
    generation: Option<u64>,
    worker_id: u64,
    outbox: Arc<Outbox>,
}

impl Worker {
    fn new(pid: u32, path: &Path, options: &HookOptions) -> Self {
        let worker_id = random_worker_id();
        Worker {
            pid,
            generation: forks::generation(),
            worker_id,
            outbox: Arc::new(Outbox::new(
                worker_id,
                path.to_path_buf(),
                options.drops_report_interval,
                options.send_delay,
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.outbox.lock()
    }
}

impl HookClient {
    /// A client sending to the collector socket at `socket_path`. Nothing is
    /// opened until the first send, and nothing fails if the socket is absent.
    pub fn new(socket_path: impl Into<PathBuf>) -> HookClient {
        HookClient::with_options(socket_path, HookOptions::default())
    }

    pub fn with_options(socket_path: impl Into<PathBuf>, options: HookOptions) -> HookClient {
        let path = socket_path.into();
        let worker = Box::new(Worker::new(std::process::id(), &path, &options));
        HookClient {
            path,
            options,
            current: AtomicPtr::new(Box::into_raw(worker)),
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &HookOptions {
        &self.options
    }

    /// The random id of the current worker; a forked child gets a new one.
    pub fn worker_id(&self) -> u64 {
        self.worker().worker_id
    }

    /// Sends one call now, filling `worker_id` and `seq` (per worker and
    /// database, from 1, consumed only when the kernel accepts the datagram),
    /// after any calls queued before it. Oversized fields are truncated to
    /// fit one datagram.
    pub fn send_call(&self, mut call: Call) {
        let worker = self.worker();
        fit::truncate(&mut call.database, fit::DATABASE_MAX);
        guarded(|| {
            worker.outbox.send_now(Queued {
                call,
                frames: Vec::new(),
            })
        });
    }

    /// Like `send_call` for a call that comes alone (nothing queued, nothing
    /// sent within `send_delay`): sent at once, on the caller's thread,
    /// since waking a thread would cost the host more than the system call.
    /// Calls that come closer together are queued and this worker's sender
    /// thread (started on first use) sends them within `send_delay`, batched,
    /// so that a burst does not pay a system call each. A full queue is a
    /// counted `buffer_full` drop; `send_call`, `report_drops`, `stats` and
    /// `flush` send the queue first.
    pub fn queue_call(&self, call: Call) {
        self.queue_call_with_frames(call, Vec::new());
    }

    /// `queue_call` for a call whose stack frames (when `frames` is not
    /// empty) are shared, as a stack-capture cache keeps them: the sender
    /// thread copies them into `call.stack`, so the caller only pays for
    /// reference counts.
    pub fn queue_call_with_frames(&self, mut call: Call, frames: Vec<Arc<StackFrame>>) {
        let worker = self.worker();
        fit::truncate(&mut call.database, fit::DATABASE_MAX);
        guarded(|| worker.outbox.push(Queued { call, frames }));
    }

    /// Sends one call now, like `send_call`, and when the kernel accepted
    /// it, the bodies forensic capture copied from it, as `ForensicBody`
    /// chunks naming that call's sequence number (docs/WIRE_FORMAT.md §4).
    /// A body chunk that cannot be sent is counted with the other messages
    /// (`stats`), never as a lost call. Only ever called while capture is
    /// on for the call (the Python interceptor decides).
    pub fn send_call_with_bodies(&self, mut call: Call, bodies: Vec<CapturedBody>) {
        let worker = self.worker();
        fit::truncate(&mut call.database, fit::DATABASE_MAX);
        let every = self.options.drops_report_interval;
        guarded(|| {
            let mut state = worker.outbox.drained();
            let database = call.database.clone();
            let before = state.last_seq(&database);
            state.send_call(call, &self.path, every, false);
            match state.last_seq(&database) {
                Some(seq) if Some(seq) != before => {
                    state.send_bodies(&database, seq, bodies, &self.path, every)
                }
                _ => {}
            }
        });
    }

    /// Sends every queued call now, on this thread.
    pub fn flush(&self) {
        let worker = self.worker();
        guarded(|| drop(worker.outbox.drained()));
    }

    /// Sends every queued call and ends the sender thread (the next
    /// `queue_call` starts another). Call it before `fork()`, so that the
    /// child inherits no thread and the parent's queued calls leave from the
    /// parent.
    pub fn stop_sender(&self) {
        let worker = self.worker();
        guarded(|| worker.outbox.stop());
    }

    /// Sends a `Hello`, filling `worker_id` and `pid`, and `hook_mode`,
    /// `hook_version` and `sent_at_us` when left empty. A failure is counted
    /// under database `""`; it consumes no call sequence number.
    pub fn send_hello(&self, mut hello: Hello) {
        let worker = self.worker();
        hello.pid = worker.pid;
        if hello.hook_mode.is_empty() {
            hello.hook_mode.clone_from(&self.options.hook_mode);
        }
        if hello.hook_version.is_empty() {
            hello.hook_version.clone_from(&self.options.hook_version);
        }
        if hello.sent_at_us == 0 {
            hello.sent_at_us = now_us();
        }
        let every = self.options.drops_report_interval;
        guarded(|| worker.lock().send_hello(hello, &self.path, every));
    }

    /// Sends a `ConfigChange`, filling `worker_id`. A failure is counted
    /// under the change's database; it consumes no call sequence number.
    pub fn send_config_change(&self, change: ConfigChange) {
        let worker = self.worker();
        let every = self.options.drops_report_interval;
        guarded(|| worker.lock().send_config_change(change, &self.path, every));
    }

    /// Sends a `Drops` report now: every pending count (possibly none) and the
    /// last sequence number of every database. Returns whether the kernel
    /// accepted it; the counts are cleared only then.
    pub fn report_drops(&self) -> bool {
        let worker = self.worker();
        guarded(|| worker.outbox.drained().report(&self.path)).unwrap_or(false)
    }

    /// What this worker has sent and lost, queued calls sent first.
    pub fn stats(&self) -> HookStats {
        let worker = self.worker();
        let state = worker.outbox.drained();
        let totals = state.totals();
        HookStats {
            sent: totals.calls_sent,
            dropped: totals.calls_dropped,
            dropped_by_reason: totals
                .calls_dropped_by_reason
                .iter()
                .map(|(reason, count)| (reason.as_str().to_string(), *count))
                .collect(),
            pending_drops: state.pending_drops(),
            other_sent: totals.other_sent,
            other_dropped: totals.other_dropped,
            reports_sent: totals.reports_sent,
        }
    }

    /// The worker of this process, replacing an inherited one after a fork.
    ///
    /// A forked child must not touch its parent's worker at all: another
    /// parent thread may have held the lock at the moment of the fork, and in
    /// the child nobody would ever release it. So the child builds a new
    /// worker beside the old one and swaps the pointer; the inherited worker
    /// is leaked (its memory and socket descriptor, once per fork: closing a
    /// descriptor number we cannot prove is still ours could close someone
    /// else's).
    fn worker(&self) -> &Worker {
        let generation = forks::generation();
        loop {
            let current = self.current.load(Ordering::Acquire);
            // SAFETY: `current` always holds a pointer from `Box::into_raw`
            // that is freed only by `Drop`, which has `&mut self`, so no
            // borrow returned here can outlive it. Replaced workers are never
            // freed.
            let worker = unsafe { &*current };
            // The fork counter spares every event a getpid() system call;
            // the pid decides only where there is no counter.
            let pid = match generation {
                Some(_) if worker.generation == generation => return worker,
                Some(_) => std::process::id(),
                None => {
                    let pid = std::process::id();
                    if worker.pid == pid {
                        return worker;
                    }
                    pid
                }
            };
            let fresh = Box::into_raw(Box::new(Worker::new(pid, &self.path, &self.options)));
            match self
                .current
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: as above; `fresh` is now the current worker.
                Ok(_) => return unsafe { &*fresh },
                Err(_) => {
                    // Another thread of the child swapped first; use its worker.
                    // SAFETY: `fresh` was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

impl Drop for HookClient {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        // SAFETY: `current` came from `Box::into_raw` and, with `&mut self`,
        // nothing else can reach it any more.
        let worker = unsafe { Box::from_raw(current) };
        // Queued calls leave before the client goes; not in a forked child
        // that never used the client, whose worker (and its locks) is the
        // parent's.
        if worker.pid == std::process::id() {
            guarded(|| worker.outbox.stop());
        }
    }
}

impl std::fmt::Debug for HookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookClient")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Runs `f`, turning a panic (a bug in this crate) into `None`: the audited
/// call must go on whatever happens here (DESIGN §1.1).
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A random, non-zero worker id. The fallback mixes in the pid and the clock
/// because std's hasher keys alone are inherited across a fork, and sibling
/// workers must not collide.
fn random_worker_id() -> u64 {
    let mut bytes = [0u8; 8];
    let read = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_ok() {
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return id;
        }
    }
    let local = 0u8;
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_i64(now_us());
    hasher.write_usize(std::ptr::addr_of!(local) as usize);
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests;
