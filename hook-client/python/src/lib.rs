//! egress_hook._native: `egress_hook::HookClient` for Python, which never
//! raises into its caller.
//!
//! Layout:
//! - `Client`: the Python class; one per process, shared by its threads. The
//!   Rust client under it notices a fork by its pid and starts a new worker;
//!   `queue_call` sends a lone call at once and hands calls that come close
//!   together to its sender thread, which `stop_sender` ends before a fork
//!   (the Python side registers that).
//! - `read_call`: a `send_call` tuple as a `Call`.
//! - `stack`: `capture_stack`, the caller's frames as a `Stack`, cached per
//!   call site, which `read_call` takes as it is.
//! - `Fields`: lenient reading of the tuples the Python side passes (one per
//!   message, in wire order), so a wrong type costs a field, not the event.
//! - `ERRORS`: everything swallowed here (a bad argument, a panic), counted
//!   so that the Python side can report it.
//!
//! The GIL is held while sending: the send never blocks, and holding it means
//! no other Python thread is inside the client when `os.fork()` runs.

mod stack;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use egress_hook::{
    Call, CapturedBody, ConfigChange, Hello, HookClient, HookOptions, StackFrame, Trigger,
};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::stack::Stack;

/// Errors swallowed by this module since it was loaded (all clients).
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// Runs `f`; a panic or an error becomes `fallback` and one more counted error.
fn shielded<R>(fallback: R, f: impl FnOnce() -> Option<R>) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Some(value)) => value,
        _ => {
            ERRORS.fetch_add(1, Ordering::Relaxed);
            fallback
        }
    }
}

/// Reads the items of a tuple in order. A missing item or one of the wrong
/// type reads as the default value and marks the read as `lossy`.
struct Fields<'a, 'py> {
    tuple: &'a Bound<'py, PyTuple>,
    next: usize,
    lossy: bool,
    /// The frames of a `Stack`, shared with the capture cache.
    frames: Vec<Arc<StackFrame>>,
}

impl<'a, 'py> Fields<'a, 'py> {
    fn new(tuple: &'a Bound<'py, PyTuple>) -> Self {
        Fields {
            tuple,
            next: 0,
            lossy: false,
            frames: Vec::new(),
        }
    }

    fn item(&mut self) -> Option<Bound<'py, PyAny>> {
        let item = self.tuple.get_item(self.next).ok();
        self.next += 1;
        if item.is_none() {
            self.lossy = true;
        }
        item
    }

    fn get<T: FromPyObjectOwned<'py> + Default>(&mut self) -> T {
        match self.item().and_then(|item| item.extract::<T>().ok()) {
            Some(value) => value,
            None => {
                self.lossy = true;
                T::default()
            }
        }
    }

    /// `None` reads as `None`; anything else must be a `T`.
    fn opt<T: FromPyObjectOwned<'py>>(&mut self) -> Option<T> {
        let item = self.item()?;
        if item.is_none() {
            return None;
        }
        let value = item.extract::<T>().ok();
        if value.is_none() {
            self.lossy = true;
        }
        value
    }

    fn strings(&mut self) -> Vec<String> {
        let Some(item) = self.item() else {
            return Vec::new();
        };
        let Ok(iter) = item.try_iter() else {
            self.lossy = true;
            return Vec::new();
        };
        iter.filter_map(|entry| entry.ok()?.extract::<String>().ok())
            .collect()
    }

    fn digest(&mut self) -> Option<[u8; 32]> {
        let item = self.item()?;
        if item.is_none() {
            return None;
        }
        let digest = item
            .cast::<PyBytes>()
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_bytes()).ok());
        if digest.is_none() {
            self.lossy = true;
        }
        digest
    }

    /// A sequence of `(file, function, line)` tuples, innermost first; a
    /// `Stack` from `capture_stack` is kept aside in `frames` instead, to be
    /// copied into the call off the caller's thread.
    fn stack(&mut self) -> Vec<StackFrame> {
        let Some(item) = self.item() else {
            return Vec::new();
        };
        if let Ok(stack) = item.cast::<Stack>() {
            self.frames.clone_from(&stack.get().frames);
            return Vec::new();
        }
        let Ok(iter) = item.try_iter() else {
            self.lossy = true;
            return Vec::new();
        };
        iter.filter_map(|frame| {
            let (file, function, line) = frame.ok()?.extract::<(String, String, u32)>().ok()?;
            Some(StackFrame {
                file,
                function,
                line,
            })
        })
        .collect()
    }
}

/// The `Call` of a `send_call` tuple, and the shared frames of its `Stack`
/// if it has one (else `call.stack`); `None` if it is no tuple.
fn read_call(fields: &Bound<'_, PyAny>) -> Option<(Call, Vec<Arc<StackFrame>>)> {
    let tuple = fields.cast::<PyTuple>().ok()?;
    let mut f = Fields::new(tuple);
    let call = Call {
        worker_id: 0,
        seq: 0,
        database: f.get(),
        started_at_us: f.get(),
        duration_us: f.get(),
        channel: f.get(),
        protocol: f.get(),
        direction: f.get(),
        method: f.get(),
        host: f.get(),
        port: f.get(),
        path: f.get(),
        query_keys: f.strings(),
        header_names: f.strings(),
        src_ip: f.get(),
        src_port: f.get(),
        dst_ip: f.get(),
        dst_port: f.get(),
        tls: f.get(),
        status: f.opt(),
        error_class: f.get(),
        bytes_out: f.get(),
        bytes_in: f.get(),
        payload_sha256: f.digest(),
        stack: f.stack(),
        trigger: Trigger {
            kind: f.get(),
            name: f.get(),
            uid: f.opt(),
        },
    };
    // A field that did not read is still worth an event, but counted.
    if f.lossy {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    Some((call, f.frames))
}

/// A fire-and-forget sender to the collector's datagram socket.
///
/// Every method returns promptly and never raises: what cannot be sent is
/// counted and reported later in a `Drops` message, and what goes wrong in
/// here is counted by `errors()`.
#[pyclass(frozen, weakref, module = "egress_hook._native")]
struct Client {
    inner: HookClient,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (socket_path, hook_version = String::new()))]
    fn new(socket_path: String, hook_version: String) -> Self {
        let mut options = HookOptions {
            hook_mode: "native".into(),
            ..HookOptions::default()
        };
        if !hook_version.is_empty() {
            options.hook_version = hook_version;
        }
        Client {
            inner: HookClient::with_options(socket_path, options),
        }
    }

    /// `fields`: the `Call` fields after `worker_id` and `seq`, in wire
    /// order, with `stack` as `(file, function, line)` tuples and the trigger
    /// flattened into `kind, name, uid`. Sent now, after any queued calls.
    fn send_call(&self, fields: &Bound<'_, PyAny>) {
        shielded((), || {
            let (mut call, frames) = read_call(fields)?;
            if !frames.is_empty() {
                call.stack = frames.iter().map(|f| StackFrame::clone(f)).collect();
            }
            self.inner.send_call(call);
            Some(())
        })
    }

    /// `send_call`, then the bodies forensic capture copied from the call,
    /// naming its sequence number: `bodies` is a list of `(part, total_len,
    /// truncated, sha256, data)` tuples (`egress_hook::HookClient::
    /// send_call_with_bodies`). Called off the audited call's thread.
    fn send_call_forensic(&self, fields: &Bound<'_, PyAny>, bodies: &Bound<'_, PyAny>) {
        shielded((), || {
            let (mut call, frames) = read_call(fields)?;
            if !frames.is_empty() {
                call.stack = frames.iter().map(|f| StackFrame::clone(f)).collect();
            }
            let mut captured = Vec::new();
            for item in bodies.try_iter().ok()? {
                let (part, total_len, truncated, sha256, data): (
                    String,
                    u64,
                    bool,
                    Bound<'_, PyBytes>,
                    Bound<'_, PyBytes>,
                ) = item.ok()?.extract().ok()?;
                captured.push(CapturedBody {
                    part,
                    total_len,
                    truncated,
                    sha256: <[u8; 32]>::try_from(sha256.as_bytes()).ok()?,
                    data: data.as_bytes().to_vec(),
                });
            }
            self.inner.send_call_with_bodies(call, captured);
            Some(())
        })
    }

    /// `send_call` for the audited call's own thread: a call that comes
    /// alone is sent here at once; calls that come close together are
    /// queued, and a sender thread sends them within milliseconds, batched
    /// (`egress_hook::HookClient::queue_call`).
    fn queue_call(&self, fields: &Bound<'_, PyAny>) {
        shielded((), || {
            let (call, frames) = read_call(fields)?;
            self.inner.queue_call_with_frames(call, frames);
            Some(())
        })
    }

    /// Sends the queued calls now.
    fn flush(&self) {
        shielded((), || {
            self.inner.flush();
            Some(())
        })
    }

    /// Sends the queued calls and ends the sender thread, so that a fork
    /// happens in a process without it (`os.register_at_fork(before=...)`).
    fn stop_sender(&self) {
        shielded((), || {
            self.inner.stop_sender();
            Some(())
        })
    }

    /// `fields`: `(odoo_version, python_version, addons_paths, databases)`;
    /// the client fills in the rest.
    fn send_hello(&self, fields: &Bound<'_, PyAny>) {
        shielded((), || {
            let tuple = fields.cast::<PyTuple>().ok()?;
            let mut f = Fields::new(tuple);
            let hello = Hello {
                odoo_version: f.get(),
                python_version: f.get(),
                addons_paths: f.strings(),
                databases: f.strings(),
                ..Hello::default()
            };
            self.inner.send_hello(hello);
            Some(())
        })
    }

    /// `fields`: the `ConfigChange` fields after `worker_id`, in wire order.
    fn send_config_change(&self, fields: &Bound<'_, PyAny>) {
        shielded((), || {
            let tuple = fields.cast::<PyTuple>().ok()?;
            let mut f = Fields::new(tuple);
            let change = ConfigChange {
                worker_id: 0,
                database: f.get(),
                changed_at_us: f.get(),
                key: f.get(),
                old_value: f.opt(),
                new_value: f.opt(),
                user_login: f.get(),
                uid: f.opt(),
            };
            self.inner.send_config_change(change);
            Some(())
        })
    }

    /// Sends a `Drops` report now; whether the kernel accepted all of it.
    fn report_drops(&self) -> bool {
        shielded(false, || Some(self.inner.report_drops()))
    }

    /// The current worker's id (a forked child gets a new one).
    fn worker_id(&self) -> u64 {
        shielded(0, || Some(self.inner.worker_id()))
    }

    /// What this worker sent and lost, as a dict (empty if it failed).
    fn stats<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        let dict = PyDict::new(py);
        shielded((), || {
            let s = self.inner.stats();
            dict.set_item("sent", s.sent).ok()?;
            dict.set_item("dropped", s.dropped).ok()?;
            dict.set_item("dropped_by_reason", s.dropped_by_reason)
                .ok()?;
            dict.set_item("pending_drops", s.pending_drops).ok()?;
            dict.set_item("other_sent", s.other_sent).ok()?;
            dict.set_item("other_dropped", s.other_dropped).ok()?;
            dict.set_item("reports_sent", s.reports_sent).ok()?;
            Some(())
        });
        dict
    }

    #[getter]
    fn socket_path(&self) -> String {
        self.inner.socket_path().display().to_string()
    }
}

/// Errors swallowed by the native module since it was loaded.
#[pyfunction]
fn errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_function(wrap_pyfunction!(errors, m)?)?;
    m.add_class::<Stack>()?;
    m.add_function(wrap_pyfunction!(stack::capture_stack, m)?)?;
    m.add("MAX_DATAGRAM_SIZE", egress_hook::MAX_DATAGRAM_SIZE)?;
    m.add("DEFAULT_SOCKET_PATH", egress_hook::DEFAULT_SOCKET_PATH)?;
    Ok(())
}
