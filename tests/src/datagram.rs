//! A raw datagram sender for frames the test builds itself, well-formed or
//! not. The receive queue is short, so a full queue is waited out, never
//! dropped: the test must know exactly what it delivered.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct DatagramSender {
    socket: UnixDatagram,
    target: PathBuf,
    /// Datagrams delivered so far.
    pub sent: u64,
}

impl DatagramSender {
    pub fn new(target: &Path) -> DatagramSender {
        let socket = UnixDatagram::unbound().expect("a datagram socket");
        socket.set_nonblocking(true).expect("non-blocking");
        DatagramSender {
            socket,
            target: target.to_path_buf(),
            sent: 0,
        }
    }

    /// Sends one datagram, retrying while the receiver's queue is full
    /// (EAGAIN / ENOBUFS), for at most 30 s.
    pub fn send(&mut self, bytes: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.socket.send_to(bytes, &self.target) {
                Ok(n) => {
                    assert_eq!(n, bytes.len(), "short datagram send");
                    self.sent += 1;
                    return;
                }
                Err(e)
                    if (e.kind() == ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!(
                    "sending a {}-byte datagram to {}: {e}",
                    bytes.len(),
                    self.target.display()
                ),
            }
        }
    }
}
