//! Walking a buffer of concatenated batches (a log segment, a fetch
//! response) without copying or checking CRCs.

use std::fmt;
use std::iter::FusedIterator;

use super::header::{BatchHeader, frame_size};
use crate::error::{Error, Result};

/// Iterate over the batches concatenated in `buf`, in order.
///
/// Each item is the batch's header and the slice holding the whole batch.
/// Only framing is checked (length field, magic); callers that need the CRC
/// call [`validate_batch`](super::validate_batch) or
/// [`verify_crc`](super::verify_crc) on the slice.
///
/// If `buf` ends inside a batch, the iterator yields
/// `Err(Error::Truncated { needed, available })` once, where `needed` is that
/// batch's size (or 12 when even its length field is cut) and `available` is
/// what was left; any other framing error is yielded the same way. After an
/// error the iterator is done. [`Batches::position`] then tells where the
/// good prefix ends, which is where log recovery cuts the file.
///
/// ```
/// use runnel_proto::batch::{BatchBuilder, batches};
///
/// let mut b = BatchBuilder::new();
/// b.push(0, None, Some(b"hello"), &[]);
/// let one = b.build().unwrap();
/// let two = [&one[..], &one[..], &one[..5]].concat();
///
/// let mut it = batches(&two);
/// assert_eq!(it.next().unwrap().unwrap().1, &one[..]);
/// assert_eq!(it.next().unwrap().unwrap().1, &one[..]);
/// assert!(it.next().unwrap().is_err()); // the 5-byte tail
/// assert!(it.next().is_none());
/// assert_eq!(it.position(), 2 * one.len());
/// ```
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches {
        buf,
        pos: 0,
        done: false,
    }
}

/// Iterator returned by [`batches`].
#[derive(Clone)]
pub struct Batches<'a> {
    /// The whole buffer being walked.
    buf: &'a [u8],
    /// Start of the next batch within `buf`.
    pos: usize,
    /// Set after an error so the error is reported once.
    done: bool,
}

impl<'a> Batches<'a> {
    /// Byte offset in the buffer just past the last batch yielded as `Ok`:
    /// the length of the well-framed prefix seen so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The part of the buffer not yet yielded as `Ok`.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.remaining();
        if self.done || rest.is_empty() {
            return None;
        }
        let framed = frame_size(rest).and_then(|total| {
            let batch = rest.get(..total).ok_or(Error::Truncated {
                needed: total,
                available: rest.len(),
            })?;
            Ok((BatchHeader::parse(batch)?, batch))
        });
        match &framed {
            Ok((_, batch)) => self.pos += batch.len(),
            Err(_) => self.done = true,
        }
        Some(framed)
    }
}

impl FusedIterator for Batches<'_> {}

impl fmt::Debug for Batches<'_> {
    // Not derived: that would print the whole buffer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batches")
            .field("len", &self.buf.len())
            .field("position", &self.pos)
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn batch(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(i as i64, None, Some(&vec![i as u8; i]), &[]);
        }
        b.build().unwrap().to_vec()
    }

    #[test]
    fn empty_buffer_yields_nothing() {
        assert!(batches(&[]).next().is_none());
    }

    #[test]
    fn walks_concatenated_batches_in_order() {
        let parts = [batch(1), batch(3), batch(7)];
        let buf = parts.concat();
        let mut it = batches(&buf);
        let mut at = 0;
        for part in &parts {
            let (h, slice) = it.next().unwrap().unwrap();
            assert_eq!(slice, &part[..]);
            assert_eq!(h.total_size(), part.len());
            at += part.len();
            assert_eq!(it.position(), at);
        }
        assert!(it.next().is_none());
        assert!(it.remaining().is_empty());
    }

    #[test]
    fn every_cut_of_the_last_batch_is_truncated_once() {
        let first = batch(2);
        let second = batch(4);
        let buf = [&first[..], &second[..]].concat();
        for cut in first.len() + 1..buf.len() {
            let mut it = batches(&buf[..cut]);
            assert_eq!(it.next().unwrap().unwrap().1, &first[..]);
            let available = cut - first.len();
            let needed = if available < 12 { 12 } else { second.len() };
            assert_eq!(
                it.next(),
                Some(Err(Error::Truncated { needed, available })),
                "cut {cut}"
            );
            assert_eq!(it.next(), None);
            assert_eq!(it.next(), None);
            assert_eq!(it.position(), first.len());
        }
    }

    #[test]
    fn garbage_stops_the_walk() {
        let good = batch(1);
        let mut buf = good.clone();
        let mut bad = batch(1);
        bad[16] = 0; // magic 0
        buf.extend_from_slice(&bad);
        buf.extend_from_slice(&good);
        let items: Vec<_> = batches(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(Error::InvalidMagic(0)));

        let mut neg = good.clone();
        neg[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        let items: Vec<_> = batches(&neg).collect();
        assert_eq!(items, vec![Err(Error::InvalidLength(-1))]);
    }

    #[test]
    fn crc_is_not_checked() {
        let mut buf = batch(2);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let items: Vec<_> = batches(&buf).collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_ok());
    }
}
