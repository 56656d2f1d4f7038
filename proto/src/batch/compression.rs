//! The compression codec named by bits 0-2 of a batch's `attributes`, and the
//! one place that turns a batch's records section into plain record bytes
//! ([`decompress`]) and back ([`compress`]).
//!
//! Every Kafka codec is built in: [`Compression::None`],
//! [`Compression::Gzip`] (a gzip stream, several members allowed),
//! [`Compression::Snappy`] (written as one raw snappy block, as sarama and
//! librdkafka do; read raw or in the xerial framing Kafka's Java client
//! writes), [`Compression::Lz4`] (the LZ4 *frame* format, as Kafka writes it
//! since magic 1) and [`Compression::Zstd`]. Everything downstream of
//! [`decompress`] iterates a plain `Bytes` of records and does not care
//! where it came from.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

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
    /// Id 2: snappy (raw, or in the xerial framing Kafka's Java client uses).
    Snappy,
    /// Id 3: LZ4 frame format.
    Lz4,
    /// Id 4: Zstandard.
    Zstd,
}

impl Compression {
    /// Every codec, in id order (`None` first, so `ALL[1..]` are the ones
    /// that compress).
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

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

impl FromStr for Compression {
    type Err = Error;

    /// Kafka's `compression.type` names, case-insensitive: `none`, `gzip`,
    /// `snappy`, `lz4`, `zstd`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "snappy" => Ok(Self::Snappy),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            _ => Err(Error::UnknownCompressionName(s.to_owned())),
        }
    }
}

/// Most bytes a compressed records section may decompress to.
///
/// A guard against decompression bombs: a few KiB of zstd can claim
/// gigabytes, and [`records`](super::records) runs on bytes from the network.
/// Producers cap a batch's *uncompressed* size at `max(batch.size,
/// max.request.size)` (1 MiB by default), so 64 MiB leaves ample room.
pub const MAX_DECOMPRESSED_LEN: usize = 64 * 1024 * 1024;

/// Kafka's default zstd level (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;

/// The LZ4 frame parameters Kafka's `KafkaLZ4BlockOutputStream` uses:
/// 64 KiB independent blocks, no checksums beyond the frame header's (the
/// batch CRC already covers every byte). Kafka's reader cannot follow
/// linked blocks, so independence is what keeps the batches readable by
/// Kafka consumers.
fn lz4_frame_info() -> lz4_flex::frame::FrameInfo {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameInfo};
    FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false)
}

/// The plain record bytes of a records section stored with `compression`.
///
/// For [`Compression::None`] this is `section` itself (no copy); for the
/// codecs a new buffer of at most [`MAX_DECOMPRESSED_LEN`] bytes.
///
/// # Errors
///
/// [`Error::CorruptCompressed`] when the section is not a valid stream of
/// its codec, [`Error::DecompressedTooLarge`] when it inflates past the limit.
pub(crate) fn decompress(compression: Compression, section: Bytes) -> Result<Bytes> {
    match compression {
        Compression::None => Ok(section),
        _ => inflate(compression, &section, MAX_DECOMPRESSED_LEN).map(Bytes::from),
    }
}

/// The plain bytes of a compressed records section, at most `limit` of
/// them. Errors as [`decompress`].
pub(crate) fn inflate(compression: Compression, section: &[u8], limit: usize) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| Error::CorruptCompressed {
        codec: compression,
        reason: e.to_string(),
    };
    // Streaming decoders behind `take(limit + 1)`: the output never grows
    // past the limit, however much the input claims.
    let reader: Box<dyn Read + '_> = match compression {
        // The decoders read no input as no output; but a compressed
        // section always holds at least a frame header.
        _ if section.is_empty() && compression != Compression::None => {
            return Err(Error::CorruptCompressed {
                codec: compression,
                reason: "empty records section".into(),
            });
        }
        Compression::None => Box::new(section),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(section)),
        Compression::Snappy => return snappy::inflate(section, limit),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(section)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(section).map_err(corrupt)?)
        }
    };
    // A guess at the ratio, to skip the first few reallocations.
    let mut plain = Vec::with_capacity(section.len().saturating_mul(2).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(corrupt)?;
    if plain.len() > limit {
        return Err(Error::DecompressedTooLarge {
            codec: compression,
            limit,
        });
    }
    Ok(plain)
}

/// Append `plain` (a records section) to `out`, compressed with
/// `compression`.
///
/// # Errors
///
/// Compressing into memory cannot fail (the writer is a growing buffer and
/// the parameters are fixed) except for snappy's size limit of 2^32 − 1
/// bytes ([`Error::CorruptCompressed`]), far above any batch.
pub(crate) fn compress(compression: Compression, plain: &[u8], out: &mut BytesMut) -> Result<()> {
    const INFALLIBLE: &str = "compressing into a growing in-memory buffer cannot fail";
    match compression {
        Compression::None => out.extend_from_slice(plain),
        Compression::Gzip => {
            // Kafka's default compression.gzip.level (-1) is zlib's 6.
            let mut encoder =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(6));
            encoder.write_all(plain).expect(INFALLIBLE);
            encoder.finish().expect(INFALLIBLE);
        }
        Compression::Snappy => snappy::compress(plain, out)?,
        Compression::Lz4 => {
            let mut encoder =
                lz4_flex::frame::FrameEncoder::with_frame_info(lz4_frame_info(), out.writer());
            encoder.write_all(plain).expect(INFALLIBLE);
            encoder.finish().expect(INFALLIBLE);
        }
        Compression::Zstd => {
            zstd::stream::copy_encode(plain, out.writer(), ZSTD_LEVEL).expect(INFALLIBLE);
        }
    }
    Ok(())
}

/// Kafka's snappy sections: raw snappy, or xerial's framing (an 8-byte
/// magic, two version ints, then `[u32 length][raw block]` chunks) as
/// Kafka's Java client writes through snappy-java.
mod snappy {
    use bytes::BytesMut;

    use super::Compression;
    use crate::error::{Error, Result};

    const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
    /// Magic plus version and compatible-version ints.
    const XERIAL_HEADER_LEN: usize = 16;

    fn corrupt(reason: impl Into<String>) -> Error {
        Error::CorruptCompressed {
            codec: Compression::Snappy,
            reason: reason.into(),
        }
    }

    /// One raw block written as it is: what sarama and librdkafka send,
    /// and what snappy-java (Kafka's Java consumer) reads when the xerial
    /// magic is absent.
    pub(super) fn compress(plain: &[u8], out: &mut BytesMut) -> Result<()> {
        let block = snap::raw::Encoder::new()
            .compress_vec(plain)
            .map_err(|e| corrupt(e.to_string()))?;
        out.extend_from_slice(&block);
        Ok(())
    }

    pub(super) fn inflate(section: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        match section.strip_prefix(XERIAL_MAGIC) {
            Some(_) if section.len() < XERIAL_HEADER_LEN => {
                return Err(corrupt("xerial header cut short"));
            }
            Some(_) => {
                let mut rest = &section[XERIAL_HEADER_LEN..];
                while !rest.is_empty() {
                    let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                        return Err(corrupt("xerial chunk length cut short"));
                    };
                    let len = u32::from_be_bytes(*len) as usize;
                    if len > tail.len() {
                        return Err(corrupt("xerial chunk runs past the section"));
                    }
                    let (block, next) = tail.split_at(len);
                    append_block(block, limit, &mut plain)?;
                    rest = next;
                }
            }
            None => append_block(section, limit, &mut plain)?,
        }
        Ok(plain)
    }

    /// Decompress one raw block onto `plain`, refusing before allocating if
    /// the block's declared length would take `plain` past `limit`.
    fn append_block(block: &[u8], limit: usize, plain: &mut Vec<u8>) -> Result<()> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if plain.len() + len > limit {
            return Err(Error::DecompressedTooLarge {
                codec: Compression::Snappy,
                limit,
            });
        }
        let start = plain.len();
        plain.resize(start + len, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, &mut plain[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        plain.truncate(start + written);
        Ok(())
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
    fn none_is_zero_copy() {
        let section = Bytes::from_static(b"records");
        let out = decompress(Compression::None, section.clone()).unwrap();
        assert_eq!(out, section);
        // Same allocation, not a copy.
        assert_eq!(out.as_ptr(), section.as_ptr());
    }

    /// A section in xerial's framing, as Kafka's Java client writes
    /// snappy: magic, version 1, compatible version 1, then one
    /// `[length][raw block]` chunk per block.
    fn xerial(blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        for block in blocks {
            let raw = snap::raw::Encoder::new().compress_vec(block).unwrap();
            out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            out.extend_from_slice(&raw);
        }
        out
    }

    #[test]
    fn snappy_reads_raw_blocks_and_xerial_frames() {
        let raw = round_trip(Compression::Snappy, b"raw snappy, as sarama writes it");
        assert_eq!(&raw[..1], &[31], "a raw block starts with its length");
        let framed = xerial(&[b"first block, ", b"second block"]);
        assert_eq!(
            inflate(Compression::Snappy, &framed, 100).unwrap(),
            b"first block, second block"
        );
        assert_eq!(
            inflate(Compression::Snappy, &framed, 24),
            Err(Error::DecompressedTooLarge {
                codec: Compression::Snappy,
                limit: 24
            })
        );
        for (bad, why) in [
            (framed[..12].to_vec(), "header cut short"),
            (framed[..18].to_vec(), "chunk length cut short"),
            (framed[..framed.len() - 1].to_vec(), "runs past"),
        ] {
            let err = inflate(Compression::Snappy, &bad, 100).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        // A raw block claiming 2^32 bytes is refused before any allocation.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(matches!(
            inflate(Compression::Snappy, &huge, 1 << 20),
            Err(Error::DecompressedTooLarge { .. }) | Err(Error::CorruptCompressed { .. })
        ));
    }

    #[test]
    fn gzip_reads_concatenated_members() {
        let mut two = BytesMut::new();
        compress(Compression::Gzip, b"one ", &mut two).unwrap();
        compress(Compression::Gzip, b"two", &mut two).unwrap();
        assert_eq!(&two[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(inflate(Compression::Gzip, &two, 100).unwrap(), b"one two");
    }

    fn round_trip(codec: Compression, plain: &[u8]) -> Bytes {
        let mut out = BytesMut::from(&b"prefix"[..]);
        compress(codec, plain, &mut out).unwrap();
        // Appends: what was in the buffer stays.
        assert_eq!(&out[..6], b"prefix");
        let compressed = out.freeze().slice(6..);
        assert_eq!(&decompress(codec, compressed.clone()).unwrap()[..], plain);
        compressed
    }

    #[test]
    fn lz4_writes_a_standard_frame_with_independent_64k_blocks() {
        let plain = b"kafka kafka kafka kafka kafka kafka kafka kafka".repeat(100);
        let c = round_trip(Compression::Lz4, &plain);
        assert!(
            c.len() < plain.len() / 10,
            "compressible: {} bytes",
            c.len()
        );
        // Frame magic 0x184D2204 (little-endian).
        assert_eq!(&c[..4], &[0x04, 0x22, 0x4D, 0x18]);
        // FLG: version 01, block independence, no block/content checksum,
        // no content size: 0b0110_0000. BD: 64 KiB blocks (4 << 4).
        assert_eq!((c[4], c[5]), (0x60, 0x40));
        // EndMark: a zero block size ends the frame.
        assert_eq!(&c[c.len() - 4..], &[0, 0, 0, 0]);
    }

    /// `printf 'hello hello hello hello' | lz4 -B4 -BI --no-frame-crc`
    /// (the reference CLI, with Kafka's frame parameters).
    const LZ4_REFERENCE: &[u8] = &[
        0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0x0f, 0x00, 0x00, 0x00, 0x68, 0x68, 0x65, 0x6c,
        0x6c, 0x6f, 0x20, 0x06, 0x00, 0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00, 0x00,
    ];

    /// `printf 'hello hello hello hello' | lz4 -B4 -BD`: linked blocks and a
    /// content checksum, which a reader must still accept.
    const LZ4_REFERENCE_LINKED: &[u8] = &[
        0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0x0f, 0x00, 0x00, 0x00, 0x68, 0x68, 0x65, 0x6c,
        0x6c, 0x6f, 0x20, 0x06, 0x00, 0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00, 0x00,
        0xf2, 0x6b, 0x94, 0x0b,
    ];

    /// `printf hello | zstd` (with its content checksum).
    const ZSTD_REFERENCE: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x29, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa3,
        0x6d, 0x9f, 0x88,
    ];

    #[test]
    fn lz4_known_answers_from_the_reference_tool() {
        for frame in [LZ4_REFERENCE, LZ4_REFERENCE_LINKED] {
            let out = decompress(Compression::Lz4, Bytes::from_static(frame)).unwrap();
            assert_eq!(&out[..], b"hello hello hello hello");
        }
        // Our frame header (magic, FLG, BD, header checksum) is byte for
        // byte the reference tool's with Kafka's parameters.
        let ours = round_trip(Compression::Lz4, b"hello hello hello hello");
        assert_eq!(&ours[..7], &LZ4_REFERENCE[..7]);
    }

    #[test]
    fn zstd_known_answer_from_the_reference_tool() {
        let out = decompress(Compression::Zstd, Bytes::from_static(ZSTD_REFERENCE)).unwrap();
        assert_eq!(&out[..], b"hello");
        let plain = b"kafka kafka kafka kafka kafka kafka kafka kafka".repeat(100);
        let c = round_trip(Compression::Zstd, &plain);
        assert!(c.len() < plain.len() / 10);
        // Zstandard frame magic 0xFD2FB528 (little-endian).
        assert_eq!(&c[..4], &ZSTD_REFERENCE[..4]);
    }

    #[test]
    fn empty_input_round_trips() {
        for codec in Compression::ALL[1..].iter().copied() {
            round_trip(codec, b"");
        }
    }

    #[test]
    fn corrupt_sections_are_errors_not_panics() {
        for codec in Compression::ALL[1..].iter().copied() {
            let good = round_trip(codec, &b"0123456789".repeat(50));
            for bad in [
                Bytes::from_static(b""),
                Bytes::from_static(b"not compressed at all"),
                good.slice(..good.len() / 2),
            ] {
                let err = decompress(codec, bad.clone()).unwrap_err();
                assert!(
                    matches!(err, Error::CorruptCompressed { codec: c, .. } if c == codec),
                    "{codec} {bad:?}: {err:?}"
                );
                assert!(
                    err.to_string()
                        .starts_with(&format!("corrupt {codec} records section: "))
                );
            }
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let plain = vec![0u8; 10_000];
        for codec in Compression::ALL[1..].iter().copied() {
            let mut c = BytesMut::new();
            compress(codec, &plain, &mut c).unwrap();
            let c = c.freeze();
            assert_eq!(
                inflate(codec, &c, 9_999),
                Err(Error::DecompressedTooLarge {
                    codec,
                    limit: 9_999
                })
            );
            assert_eq!(inflate(codec, &c, 10_000).unwrap().len(), 10_000);
        }
        assert_eq!(
            Error::DecompressedTooLarge {
                codec: Compression::Zstd,
                limit: 5
            }
            .to_string(),
            "zstd records section decompresses to more than 5 bytes"
        );
    }

    #[test]
    fn names_parse_like_kafka_compression_type() {
        for codec in Compression::ALL {
            assert_eq!(codec.name().parse::<Compression>(), Ok(codec));
            assert_eq!(
                codec.name().to_uppercase().parse::<Compression>(),
                Ok(codec)
            );
        }
        let err = "brotli".parse::<Compression>().unwrap_err();
        assert_eq!(err, Error::UnknownCompressionName("brotli".into()));
        assert_eq!(
            err.to_string(),
            "unknown compression type \"brotli\"; expected none, gzip, snappy, lz4 or zstd"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_codec_round_trips(
            plain in proptest::collection::vec(proptest::num::u8::ANY, 0..20_000),
            codec in proptest::sample::select(&Compression::ALL[1..]),
        ) {
            round_trip(codec, &plain);
        }
    }
}
