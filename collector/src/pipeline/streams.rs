//! A worker numbers its calls per database it names (`Call.seq`), and the
//! chain accounts each number exactly once per (worker, database). A call
//! that names no database goes to `database.default_db`: numbered in the
//! worker's stream for "no database", it would land in the same account as
//! the calls that name the default database, and the second of two equal
//! numbers would be refused as a duplicate: a worker's calls without
//! context (a thread an addon started) would vanish behind its requests'.
//! So everything that named no database is accounted under a stream id of
//! its own, derived from the worker's: the worker id with its top bit
//! flipped. The journal shows it as the row's worker id; the worker's
//! `Hello` is found through either id.

/// The bit that tells a worker's stream for calls that named no database
/// from its stream for the default database.
const UNNAMED_DATABASE_BIT: u64 = 1 << 63;

/// The stream id of a worker's calls that named no database.
pub fn unnamed_database_stream(worker_id: u64) -> u64 {
    worker_id ^ UNNAMED_DATABASE_BIT
}

/// The ids a stream's worker may have announced itself (`Hello`) under: the
/// stream's own, then the other of the pair. Worker ids are random, so the
/// pair belongs to one worker.
pub fn announcing_workers(stream_id: u64) -> [u64; 2] {
    [stream_id, stream_id ^ UNNAMED_DATABASE_BIT]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unnamed_stream_is_another_id_of_the_same_pair() {
        let worker = 0x1234_5678_9abc_def0;
        let stream = unnamed_database_stream(worker);
        assert_ne!(stream, worker);
        assert_eq!(unnamed_database_stream(stream), worker);
        assert_eq!(announcing_workers(stream), [stream, worker]);
        assert_eq!(announcing_workers(worker), [worker, stream]);
    }
}
