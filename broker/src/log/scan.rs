//! Walking the batches of a `.log` file.
//!
//! Lookups, recovery and index rebuilds all read a segment as a sequence of
//! batches. [`BatchScanner`] does it with a few large `pread`s into one
//! reusable buffer instead of one small read per batch, and can skip over
//! batch bodies it does not need (headers only) or hand out whole batches
//! (for CRC checks).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use runnel_proto::batch::{BATCH_HEADER_LEN, BatchHeader};

/// What [`BatchScanner::next`] found.
#[derive(Debug)]
pub(crate) enum Step {
    /// A well-framed batch starting at `position`.
    Batch { position: u64, header: BatchHeader },
    /// The scan reached its end exactly at a batch boundary.
    End,
    /// The bytes at `position` are not a complete batch: a torn tail
    /// ([`runnel_proto::Error::Truncated`]) or garbage.
    Corrupt {
        position: u64,
        error: runnel_proto::Error,
    },
}

/// Reads `[start, end)` of a segment file batch by batch.
pub(crate) struct BatchScanner<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    /// File position of the next batch.
    next: u64,
    /// Buffered bytes, starting at file position `buf_pos`.
    buf: Vec<u8>,
    buf_pos: u64,
    /// Minimum size of one read.
    chunk: usize,
    /// Range within `buf` of the batch returned by the last `next(true)`.
    last: Option<(usize, usize)>,
}

impl<'a> BatchScanner<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, start: u64, end: u64, chunk: usize) -> Self {
        BatchScanner {
            file,
            path,
            end,
            next: start,
            buf: Vec::new(),
            buf_pos: start,
            chunk,
            last: None,
        }
    }

    /// The whole batch returned by the last `next(true)`.
    pub(crate) fn batch(&self) -> &[u8] {
        let (from, to) = self.last.expect("next(true) returned a batch");
        &self.buf[from..to]
    }

    /// The next batch. With `full`, the whole batch is read into the buffer
    /// (see [`batch`](Self::batch)); otherwise only its header is.
    pub(crate) fn next(&mut self, full: bool) -> crate::Result<Step> {
        self.last = None;
        let position = self.next;
        if position >= self.end {
            return Ok(Step::End);
        }
        let remaining = usize::try_from(self.end - position).unwrap_or(usize::MAX);
        let head = self.fill(BATCH_HEADER_LEN.min(remaining))?;
        let header = match BatchHeader::parse(head) {
            Ok(h) => h,
            Err(error) => return Ok(Step::Corrupt { position, error }),
        };
        let total = header.total_size();
        if total > remaining {
            let error = runnel_proto::Error::Truncated {
                needed: total,
                available: remaining,
            };
            return Ok(Step::Corrupt { position, error });
        }
        if full {
            let got = self.fill(total)?.len();
            if got < total {
                // The file is shorter than `end` said (truncated under us).
                let error = runnel_proto::Error::Truncated {
                    needed: total,
                    available: got,
                };
                return Ok(Step::Corrupt { position, error });
            }
            let from = (position - self.buf_pos) as usize;
            self.last = Some((from, from + total));
        }
        self.next = position + total as u64;
        Ok(Step::Batch { position, header })
    }

    /// Make sure the buffer holds `n` bytes from `self.next` (fewer only if
    /// the file ends first) and return them.
    fn fill(&mut self, n: usize) -> crate::Result<&[u8]> {
        let off = self.next.checked_sub(self.buf_pos).map(|o| o as usize);
        if let Some(off) = off
            && off + n <= self.buf.len()
        {
            return Ok(&self.buf[off..off + n]);
        }
        // Keep what we already have from `next` on, read the rest.
        let keep = match off {
            Some(off) if off < self.buf.len() => {
                self.buf.copy_within(off.., 0);
                self.buf.len() - off
            }
            _ => 0,
        };
        let want = n
            .max(self.chunk)
            .min(usize::try_from(self.end - self.next).unwrap_or(usize::MAX))
            .max(keep);
        self.buf_pos = self.next;
        self.buf.resize(want, 0);
        let got = read_full_at(self.file, &mut self.buf[keep..], self.buf_pos + keep as u64)
            .map_err(|e| crate::Error::io("reading segment", self.path, e))?;
        self.buf.truncate(keep + got);
        Ok(&self.buf[..n.min(self.buf.len())])
    }
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], mut pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::batch_of;

    fn scan_all(
        file: &File,
        path: &Path,
        end: u64,
        chunk: usize,
        full: bool,
    ) -> (Vec<(u64, i64)>, Option<u64>) {
        let mut s = BatchScanner::new(file, path, 0, end, chunk);
        let mut out = Vec::new();
        loop {
            match s.next(full).unwrap() {
                Step::Batch { position, header } => {
                    if full {
                        assert_eq!(s.batch().len(), header.total_size());
                        runnel_proto::batch::verify_crc(s.batch()).unwrap();
                    }
                    out.push((position, header.base_offset));
                }
                Step::End => return (out, None),
                Step::Corrupt { position, .. } => return (out, Some(position)),
            }
        }
    }

    #[test]
    fn walks_batches_with_any_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let batches: Vec<Vec<u8>> = (0..20)
            .map(|i| batch_of(i * 10, 1 + i as usize % 5, 10 + 37 * i as usize))
            .collect();
        let all = batches.concat();
        std::fs::write(&path, &all).unwrap();
        let file = File::open(&path).unwrap();
        let mut expect = Vec::new();
        let mut pos = 0u64;
        for (i, b) in batches.iter().enumerate() {
            expect.push((pos, i as i64 * 10));
            pos += b.len() as u64;
        }
        for chunk in [1, 61, 100, 4096, 1 << 20] {
            for full in [false, true] {
                assert_eq!(
                    scan_all(&file, &path, all.len() as u64, chunk, full),
                    (expect.clone(), None),
                    "chunk {chunk}"
                );
            }
        }
        // An `end` inside the last batch reports it as corrupt (torn).
        let cut = all.len() as u64 - 3;
        let (seen, corrupt) = scan_all(&file, &path, cut, 100, false);
        assert_eq!(seen.len(), 19);
        assert_eq!(corrupt, Some(expect[19].0));
    }
}
