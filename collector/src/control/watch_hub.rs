//! Fan-out of committed rows to `watch` subscribers. A bounded broadcast: a
//! subscriber that falls behind is told how many rows it missed, and never
//! slows the appenders.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::pipeline::stage::ChainedRow;

/// Rows one appender committed in one transaction.
#[derive(Debug)]
pub struct Committed {
    pub database: String,
    pub rows: Vec<ChainedRow>,
}

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<Arc<Committed>>,
}

impl WatchHub {
    pub fn new(capacity: usize) -> Self {
        WatchHub {
            sender: broadcast::channel(capacity).0,
        }
    }

    pub fn publish(&self, committed: Committed) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(committed));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.sender.subscribe()
    }
}
