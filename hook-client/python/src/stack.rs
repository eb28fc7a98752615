//! Stack capture in Rust: the caller's frames, innermost first, without the
//! interceptor's own, as a `Stack` the native `Client` reads without any
//! conversion. Same frames as the pure-Python `capture_stack` (interceptor
//! `_core.py`), at a fraction of its cost.
//!
//! A frame is looked up by (code object, instruction offset) in a cache
//! that holds the formatted `StackFrame` (file, function, line): the same
//! call sites recur, and a line number costs a scan of the code's line
//! table. Entries hold their code object, so an address cannot be reused
//! by another function while its entry exists. Everything here runs with
//! the GIL held, which is also what makes the cache's lock uncontended.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::raw::c_int;
use std::sync::{Arc, LazyLock, Mutex};

use egress_hook::StackFrame;
use pyo3::exceptions::PyIndexError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice, PyString};

/// Entries at most; the cache is cleared when full (as `_core._frames`).
const CACHE_MAX: usize = 8192;
/// Frames kept at most, whatever the caller asks (as `Settings`).
const DEPTH_MAX: usize = 64;

type FrameFn = unsafe extern "C" fn(*mut ffi::PyFrameObject) -> *mut ffi::PyFrameObject;
type LastiFn = unsafe extern "C" fn(*mut ffi::PyFrameObject) -> c_int;

/// `PyFrame_GetBack` (3.9+) and `PyFrame_GetLasti` (3.11+) are public but
/// outside the limited API this abi3 module is built against: looked up at
/// run time, with attribute access (`f_back`, `f_lasti`) where absent.
struct Api {
    back: Option<FrameFn>,
    lasti: Option<LastiFn>,
}

static API: LazyLock<Api> = LazyLock::new(|| {
    // SAFETY: dlsym on the running process for symbols of libpython whose
    // signatures are as declared above in every version that has them.
    unsafe {
        let back = libc::dlsym(libc::RTLD_DEFAULT, c"PyFrame_GetBack".as_ptr());
        let lasti = libc::dlsym(libc::RTLD_DEFAULT, c"PyFrame_GetLasti".as_ptr());
        Api {
            back: (!back.is_null())
                .then(|| std::mem::transmute::<*mut libc::c_void, FrameFn>(back)),
            lasti: (!lasti.is_null())
                .then(|| std::mem::transmute::<*mut libc::c_void, LastiFn>(lasti)),
        }
    }
});

/// A fast hash for (address, offset) keys; no untrusted input reaches it.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
}

struct Entry {
    /// Keeps the key's code object alive.
    _code: Py<PyAny>,
    /// `None`: a frame of the interceptor itself, left out.
    frame: Option<Arc<StackFrame>>,
}

#[derive(Default)]
struct Cache {
    /// The `skip` prefix the entries were described with (in practice one
    /// per process): another empties the cache.
    skip: String,
    entries: HashMap<(usize, i32), Entry, BuildHasherDefault<KeyHasher>>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(Cache::default()));

/// Frames of a call, innermost first. A read-only sequence of
/// `(file, function, line)` tuples for Python code; the native `Client`
/// takes the frames as they are.
#[pyclass(frozen, sequence, module = "egress_hook._native")]
pub struct Stack {
    pub frames: Vec<Arc<StackFrame>>,
}

#[pymethods]
impl Stack {
    fn __len__(&self) -> usize {
        self.frames.len()
    }

    /// A frame as `(file, function, line)`, or a list of them for a slice.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tuple = |frame: &StackFrame| {
            (frame.file.as_str(), frame.function.as_str(), frame.line).into_pyobject(py)
        };
        if let Ok(slice) = index.cast::<PySlice>() {
            let range = slice.indices(self.frames.len() as isize)?;
            let mut out = Vec::with_capacity(range.slicelength);
            let mut at = range.start;
            for _ in 0..range.slicelength {
                out.push(tuple(&self.frames[at as usize])?);
                at += range.step;
            }
            return Ok(PyList::new(py, out)?.into_any());
        }
        let index: isize = index.extract()?;
        let len = self.frames.len() as isize;
        let at = if index < 0 { index + len } else { index };
        if !(0..len).contains(&at) {
            return Err(PyIndexError::new_err("stack index out of range"));
        }
        Ok(tuple(&self.frames[at as usize])?.into_any())
    }
}

/// The caller's frames, innermost first, at most `depth`, leaving out those
/// whose file starts with `skip` (the interceptor's own directory). Never
/// raises: a frame that cannot be read ends the stack there.
#[pyfunction]
pub fn capture_stack(py: Python<'_>, depth: usize, skip: &str) -> Stack {
    let depth = depth.min(DEPTH_MAX);
    let mut frames = Vec::with_capacity(depth);
    if depth == 0 {
        return Stack { frames };
    }
    let api = &*API;
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.skip != skip {
        cache.entries.clear();
        skip.clone_into(&mut cache.skip);
    }
    let entries = &mut cache.entries;
    // SAFETY: with the GIL held, the current frame is alive for the length
    // of this call; it is borrowed, and we take our own reference.
    let mut frame: Option<Bound<'_, PyAny>> = unsafe {
        let current = ffi::PyEval_GetFrame();
        Bound::from_borrowed_ptr_or_opt(py, current.cast())
    };
    while let Some(current) = frame {
        let raw = current.as_ptr().cast::<ffi::PyFrameObject>();
        // SAFETY: `raw` is a live frame object (we hold a reference).
        let code = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyFrame_GetCode(raw).cast()) };
        let Some(code) = code else { break };
        let lasti = match api.lasti {
            // SAFETY: as above.
            Some(lasti) => unsafe { lasti(raw) },
            None => current
                .getattr(pyo3::intern!(py, "f_lasti"))
                .and_then(|v| v.extract::<i32>())
                .unwrap_or(-1),
        };
        let key = (code.as_ptr() as usize, lasti);
        let entry = match entries.get(&key) {
            Some(entry) => entry.frame.clone(),
            None => {
                let made = describe(py, &code, raw, skip);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
                entries.insert(
                    key,
                    Entry {
                        _code: code.unbind(),
                        frame: made.clone(),
                    },
                );
                made
            }
        };
        if let Some(entry) = entry {
            frames.push(entry);
            if frames.len() >= depth {
                break;
            }
        }
        frame = match api.back {
            // SAFETY: as above; PyFrame_GetBack returns a new reference or NULL.
            Some(back) => unsafe { Bound::from_owned_ptr_or_opt(py, back(raw).cast()) },
            None => current
                .getattr(pyo3::intern!(py, "f_back"))
                .ok()
                .filter(|back| !back.is_none()),
        };
    }
    Stack { frames }
}

/// The frame as the stack shows it, or `None` for one of ours.
fn describe(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    raw: *mut ffi::PyFrameObject,
    skip: &str,
) -> Option<Arc<StackFrame>> {
    // As the pure-Python encoder: what UTF-8 cannot carry (a lone surrogate
    // from an undecodable file name) becomes "?".
    let text = |name: &Bound<'_, PyString>| {
        code.getattr(name)
            .and_then(|v| v.call_method1(pyo3::intern!(py, "encode"), ("utf-8", "replace")))
            .ok()
            .and_then(|v| {
                v.cast::<PyBytes>()
                    .ok()
                    .map(|b| String::from_utf8_lossy(b.as_bytes()).into_owned())
            })
            .unwrap_or_default()
    };
    let file = text(pyo3::intern!(py, "co_filename"));
    if !skip.is_empty() && file.starts_with(skip) {
        return None;
    }
    let function = text(pyo3::intern!(py, "co_name"));
    // SAFETY: `raw` is a live frame object.
    let line = unsafe { ffi::PyFrame_GetLineNumber(raw) };
    Some(Arc::new(StackFrame {
        file,
        function,
        line: u32::try_from(line).unwrap_or(0),
    }))
}
