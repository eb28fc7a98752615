//! Why an event was dropped, as reported in `Drops` and journaled in gap entries.

use std::io;

/// The hook-side drop reasons of docs/JOURNAL_FORMAT.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// No socket at the path, or a stale socket file nobody listens on:
    /// the collector is down or restarting.
    SocketMissing,
    /// The collector's receive queue or our send buffer is full.
    BufferFull,
    /// The event does not fit in one datagram, even truncated.
    TooLarge,
    /// The socket's mode or group keeps this worker out.
    PermissionDenied,
    /// Anything else, including failing to create the socket at all.
    SendError,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::SocketMissing,
        DropReason::BufferFull,
        DropReason::TooLarge,
        DropReason::PermissionDenied,
        DropReason::SendError,
    ];

    /// The stable label carried in `DropCount::reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::SocketMissing => "socket_missing",
            DropReason::BufferFull => "buffer_full",
            DropReason::TooLarge => "too_large",
            DropReason::PermissionDenied => "permission_denied",
            DropReason::SendError => "send_error",
        }
    }

    pub fn from_io(error: &io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => DropReason::SocketMissing,
            // EWOULDBLOCK is EAGAIN on Linux; both are listed for other unixes.
            #[allow(unreachable_patterns)]
            Some(libc::EAGAIN) | Some(libc::EWOULDBLOCK) | Some(libc::ENOBUFS) => {
                DropReason::BufferFull
            }
            Some(libc::EMSGSIZE) => DropReason::TooLarge,
            Some(libc::EACCES) | Some(libc::EPERM) => DropReason::PermissionDenied,
            _ => DropReason::SendError,
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_errno_to_reason() {
        let cases = [
            (libc::ENOENT, "socket_missing"),
            (libc::ECONNREFUSED, "socket_missing"),
            (libc::EAGAIN, "buffer_full"),
            (libc::ENOBUFS, "buffer_full"),
            (libc::EMSGSIZE, "too_large"),
            (libc::EACCES, "permission_denied"),
            (libc::EPERM, "permission_denied"),
            (libc::EIO, "send_error"),
        ];
        for (errno, label) in cases {
            let reason = DropReason::from_io(&io::Error::from_raw_os_error(errno));
            assert_eq!(reason.as_str(), label, "errno {errno}");
        }
        let not_os = io::Error::new(io::ErrorKind::InvalidInput, "path too long");
        assert_eq!(DropReason::from_io(&not_os), DropReason::SendError);
    }
}
