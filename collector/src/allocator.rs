//! The service's allocator setting. The allocator itself, mimalloc, is
//! chosen in main.rs.

use std::ffi::{c_int, c_long};

// Links mimalloc's C library into this crate's own tests too.
extern crate mimalloc;

extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e`
/// (include/mimalloc.h): how long freed memory is kept before it goes back
/// to the kernel, in milliseconds; -1 means never. The crate declares no
/// constant for it, so a test checks this index against mimalloc's default
/// for that option (1000 ms).
const PURGE_DELAY: c_int = 15;

/// Keeps the memory the service frees instead of returning it to the kernel
/// and faulting it back in at the next burst. At tens of thousands of events
/// a second that cost 0.05-0.09 page faults and 2-3 µs of CPU per event
/// (docs/CONFIGURATION.md). The resident size then stays at its peak, which
/// the stages' bounds keep under 200 MiB. `MIMALLOC_PURGE_DELAY` in the
/// environment still decides where it is set.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's documented option setter, called with an option
        // index the test below ties to this mimalloc.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_15_is_mimallocs_purge_delay() {
        // Nothing in this test process sets it: mimalloc's default for the
        // purge delay, or the environment's value.
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1000);
        // SAFETY: reads an option.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, expected);
    }
}
