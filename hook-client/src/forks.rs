//! Counting forks without a system call per event.
//!
//! A `HookClient` must notice that it runs in a forked child (the child is a
//! new worker). Comparing `getpid()` on every event costs a system call in
//! the audited call's path; instead a `pthread_atfork` child handler bumps a
//! counter, and the client compares one atomic load. Every `fork()` through
//! the C library runs the handler (Python's `os.fork` and `multiprocessing`
//! included); a child made by `vfork`/`posix_spawn` does not, but it runs no
//! code of ours before it `exec`s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Forks this process image has been through: 0 in the first process, one
/// more in each child of a fork.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// Whether the child handler is registered (at the first call).
static REGISTERED: OnceLock<bool> = OnceLock::new();

extern "C" fn count_fork_in_child() {
    // Only an atomic store: the child of a multi-threaded parent may do
    // nothing else here.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The number of forks so far, or `None` if the handler could not be
/// registered (then only the pid tells a child from its parent).
pub(crate) fn generation() -> Option<u64> {
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: registers a handler that only touches an atomic; no
        // prepare or parent handler.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) == 0 }
    });
    registered.then(|| FORKS.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_counts_one_more_fork() {
        let before = generation().expect("pthread_atfork registers");
        // SAFETY: the child only reads an atomic and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if generation() == Some(before + 1) {
                0
            } else {
                1
            };
            // SAFETY: leaves the child at once, running no destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(
            generation(),
            Some(before),
            "the parent's count is unchanged"
        );
    }
}
