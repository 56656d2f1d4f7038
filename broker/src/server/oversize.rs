//! The answer to a request over the size limit.
//!
//! tonic refuses a message longer than `max_decoding_message_size` before
//! any handler runs, with OUT_OF_RANGE and "Error, decoded message length
//! too large: found N bytes, the limit is: M bytes". gRPC's own
//! implementations (grpc-go, grpc-java) say RESOURCE_EXHAUSTED for that,
//! which is also what a too-large record batch gets here
//! (`MessageTooLarge`), and a person needs the setting's name to act. This
//! rewrites that one answer; every other status passes untouched. It is
//! found in trailers-only answers, which is how every unary method refuses;
//! the broker-internal replication stream ends with its status in trailers
//! and keeps tonic's wording.

use axum::http::Response;
use tonic::{Code, Status};

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";

/// A response mapper for [`tower::util::MapResponseLayer`]: `socket_max`
/// is the broker's `socket.request.max.bytes`, named when it is the limit
/// that was hit (the replication service has its own).
pub fn rewrite<B>(socket_max: usize) -> impl Fn(Response<B>) -> Response<B> + Clone {
    move |mut response| {
        // Refusals before the handler are trailers-only: the status is in
        // the headers. Anything else is left alone without parsing.
        if response.headers().get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
            return response;
        }
        let Some(status) = Status::from_header_map(response.headers()) else {
            return response;
        };
        let Some((found, limit)) = parse(status.message()) else {
            return response;
        };
        let message = if limit == socket_max {
            format!(
                "request of {found} bytes exceeds socket.request.max.bytes={limit}; send smaller \
                 requests (the producer's max.request.size, fewer partitions per request) or \
                 raise the broker's socket.request.max.bytes"
            )
        } else {
            format!("request of {found} bytes exceeds this service's limit of {limit} bytes")
        };
        // Replaces grpc-status and grpc-message. It only fails on a message
        // that is not a valid header value, and this one is percent-encoded
        // ASCII.
        let _ = Status::new(Code::ResourceExhausted, message).add_header(response.headers_mut());
        response
    }
}

/// `(found, limit)` from tonic's message, if it is that message.
fn parse(message: &str) -> Option<(usize, usize)> {
    let rest = message.strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Status) -> Response<()> {
        status.into_http()
    }

    #[test]
    fn tonics_oversize_answer_becomes_resource_exhausted_with_the_setting() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 9437189 bytes, the limit is: 8388608 bytes",
        );
        let out = rewrite(8_388_608)(answer(tonic));
        let status = Status::from_header_map(out.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .starts_with("request of 9437189 bytes exceeds socket.request.max.bytes=8388608;"),
            "{}",
            status.message()
        );
        // Another service's limit is not called socket.request.max.bytes.
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 300 bytes, the limit is: 200 bytes",
        );
        let status = Status::from_header_map(rewrite(100)(answer(tonic)).headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "request of 300 bytes exceeds this service's limit of 200 bytes"
        );
    }

    #[test]
    fn other_answers_pass_untouched() {
        for status in [
            Status::out_of_range("offset 9 is out of range for t-0: valid offsets are 0..=3"),
            Status::invalid_argument("Error, decoded message length too large: found 1"),
            Status::ok(""),
        ] {
            let before = answer(status.clone());
            let headers = before.headers().clone();
            assert_eq!(rewrite(10)(before).headers(), &headers, "{status:?}");
        }
        let ok = Response::new(());
        assert!(rewrite(10)(ok).headers().is_empty());
    }
}
