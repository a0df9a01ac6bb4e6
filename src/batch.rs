//! A batch as every layer sees it: its sequence number and the orders its
//! request carries. The planner numbers batches, the ledger stores and
//! reads them, the vendor's wire format sends them; none of them needs
//! another for these types.

use std::fmt;

/// A batch's place in its campaign: numbers start at 1 and never repeat
/// (a campaign's later ingests go on from its highest number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchSeq(u32);

impl BatchSeq {
    /// The first number of a campaign.
    pub const FIRST: BatchSeq = BatchSeq(1);

    /// `None` for 0 and for numbers beyond `u32`: never a batch's.
    pub fn new(seq: i64) -> Option<BatchSeq> {
        u32::try_from(seq).ok().filter(|s| *s > 0).map(BatchSeq)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The number after this one.
    pub fn next(self) -> BatchSeq {
        BatchSeq(self.0 + 1)
    }
}

impl From<BatchSeq> for i64 {
    fn from(seq: BatchSeq) -> i64 {
        i64::from(seq.0)
    }
}

impl std::str::FromStr for BatchSeq {
    type Err = String;

    /// `"7"`; not 0, not negative, not text.
    fn from_str(raw: &str) -> Result<BatchSeq, String> {
        raw.trim()
            .parse::<u32>()
            .ok()
            .and_then(|seq| BatchSeq::new(i64::from(seq)))
            .ok_or_else(|| format!("{raw:?} is not a batch number (1, 2, 3, …)"))
    }
}

impl fmt::Display for BatchSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One order as its batch's request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOrder {
    pub order_id: String,
    /// NXLink's `userPhone`: country code and national number, digits only.
    pub phone: String,
    /// The `other` JSON; empty when the job packs no column into it.
    pub other: String,
}
