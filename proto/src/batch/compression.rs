//! The compression codec named by bits 0-2 of a batch's `attributes`, and the
//! one place that turns a batch's records section into plain record bytes.
//!
//! Only [`Compression::None`] decodes today. Adding a codec is one arm in
//! [`decompress`] (plus the codec crate): everything downstream iterates a
//! plain `Bytes` of records and does not care where it came from.

use std::fmt;

use bytes::Bytes;

use crate::error::{Error, Result};

/// Bits of `attributes` that hold the codec id.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;

/// Compression codec of a batch's records section (attributes bits 0-2).
///
/// The ids are Kafka's, so a batch compressed by a Kafka client is labelled
/// the same way here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Id 0: records are stored as they are.
    None,
    /// Id 1: gzip (RFC 1952).
    Gzip,
    /// Id 2: snappy, in the xerial framing Kafka uses.
    Snappy,
    /// Id 3: LZ4 frame format.
    Lz4,
    /// Id 4: Zstandard.
    Zstd,
}

impl Compression {
    /// The codec with Kafka id `id`, or `None` for ids 5-7 (and above).
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Kafka's id for this codec, as stored in attributes bits 0-2.
    pub const fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Kafka's `compression.type` name: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The plain record bytes of a records section stored with `compression`.
///
/// For [`Compression::None`] this is `section` itself (no copy). Codecs that
/// are not built in give [`Error::UnsupportedCompression`].
pub(crate) fn decompress(compression: Compression, section: Bytes) -> Result<Bytes> {
    match compression {
        Compression::None => Ok(section),
        other => Err(Error::UnsupportedCompression(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_match_kafka() {
        let all = [
            (0, Compression::None, "none"),
            (1, Compression::Gzip, "gzip"),
            (2, Compression::Snappy, "snappy"),
            (3, Compression::Lz4, "lz4"),
            (4, Compression::Zstd, "zstd"),
        ];
        for (id, codec, name) in all {
            assert_eq!(Compression::from_id(id), Some(codec));
            assert_eq!(codec.id(), id);
            assert_eq!(codec.to_string(), name);
        }
        for id in 5..=255 {
            assert_eq!(Compression::from_id(id), None);
        }
    }

    #[test]
    fn only_none_decompresses() {
        let section = Bytes::from_static(b"records");
        let out = decompress(Compression::None, section.clone()).unwrap();
        assert_eq!(out, section);
        // Same allocation, not a copy.
        assert_eq!(out.as_ptr(), section.as_ptr());
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert_eq!(
                decompress(codec, section.clone()),
                Err(Error::UnsupportedCompression(codec))
            );
        }
    }
}
