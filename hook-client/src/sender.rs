//! The outbox: one worker's sending state, plus calls queued for a sender
//! thread that sends them off the caller's thread (`HookClient::queue_call`).
//!
//! Why a thread: on a loaded or virtualised host the `sendto` of a datagram
//! costs the caller far more than building the event, because it wakes the
//! collector's reader (an inter-processor interrupt, often a preemption of
//! the caller itself). Calls that come close together (within `send_delay`
//! of the last send) are queued and leave in batches from a thread that holds
//! no Python lock, one wake-up per batch (`run`). Why not always: waking the
//! thread costs the host more than one `sendto`, so a call that comes alone,
//! as an Odoo worker's usually do, is sent by its caller (`send_alone`).
//!
//! What keeps the promises (DESIGN §1):
//! - the queue is bounded; a call that does not fit is a counted
//!   `buffer_full` drop, like a full collector queue;
//! - sequence numbers are still assigned under the state lock at the moment
//!   the kernel takes the datagram, in queue order: the queue only delays;
//! - the thread sends under the state lock and puts back what a full socket
//!   buffer refused, so every synchronous operation that reports or counts
//!   (`send_call`, `report_drops`, `stats`, `flush`) finds every unsent call
//!   in the queue, and sends it first, on the caller's thread;
//! - where the caller would drop a call for a full buffer, the thread waits
//!   and tries again (up to `PATIENCE` rounds), so batching loses no more
//!   than sending one by one; a call sent alone that the buffer refused is
//!   handed to the thread for the same patience;
//! - `stop` (before a fork, on drop) sends what is queued and ends the thread,
//!   so a forked child inherits no thread and no queued call of its parent;
//! - if the thread cannot be started, calls are sent on the caller's thread.
//!
//! The one thing a queue adds: a process killed outright (SIGKILL) loses the
//! calls of the last `send_delay` with no trace, beside the call it was in.

use std::collections::VecDeque;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use egress_proto::{Call, StackFrame};

use crate::reason::DropReason;
use crate::state::State;

/// Calls waiting at most: far more than a worker makes in `send_delay`.
/// Past it a call is a counted drop rather than unbounded memory.
pub(crate) const QUEUE_MAX: usize = 1024;
/// Rounds of `send_delay` in a row in which a full socket buffer took
/// nothing that the thread waits through before it drops what is refused
/// (the collector has stopped reading, not just fallen behind).
const PATIENCE: u32 = 25;

/// A queued call. Its stack frames may still be shared with the capture
/// cache: they are copied into the call by the sender thread, not by the
/// audited call's thread.
pub(crate) struct Queued {
    pub call: Call,
    pub frames: Vec<Arc<StackFrame>>,
}

impl Queued {
    fn into_call(self) -> Call {
        let mut call = self.call;
        if !self.frames.is_empty() {
            call.stack = self.frames.iter().map(|f| StackFrame::clone(f)).collect();
        }
        call
    }
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    queue: Mutex<Queue>,
    path: PathBuf,
    /// `HookOptions::drops_report_interval`.
    every: Duration,
    /// `HookOptions::send_delay`: how long calls that come close together
    /// gather before they leave.
    delay: Duration,
}

#[derive(Default)]
struct Queue {
    calls: VecDeque<Queued>,
    sender: Option<JoinHandle<()>>,
    /// The sender thread is parked until the next call: the producer must
    /// wake it. Otherwise it wakes by itself after `delay`.
    idle: bool,
    /// Asks the sender thread to send what is queued and end.
    stop: bool,
    /// The thread could not be started: send on the caller's thread.
    no_thread: bool,
    /// When calls were last sent, by the thread or by a caller (`push`).
    last_round: Option<Instant>,
}

impl Queue {
    /// Whether calls were sent within the last `delay`.
    fn sent_within(&self, delay: Duration) -> bool {
        self.last_round.is_some_and(|at| at.elapsed() < delay)
    }

    /// Whether a call now would come alone: nothing waits, the thread is
    /// asleep or not started, and nothing was sent within `delay`.
    fn alone(&self, delay: Duration) -> bool {
        self.calls.is_empty() && (self.idle || self.sender.is_none()) && !self.sent_within(delay)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic was caught mid-send; the counters
    // are still the best account there is.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Outbox {
    pub fn new(worker_id: u64, path: PathBuf, every: Duration, delay: Duration) -> Self {
        Outbox {
            state: Mutex::new(State::new(worker_id)),
            queue: Mutex::new(Queue::default()),
            path,
            every,
            delay,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The state, once every queued call has been sent: what a synchronous
    /// operation works on, so that it sees (and orders after) them.
    pub fn drained(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        let calls = mem::take(&mut lock(&self.queue).calls);
        self.send_all(&mut state, calls, false);
        state
    }

    /// Sends one call now, on this thread, after those queued before it.
    pub fn send_now(&self, queued: Queued) {
        let mut state = self.drained();
        self.send_all(&mut state, VecDeque::from([queued]), false);
    }

    /// Queues a call for the sender thread (started on first use), or sends
    /// it on the caller's thread when it comes alone (`send_alone`).
    pub fn push(self: &Arc<Self>, queued: Queued) {
        let mut queue = lock(&self.queue);
        // While `stop` runs, a new thread would end at once: send here.
        if queue.no_thread || queue.stop {
            drop(queue);
            return self.send_now(queued);
        }
        if queue.calls.len() >= QUEUE_MAX {
            drop(queue);
            let database = queued.call.database;
            self.lock()
                .count_call_drop(database, DropReason::BufferFull);
            return;
        }
        if queue.alone(self.delay) {
            // Set first: a call of another thread that comes meanwhile is
            // queued, not sent beside this one.
            queue.last_round = Some(Instant::now());
            drop(queue);
            return self.send_alone(queued);
        }
        queue.calls.push_back(queued);
        self.wake(queue);
    }

    /// Sends a call that came alone on the caller's thread. When calls come
    /// milliseconds apart, as an Odoo worker's do, waking the sender thread
    /// for each costs the host several times what the send costs (docs/
    /// PERFORMANCE-python.md, "The sender thread's wake-ups"); the caller
    /// pays the `sendto` instead. A call that a full socket buffer refused
    /// goes to the thread, which tries again with its patience.
    fn send_alone(self: &Arc<Self>, queued: Queued) {
        let mut state = self.drained();
        let unsent = self.send_all(&mut state, VecDeque::from([queued]), true);
        if unsent.is_empty() {
            return;
        }
        // In front of what came meanwhile, before the state lock is released:
        // nothing is ever in flight outside the queue and the state.
        let mut queue = lock(&self.queue);
        for call in unsent.into_iter().rev() {
            queue.calls.push_front(call);
        }
        drop(state);
        self.wake(queue);
    }

    /// Gets the queued calls sent: starts the sender thread if there is
    /// none and wakes it if it sleeps; where no thread can run, sends them
    /// here.
    fn wake(self: &Arc<Self>, mut queue: MutexGuard<'_, Queue>) {
        if queue.no_thread || queue.stop {
            drop(queue);
            drop(self.drained());
            return;
        }
        if queue.sender.is_none() {
            let outbox = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("egress-hook-sender".into())
                .spawn(move || outbox.run());
            match spawned {
                Ok(handle) => {
                    queue.sender = Some(handle);
                    queue.idle = false;
                }
                Err(_) => {
                    queue.no_thread = true;
                    drop(queue);
                    drop(self.drained());
                }
            }
            return;
        }
        if queue.idle {
            queue.idle = false;
            let sender = queue.sender.as_ref().map(|s| s.thread().clone());
            // Woken after the lock is released: woken under it, the thread
            // would find it held and sleep again at once.
            drop(queue);
            if let Some(sender) = sender {
                sender.unpark();
            }
        }
    }

    /// Sends what is queued and ends the sender thread; the next `push`
    /// starts a new one. Called before a fork, so that the child inherits no
    /// thread (and no queued call), and on drop.
    pub fn stop(&self) {
        let sender = {
            let mut queue = lock(&self.queue);
            queue.stop = true;
            queue.sender.take()
        };
        if let Some(sender) = sender {
            sender.thread().unpark();
            let _ = sender.join();
        }
        let mut state = self.drained();
        let calls = {
            let mut queue = lock(&self.queue);
            queue.stop = false;
            // Whatever raced in between.
            mem::take(&mut queue.calls)
        };
        self.send_all(&mut state, calls, false);
    }

    /// Sends `calls` in order. A patient send stops at the first call a full
    /// buffer refused and returns it with the rest, unsent and uncounted.
    fn send_all(
        &self,
        state: &mut State,
        mut calls: VecDeque<Queued>,
        patient: bool,
    ) -> VecDeque<Queued> {
        while let Some(queued) = calls.pop_front() {
            let call = queued.into_call();
            // Kept for the panic path only, so that even that loss is counted.
            let database = call.database.clone();
            let sent = catch_unwind(AssertUnwindSafe(|| {
                state.send_call(call, &self.path, self.every, patient)
            }));
            match sent {
                Ok(None) => {}
                Ok(Some(refused)) => {
                    calls.push_front(Queued {
                        call: refused,
                        frames: Vec::new(),
                    });
                    break;
                }
                Err(_) => state.count_call_drop(database, DropReason::SendError),
            }
        }
        calls
    }

    /// The sender thread: it sends the calls that came close together (one
    /// that comes alone is sent by its caller, `push`). Calls within
    /// `delay` of the last round gather for `delay` and leave together, as
    /// does what a full socket buffer refused; when a round leaves the queue
    /// empty, the thread sleeps until a call needs it. A thread that always
    /// waited `delay` for company, then `delay` again to find the queue
    /// empty, woke three times for each of an Odoo worker's scattered calls.
    fn run(&self) {
        let mut refusals = 0;
        let ran = catch_unwind(AssertUnwindSafe(|| loop {
            loop {
                let wait = {
                    let queue = lock(&self.queue);
                    !queue.stop && queue.sent_within(self.delay)
                };
                if wait {
                    thread::park_timeout(self.delay);
                }
                let stop = {
                    let mut state = self.lock();
                    let (calls, stop) = {
                        let mut queue = lock(&self.queue);
                        if !queue.calls.is_empty() {
                            queue.last_round = Some(Instant::now());
                        }
                        (mem::take(&mut queue.calls), queue.stop)
                    };
                    let before = calls.len();
                    let patient = !stop && refusals < PATIENCE;
                    let mut unsent = self.send_all(&mut state, calls, patient);
                    refusals = if before > 0 && unsent.len() == before {
                        refusals + 1
                    } else {
                        0
                    };
                    if !unsent.is_empty() {
                        // Back in front of what came meanwhile, before the
                        // state lock is released: nothing is ever in flight
                        // outside the queue and the state.
                        let mut queue = lock(&self.queue);
                        unsent.append(&mut queue.calls);
                        queue.calls = unsent;
                    }
                    stop
                };
                if stop {
                    return;
                }
                let mut queue = lock(&self.queue);
                if queue.calls.is_empty() {
                    queue.idle = true;
                    break;
                }
            }
            // A spurious wake-up only costs an empty round.
            thread::park();
        }));
        if ran.is_err() {
            // Not reachable short of a bug; from now on the callers send.
            lock(&self.queue).no_thread = true;
        }
    }
}
