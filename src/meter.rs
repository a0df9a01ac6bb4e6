//! How far reading a contact file has got: counters that ingest advances
//! and the progress bars read, from another thread.
//!
//! They are only ever shown, never relied on: relaxed atomics are enough.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The reading of one contact file.
#[derive(Debug, Default)]
pub struct Reading {
    /// Where reading started, in bytes of (decompressed) data.
    start: AtomicU64,
    /// The end of what may be read, in the same bytes; 0 before opening.
    end: AtomicU64,
    /// Where reading has got to.
    at: AtomicU64,
    rows: AtomicU64,
    /// Orders planned into batches, ready to send.
    planned: AtomicU64,
    done: AtomicBool,
}

/// A moment of a [`Reading`], as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Bytes read of those there are to read in this run.
    pub bytes: u64,
    pub bytes_total: u64,
    pub rows: u64,
    pub planned: u64,
    pub done: bool,
}

impl Reading {
    /// Reading starts at byte `start` of data that ends at `end`.
    pub fn opened(&self, start: u64, end: u64) {
        self.start.store(start, Relaxed);
        self.at.store(start, Relaxed);
        self.end.store(end, Relaxed);
    }

    /// Rows up to byte `at` are in the ledger.
    pub fn advanced(&self, at: u64, rows: u64) {
        self.at.store(at, Relaxed);
        self.rows.fetch_add(rows, Relaxed);
    }

    pub fn planned(&self, orders: u64) {
        self.planned.fetch_add(orders, Relaxed);
    }

    pub fn finished(&self) {
        self.done.store(true, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let start = self.start.load(Relaxed);
        let end = self.end.load(Relaxed);
        Snapshot {
            bytes: self.at.load(Relaxed).saturating_sub(start),
            bytes_total: end.saturating_sub(start),
            rows: self.rows.load(Relaxed),
            planned: self.planned.load(Relaxed),
            done: self.done.load(Relaxed),
        }
    }
}
