//! Kafka's variable-length integers: zigzag-encoded base-128 varints, the
//! same encoding as protobuf's `sint32` / `sint64`.
//!
//! Zigzag maps signed to unsigned so that small magnitudes stay short
//! (0 → 0, -1 → 1, 1 → 2, -2 → 3, …); the result is written 7 bits at a time,
//! least significant group first, with the high bit of each byte set when
//! another byte follows. A varint takes 1-5 bytes, a varlong 1-10.
//!
//! Decoding follows Kafka's `ByteUtils.readVarint` / `readVarlong`: at most
//! 5 (10) bytes are read, and excess high bits in the final byte are dropped
//! rather than rejected, so every batch Kafka accepts decodes here too.

use bytes::BufMut;

/// Longest encoding of an `i32` varint.
pub(crate) const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of an `i64` varlong.
pub(crate) const MAX_VARLONG_LEN: usize = 10;

/// Why a varint did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The buffer ended while the continuation bit was still set.
    Truncated,
    /// The continuation bit was still set after the longest legal encoding.
    TooLong,
}

#[inline]
fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag32(z: u32) -> i32 {
    ((z >> 1) as i32) ^ -((z & 1) as i32)
}

#[inline]
fn unzigzag64(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Encoded size of `v` as a varint, 1..=5.
#[inline]
pub(crate) fn varint_len(v: i32) -> usize {
    let bits = 32 - (zigzag32(v) | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of `v` as a varlong, 1..=10.
#[inline]
pub(crate) fn varlong_len(v: i64) -> usize {
    let bits = 64 - (zigzag64(v) | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Append `v` as a varint.
#[inline]
pub(crate) fn put_varint(buf: &mut impl BufMut, v: i32) {
    put_unsigned(buf, u64::from(zigzag32(v)));
}

/// Append `v` as a varlong.
#[inline]
pub(crate) fn put_varlong(buf: &mut impl BufMut, v: i64) {
    put_unsigned(buf, zigzag64(v));
}

#[inline]
fn put_unsigned(buf: &mut impl BufMut, mut z: u64) {
    // Encode into a stack array and append once: one capacity check per
    // varint instead of one per byte.
    let mut tmp = [0u8; MAX_VARLONG_LEN];
    let mut n = 0;
    while z >= 0x80 {
        tmp[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    tmp[n] = z as u8;
    buf.put_slice(&tmp[..=n]);
}

/// Decode an unsigned base-128 value of at most `max_len` bytes from the
/// start of `buf`; returns the value and the number of bytes read.
#[inline]
fn get_unsigned(buf: &[u8], max_len: usize) -> Result<(u64, usize), VarintError> {
    // Fast path: most lengths and deltas fit in one byte.
    match buf.first() {
        None => return Err(VarintError::Truncated),
        Some(&b) if b < 0x80 => return Ok((u64::from(b), 1)),
        Some(_) => {}
    }
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(max_len).enumerate() {
        // i < 10, so the shift is at most 63; bits pushed past bit 63 are
        // dropped, as Kafka drops them.
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_len {
        Err(VarintError::Truncated)
    } else {
        Err(VarintError::TooLong)
    }
}

/// Decode a varint from the start of `buf`; returns the value and its
/// encoded length.
#[inline]
pub(crate) fn get_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let (z, n) = get_unsigned(buf, MAX_VARINT_LEN)?;
    // Kafka accumulates into a 32-bit int, so bits above 32 vanish.
    Ok((unzigzag32(z as u32), n))
}

/// Decode a varlong from the start of `buf`; returns the value and its
/// encoded length.
#[inline]
pub(crate) fn get_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (z, n) = get_unsigned(buf, MAX_VARLONG_LEN)?;
    Ok((unzigzag64(z), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    fn enc64(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        out
    }

    #[test]
    fn known_encodings() {
        // Zigzag: 0→0, -1→1, 1→2, -2→3, 63→126, -64→127, 64→128 (two bytes).
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(-2), [0x03]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(300), [0xd8, 0x04]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            enc64(i64::MAX),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            enc64(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // A varlong of an i32 value encodes like the varint.
        assert_eq!(enc64(i64::from(i32::MIN)), enc32(i32::MIN));
    }

    #[test]
    fn round_trip_edges_32() {
        let edges = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            -8192,
            8192,
            (1 << 20) - 1,
            1 << 20,
            (1 << 27) - 1,
            1 << 27,
            i32::MAX - 1,
            i32::MAX,
            i32::MIN + 1,
            i32::MIN,
        ];
        for v in edges {
            let bytes = enc32(v);
            assert_eq!(bytes.len(), varint_len(v), "len of {v}");
            assert!(bytes.len() <= MAX_VARINT_LEN);
            assert_eq!(get_varint(&bytes), Ok((v, bytes.len())), "decode of {v}");
            // Trailing bytes are not consumed.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0xaa, 0xbb]);
            assert_eq!(get_varint(&longer), Ok((v, bytes.len())));
        }
    }

    #[test]
    fn round_trip_edges_64() {
        let mut edges = vec![0i64, 1, -1, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1];
        for shift in 0..63 {
            edges.push(1i64 << shift);
            edges.push(-(1i64 << shift));
            edges.push((1i64 << shift) - 1);
        }
        for v in edges {
            let bytes = enc64(v);
            assert_eq!(bytes.len(), varlong_len(v), "len of {v}");
            assert!(bytes.len() <= MAX_VARLONG_LEN);
            assert_eq!(get_varlong(&bytes), Ok((v, bytes.len())), "decode of {v}");
        }
    }

    #[test]
    fn lengths_at_group_boundaries() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(-64), 1);
        assert_eq!(varint_len(64), 2);
        assert_eq!(varint_len(-8192), 2);
        assert_eq!(varint_len(8192), 3);
        assert_eq!(varint_len(i32::MAX), 5);
        assert_eq!(varint_len(i32::MIN), 5);
        assert_eq!(varlong_len(0), 1);
        assert_eq!(varlong_len(i64::MAX), 10);
        assert_eq!(varlong_len(i64::MIN), 10);
        assert_eq!(varlong_len(i64::from(i32::MAX)), 5);
    }

    #[test]
    fn every_cut_of_an_encoding_is_truncated() {
        for bytes in [enc32(i32::MIN), enc64(i64::MIN), enc32(300)] {
            for cut in 0..bytes.len() {
                assert_eq!(get_varlong(&bytes[..cut]), Err(VarintError::Truncated));
            }
        }
        assert_eq!(get_varint(&[]), Err(VarintError::Truncated));
    }

    #[test]
    fn over_long_encodings_are_rejected() {
        // Six continuation bytes: more than any i32 needs.
        assert_eq!(get_varint(&[0x80; 6]), Err(VarintError::TooLong));
        assert_eq!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(VarintError::TooLong)
        );
        assert_eq!(get_varlong(&[0xff; 11]), Err(VarintError::TooLong));
        // Exactly at the limit with the continuation bit still set, and the
        // buffer ends there: also too long (more bytes would not help).
        assert_eq!(get_varint(&[0x80; 5]), Err(VarintError::TooLong));
    }

    #[test]
    fn excess_bits_in_last_byte_are_dropped_like_kafka() {
        // 0x7f in the fifth byte carries bits 28..34; Kafka's readVarint keeps
        // only bits 28..31. The result is the same as with 0x0f.
        let canonical = get_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
        assert_eq!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]), Ok(canonical));
        assert_eq!(canonical, (i32::MIN, 5));
        // Non-minimal (padded) encodings decode to the same value.
        assert_eq!(get_varint(&[0x82, 0x80, 0x00]), Ok((1, 3)));
    }
}
