//! Choosing a partition for a record, the way Kafka's Java client does.
//!
//! 1. An explicit partition wins.
//! 2. A keyed record goes to `positive(murmur2(key)) % partitions`: the same
//!    partition Kafka's `BuiltInPartitioner` picks, so a topic fed by both
//!    Kafka and Runnel producers keeps each key on one partition.
//! 3. A keyless record goes to the topic's *sticky* partition: every
//!    keyless record joins the same partition until `batch.size` bytes went
//!    to it (or its batch filled up), then a new partition is drawn at
//!    random. This is KIP-794's uniform sticky partitioner (Kafka 3.3+), not
//!    KIP-480's switch on every *sent* batch: with a short `linger.ms` a
//!    batch is sent after a few records, and switching then spread records
//!    over every partition in tiny batches (measured: 16 partitions of
//!    100 B records, `linger.ms=0`, ran at two thirds of one partition's
//!    rate).

use rand::Rng;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with Kafka's seed
/// (`0x9747b28c`), reading 4-byte little-endian blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Kafka's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which
/// overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka assigns a keyed record among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    to_positive(murmur2(key)) as u32 % partitions
}

/// Per-topic state for keyless records.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    /// The partition keyless records currently go to.
    current: Option<u32>,
    /// Bytes of keyless records sent to `current` since it was chosen.
    produced: usize,
}

impl Sticky {
    /// The partition for the next keyless record.
    pub fn partition(&mut self, partitions: u32) -> u32 {
        match self.current {
            Some(p) if p < partitions => p,
            _ => *self.current.insert(random_partition(partitions, None)),
        }
    }

    /// A keyless record of `bytes` went to `partition`: after `batch_size`
    /// bytes on the sticky partition, move on.
    pub fn record_added(
        &mut self,
        partition: u32,
        bytes: usize,
        batch_size: usize,
        partitions: u32,
    ) {
        if self.current == Some(partition) {
            self.produced += bytes;
            if self.produced >= batch_size {
                self.batch_done(partition, partitions);
            }
        }
    }

    /// The batch on `partition` is full: if keyless records were sticking
    /// to it, move them to another partition.
    pub fn batch_done(&mut self, partition: u32, partitions: u32) {
        if self.current == Some(partition) {
            self.current = Some(random_partition(partitions, Some(partition)));
            self.produced = 0;
        }
    }
}

/// A random partition, other than `avoid` when there is a choice.
fn random_partition(partitions: u32, avoid: Option<u32>) -> u32 {
    let mut rng = rand::rng();
    match avoid {
        Some(avoid) if partitions > 1 => {
            // Draw from the other partitions-1 and skip over `avoid`.
            let p = rng.random_range(0..partitions - 1);
            if p >= avoid { p + 1 } else { p }
        }
        _ => rng.random_range(0..partitions.max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from Kafka's own `UtilsTest.testMurmur2`
    /// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                *expected,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn keyed_partition_is_positive_hash_mod_partitions() {
        // positive(-790332482) = 1357151166; 1357151166 % 7 = 1.
        assert_eq!(to_positive(-790_332_482), 1_357_151_166);
        assert_eq!(partition_for_key(b"foobar", 7), 1_357_151_166 % 7);
        // positive(479470107) % 10 = 7
        assert_eq!(partition_for_key(b"abc", 10), 7);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    fn sticky_stays_until_batch_done_then_moves() {
        let mut sticky = Sticky::default();
        let first = sticky.partition(4);
        for _ in 0..100 {
            assert_eq!(sticky.partition(4), first);
        }
        // Another partition's batch finishing does not move it.
        sticky.batch_done((first + 1) % 4, 4);
        assert_eq!(sticky.partition(4), first);
        for _ in 0..100 {
            let before = sticky.partition(4);
            sticky.batch_done(before, 4);
            let after = sticky.partition(4);
            assert_ne!(before, after, "moves to a different partition");
            assert!(after < 4);
        }
    }

    #[test]
    fn sticky_moves_after_batch_size_bytes() {
        let mut sticky = Sticky::default();
        let first = sticky.partition(4);
        // 15 records of 1000 B on a 16 KB batch.size: still sticky.
        for _ in 0..15 {
            sticky.record_added(first, 1000, 16_000, 4);
            assert_eq!(sticky.partition(4), first);
        }
        // Records counted on another partition do not move it.
        sticky.record_added((first + 1) % 4, 5000, 16_000, 4);
        assert_eq!(sticky.partition(4), first);
        sticky.record_added(first, 1000, 16_000, 4);
        let second = sticky.partition(4);
        assert_ne!(second, first, "moves once batch.size bytes went to it");
        // The count starts again on the new partition.
        sticky.record_added(second, 15_999, 16_000, 4);
        assert_eq!(sticky.partition(4), second);
    }

    #[test]
    fn sticky_spreads_over_all_partitions() {
        let mut sticky = Sticky::default();
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let p = sticky.partition(5);
            seen[p as usize] = true;
            sticky.batch_done(p, 5);
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn sticky_with_one_partition_and_shrunk_counts() {
        let mut sticky = Sticky::default();
        assert_eq!(sticky.partition(1), 0);
        sticky.batch_done(0, 1);
        assert_eq!(sticky.partition(1), 0);
        // A cached choice beyond the partition count is redrawn.
        sticky.current = Some(9);
        assert!(sticky.partition(3) < 3);
    }
}
