//! Feed arbitrary bytes to the broker's Kafka request decoding: the frame
//! split of `runnel_proto::kafka` (exactly what `broker/src/kafka/dispatch.rs`
//! runs on every frame) and then the request body, decoded as the message its
//! API key names at the header's version, as the broker does before any
//! handler runs. None of it may panic, whatever the input.
//!
//! Invariants checked on top of "no panic":
//! - a frame shorter than the fixed header prefix is refused as `TooShort`,
//!   and any longer frame yields a correlation id equal to bytes 4..8;
//! - a body that decodes re-encodes at the same version, and those bytes
//!   decode back to a request that encodes to the same bytes again (the
//!   decoder agrees with the encoder, so nothing a client sent is silently
//!   read as something else; compared as bytes because a float may be
//!   NaN).
//!
//! Versions outside the codec's range for the key are skipped: the broker
//! answers them with UNSUPPORTED_VERSION before decoding a body.

#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use runnel_proto::kafka::{Frame, FrameError, HEADER_PREFIX_LEN, decode_body, split};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    let split = split(frame);
    if data.len() < HEADER_PREFIX_LEN {
        assert_eq!(split, Err(FrameError::TooShort(data.len())));
        return;
    }
    let wire_correlation_id = i32::from_be_bytes(data[4..8].try_into().unwrap());
    let (key, header, mut body) = match split {
        Ok(Frame::UnknownApi { correlation_id, .. }) => {
            assert_eq!(correlation_id, wire_correlation_id);
            return;
        }
        Ok(Frame::Request { key, header, body }) => (key, header, body),
        Err(_) => return,
    };
    assert_eq!(header.correlation_id, wire_correlation_id);
    let version = header.request_api_version;
    let range = key.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    // The generic entry point the broker uses, for the one API every client
    // sends first; the rest go through the codec's own table of messages.
    if key == kafka_protocol::messages::ApiKey::ApiVersions {
        let _ = decode_body::<kafka_protocol::messages::ApiVersionsRequest>(
            key,
            version,
            &mut body.clone(),
        );
    }
    let Ok(request) = RequestKind::decode(key, &mut body, version) else {
        return;
    };
    let mut encoded = BytesMut::new();
    request
        .encode(&mut encoded, version)
        .expect("a request that decoded at a version encodes at it");
    let encoded = encoded.freeze();
    let again = RequestKind::decode(key, &mut encoded.clone(), version)
        .expect("a re-encoded request decodes");
    // Compared as bytes, not as values: a float field may be NaN, which is
    // never equal to itself.
    let mut twice = BytesMut::new();
    again
        .encode(&mut twice, version)
        .expect("a decoded request encodes");
    assert_eq!(
        twice.freeze(),
        encoded,
        "{key:?} v{version} changed in a round trip"
    );
});
