//! The log start offset checkpoint: where DeleteRecords (or a follower
//! following its leader's) moved the log start offset inside a segment.
//!
//! Without it the log start offset is the oldest segment's base offset, and
//! a restart would bring deleted records back. Kafka keeps one
//! `log-start-offset-checkpoint` per log directory; we keep one small file
//! per partition, next to its `leader-epoch-checkpoint`, so that a
//! partition's directory holds all of its state and moves or deletes as one.
//!
//! Format, as Kafka's checkpoints: a version line (`0`) and the offset.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// File name in the partition directory.
pub(crate) const FILE_NAME: &str = "log-start-offset-checkpoint";

const VERSION: &str = "0";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The checkpointed log start offset, if one was written.
pub(crate) fn read(dir: &Path) -> Result<Option<i64>> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading log start offset checkpoint", &path, e)),
    };
    parse(&text)
        .map(Some)
        .map_err(|reason| Error::Storage { path, reason })
}

fn parse(text: &str) -> std::result::Result<i64, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(format!("unknown checkpoint version {other:?}")),
    }
    let offset = lines
        .next()
        .ok_or("no offset after the version line")?
        .trim()
        .parse::<i64>()
        .map_err(|e| format!("offset does not parse: {e}"))?;
    if offset < 0 {
        return Err(format!("negative log start offset {offset}"));
    }
    Ok(offset)
}

/// Write `offset` durably: temp file, fsync, rename over the old one, fsync
/// the directory (the rename must survive a power loss too, or deleted
/// records would come back).
pub(crate) fn write(dir: &Path, offset: i64) -> Result<()> {
    let path = path(dir);
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        write!(f, "{VERSION}\n{offset}\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        // A full disk fails the write half-way: do not keep the blocks.
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing log start offset checkpoint", &path, e)
    })?;
    super::fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_offsets_read_back_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        write(dir.path(), 7).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(7));
        assert!(!dir.path().join("log-start-offset-checkpoint.tmp").exists());
    }

    #[test]
    fn a_damaged_checkpoint_is_a_storage_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "1\n5\n", "0\n", "0\nfive\n", "0\n-3\n"] {
            std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert!(matches!(err, Error::Storage { .. }), "{text:?}: {err}");
        }
    }
}
