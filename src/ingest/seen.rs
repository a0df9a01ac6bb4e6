//! Which keys the rows read so far had, in fixed memory: a Bloom filter.
//!
//! It may answer "maybe seen" for a new key, but never "new" for a key it
//! was given, so a row whose keys it calls new repeats no earlier row and
//! needs no duplicate check. Planning then compares only the rows holding a
//! key it called "maybe seen" (about 1% of keys are wrongly so while it
//! holds at most [`SeenKeys::CAPACITY`] keys).

use std::hash::{DefaultHasher, Hash, Hasher};

/// Bits of the filter, as a power of two: 2^26 bits, 8 MiB.
const BITS_LOG2: u32 = 26;
/// Bits set per key.
const HASHES: u64 = 3;

#[derive(Debug, Clone)]
pub struct SeenKeys {
    bits: Box<[u64]>,
    keys: u64,
}

impl SeenKeys {
    /// Keys it holds while "maybe seen" stays rare (with three bits per
    /// key, twelve bits per key give about 1% of false "maybe").
    pub const CAPACITY: u64 = (1 << BITS_LOG2) / 12;

    pub fn new() -> SeenKeys {
        SeenKeys {
            bits: vec![0; 1 << (BITS_LOG2 - 6)].into_boxed_slice(),
            keys: 0,
        }
    }

    /// Adds a key of one kind (phone, order id, ...); true when it may have
    /// been added before, false when it surely was not.
    pub fn insert(&mut self, kind: u8, key: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        kind.hash(&mut hasher);
        key.hash(&mut hasher);
        let hash = hasher.finish();
        // Double hashing: bit i is h1 + i * h2 (h2 odd, so never stuck).
        let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        let mask = (1u64 << BITS_LOG2) - 1;
        let mut seen = true;
        for i in 0..HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & mask;
            let (word, flag) = ((bit >> 6) as usize, 1u64 << (bit & 63));
            seen &= self.bits[word] & flag != 0;
            self.bits[word] |= flag;
        }
        self.keys += 1;
        seen
    }

    /// Whether "maybe seen" is still rare: no more than `CAPACITY` keys
    /// went in.
    pub fn is_sharp(&self) -> bool {
        self.keys <= Self::CAPACITY
    }
}

impl Default for SeenKeys {
    fn default() -> Self {
        SeenKeys::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_before_is_always_maybe_seen() {
        let mut seen = SeenKeys::new();
        let keys: Vec<String> = (0..50_000).map(|i| format!("852{i:08}")).collect();
        for key in &keys {
            seen.insert(0, key);
        }
        assert!(keys.iter().all(|key| seen.insert(0, key)));
    }

    #[test]
    fn new_keys_are_rarely_called_seen_and_kinds_are_apart() {
        let mut seen = SeenKeys::new();
        for i in 0..200_000 {
            seen.insert(0, &format!("852{i:08}"));
        }
        let false_maybe = (0..200_000)
            .filter(|i| seen.insert(0, &format!("44{i:010}")))
            .count();
        assert!(
            false_maybe < 200,
            "{false_maybe} of 200000 new keys called seen"
        );
        // The same text as another kind is another key.
        let other_kind = (0..10_000)
            .filter(|i| seen.insert(1, &format!("852{i:08}")))
            .count();
        assert!(other_kind < 20, "{other_kind}");
        assert!(seen.is_sharp());
    }
}
