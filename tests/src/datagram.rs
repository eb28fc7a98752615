//! A raw datagram sender for frames the test builds itself, well-formed or
//! not. The receive queue is short, so a full queue is waited out, never
//! dropped: the test must know exactly what it delivered.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egress_proto::{encode, Call, Message};

/// A framed `Call` from `worker_id` with `seq` for `database`: an HTTPS
/// call to api.example.com, the least a call needs.
pub fn call_frame(database: &str, worker_id: u64, seq: u64) -> Vec<u8> {
    encode(&Message::Call(Call {
        worker_id,
        seq,
        database: database.into(),
        channel: "http".into(),
        host: "api.example.com".into(),
        port: 443,
        ..Call::default()
    }))
    .expect("a call frame")
}

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
