//! Kafka request frames, the part of reading them that is pure decoding
//! (feature `kafka`): what the broker does with a frame before any handler
//! runs, kept here so the fuzz target (`fuzz/fuzz_targets/kafka_request.rs`)
//! exercises exactly the broker's code without building the broker.
//!
//! A frame is a request without its 4-byte size prefix:
//!
//! ```text
//! api key (i16) | api version (i16) | correlation id (i32) | client id | [tags] | body
//! ```
//!
//! The first eight bytes are the same in every header version, so
//! [`split`] reads them first: an API key `kafka-protocol` does not know
//! still has a correlation id to answer. Otherwise the whole header is
//! decoded at the version the key and API version call for
//! (`ApiKey::request_header_version`), and the rest is the body, which
//! [`decode_body`] decodes as the message the API key names. The codec is
//! the `kafka-protocol` crate (generated from Kafka's message specs).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// Bytes every request header starts with: api key, api version,
/// correlation id.
pub const HEADER_PREFIX_LEN: usize = 8;

/// A request frame taken apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An API key `kafka-protocol` does not know: only the fixed prefix
    /// could be read, enough to answer UNSUPPORTED_VERSION.
    UnknownApi {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// A known API: its decoded header and the undecoded body.
    Request {
        key: ApiKey,
        header: RequestHeader,
        body: Bytes,
    },
}

/// Why a frame is not a request. Each means the connection cannot go on:
/// what follows in the stream can no longer be trusted to be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the fixed part of every header.
    #[error("a {0}-byte request is too short for a request header")]
    TooShort(usize),
    /// The header does not decode at the version the API calls for.
    #[error("{key:?} v{version} request header does not decode: {reason}")]
    Header {
        key: ApiKey,
        version: i16,
        /// `kafka-protocol`'s error, with its causes.
        reason: String,
    },
    /// The body does not decode as the API's request at that version.
    #[error("{key:?} v{version} request does not decode: {reason}")]
    Body {
        key: ApiKey,
        version: i16,
        /// `kafka-protocol`'s error, with its causes.
        reason: String,
    },
}

/// Take a frame (without its size prefix) apart into header and body.
pub fn split(frame: Bytes) -> Result<Frame, FrameError> {
    if frame.len() < HEADER_PREFIX_LEN {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key = (&frame[0..2]).get_i16();
    let api_version = (&frame[2..4]).get_i16();
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Ok(Frame::UnknownApi {
            api_key,
            api_version,
            correlation_id: (&frame[4..8]).get_i32(),
        });
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(api_version))
        .map_err(|e| FrameError::Header {
            key,
            version: api_version,
            reason: format!("{e:#}"),
        })?;
    Ok(Frame::Request { key, header, body })
}

/// Decode `body` as `R`, the request of `key`, at `version`. What is left
/// in `body` afterwards are bytes after the request's last field, which
/// Kafka's broker ignores (and clients rely on that: librdkafka 2.x sends
/// Metadata v12 with fields v10 dropped), so they are not an error here.
pub fn decode_body<R: Decodable>(
    key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<R, FrameError> {
    R::decode(body, version).map_err(|e| FrameError::Body {
        key,
        version,
        reason: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use kafka_protocol::messages::ApiVersionsRequest;

    use super::*;

    /// An ApiVersions v3 frame as librdkafka 2.x sends it.
    fn api_versions_v3() -> Bytes {
        let mut f = bytes::BytesMut::new();
        f.put_i16(18); // ApiVersions
        f.put_i16(3);
        f.put_i32(7); // correlation id
        f.put_i16(7); // client id (a nullable string: i16 length)
        f.put_slice(b"rdkafka");
        f.put_u8(0); // header tags
        f.put_u8(9); // compact string: length + 1
        f.put_slice(b"librdkaf");
        f.put_u8(7);
        f.put_slice(b"2.16.0");
        f.put_u8(0); // body tags
        f.freeze()
    }

    #[test]
    fn a_frame_splits_into_header_and_body_that_decode() {
        let Frame::Request {
            key,
            header,
            mut body,
        } = split(api_versions_v3()).unwrap()
        else {
            panic!("ApiVersions is a known API");
        };
        assert_eq!(key, ApiKey::ApiVersions);
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        let req: ApiVersionsRequest = decode_body(key, 3, &mut body).unwrap();
        assert_eq!(req.client_software_name.as_str(), "librdkaf");
        assert_eq!(req.client_software_version.as_str(), "2.16.0");
        assert!(body.is_empty());
    }

    #[test]
    fn unknown_apis_keep_their_correlation_id_and_short_frames_are_refused() {
        let mut f = bytes::BytesMut::new();
        f.put_i16(999);
        f.put_i16(0);
        f.put_i32(42);
        assert_eq!(
            split(f.freeze()),
            Ok(Frame::UnknownApi {
                api_key: 999,
                api_version: 0,
                correlation_id: 42
            })
        );
        assert_eq!(
            split(Bytes::from_static(&[0, 18, 0, 3])),
            Err(FrameError::TooShort(4))
        );
        // A client id longer than the frame.
        let truncated = api_versions_v3().slice(..12);
        let err = split(truncated).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Header {
                    key: ApiKey::ApiVersions,
                    version: 3,
                    ..
                }
            ),
            "{err}"
        );
    }
}
