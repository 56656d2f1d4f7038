//! The `Produce` call with its request encoded straight from the batches.
//!
//! A partition that piled up several batches while its previous request was
//! in flight sends them as one `records` field (the proto allows
//! concatenated batches). Building a `ProduceRequest` would first copy them
//! into one buffer, and tonic's prost encoder would then copy that into a
//! buffer it grows by doubling. [`ProduceBody`] instead writes the protobuf
//! encoding of `runnel.v1.ProduceRequest` itself, straight from each
//! batch's `Bytes` into a buffer reserved at the exact size: one copy per
//! byte, the least gRPC allows. The answer is decoded by prost as usual.
//!
//! The unit test checks the bytes against prost's encoding of the same
//! `ProduceRequest`, so a change to the proto that this file misses fails
//! there.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use prost::encoding::{self, WireType};
use runnel_proto::v1::ProduceResponse;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::{ProstCodec, ProstDecoder};

use crate::cluster::request;
use crate::config::MAX_MESSAGE_SIZE;

// Field numbers from proto/runnel/v1/runnel.proto.
const REQUEST_TOPICS: u32 = 1;
const REQUEST_ACKS: u32 = 2;
const REQUEST_TIMEOUT_MS: u32 = 3;
const TOPIC_TOPIC: u32 = 1;
const TOPIC_PARTITIONS: u32 = 2;
const PARTITION_PARTITION: u32 = 1;
const PARTITION_RECORDS: u32 = 2;

/// A `runnel.v1.ProduceRequest` whose `records` are lists of batches.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProduceBody {
    pub topics: Vec<TopicBody>,
    /// `runnel.v1.Acks` as its wire value.
    pub acks: i32,
    pub timeout_ms: u32,
}

/// A `runnel.v1.TopicProduceData`.
#[derive(Debug, Clone)]
pub(crate) struct TopicBody {
    pub topic: Arc<str>,
    pub partitions: Vec<PartitionBody>,
}

/// A `runnel.v1.PartitionProduceData`; `records` is `batches` concatenated.
#[derive(Debug, Clone)]
pub(crate) struct PartitionBody {
    pub partition: u32,
    pub batches: Vec<Bytes>,
}

/// Length of a length-delimited field holding `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len
}

fn put_delimited_header(tag: u32, len: usize, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(len as u64, buf);
}

// As prost does for proto3 scalars, fields with default values are left out.
impl PartitionBody {
    fn records_len(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.partition != 0 {
            len += encoding::uint32::encoded_len(PARTITION_PARTITION, &self.partition);
        }
        let records = self.records_len();
        if records != 0 {
            len += delimited_len(PARTITION_RECORDS, records);
        }
        len
    }

    fn encode(&self, buf: &mut impl BufMut) {
        if self.partition != 0 {
            encoding::uint32::encode(PARTITION_PARTITION, &self.partition, buf);
        }
        let records = self.records_len();
        if records != 0 {
            put_delimited_header(PARTITION_RECORDS, records, buf);
            for batch in &self.batches {
                buf.put_slice(batch);
            }
        }
    }
}

impl TopicBody {
    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if !self.topic.is_empty() {
            len += delimited_len(TOPIC_TOPIC, self.topic.len());
        }
        for p in &self.partitions {
            len += delimited_len(TOPIC_PARTITIONS, p.encoded_len());
        }
        len
    }

    fn encode(&self, buf: &mut impl BufMut) {
        if !self.topic.is_empty() {
            put_delimited_header(TOPIC_TOPIC, self.topic.len(), buf);
            buf.put_slice(self.topic.as_bytes());
        }
        for p in &self.partitions {
            put_delimited_header(TOPIC_PARTITIONS, p.encoded_len(), buf);
            p.encode(buf);
        }
    }
}

impl ProduceBody {
    fn encoded_len(&self) -> usize {
        let mut len = 0;
        for t in &self.topics {
            len += delimited_len(REQUEST_TOPICS, t.encoded_len());
        }
        if self.acks != 0 {
            len += encoding::int32::encoded_len(REQUEST_ACKS, &self.acks);
        }
        if self.timeout_ms != 0 {
            len += encoding::uint32::encoded_len(REQUEST_TIMEOUT_MS, &self.timeout_ms);
        }
        len
    }

    fn encode(&self, buf: &mut impl BufMut) {
        for t in &self.topics {
            put_delimited_header(REQUEST_TOPICS, t.encoded_len(), buf);
            t.encode(buf);
        }
        if self.acks != 0 {
            encoding::int32::encode(REQUEST_ACKS, &self.acks, buf);
        }
        if self.timeout_ms != 0 {
            encoding::uint32::encode(REQUEST_TIMEOUT_MS, &self.timeout_ms, buf);
        }
    }
}

/// Encodes [`ProduceBody`] into a buffer reserved at its exact size.
struct ProduceEncoder;

impl Encoder for ProduceEncoder {
    type Item = ProduceBody;
    type Error = tonic::Status;

    fn encode(&mut self, item: ProduceBody, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf);
        Ok(())
    }
}

/// [`ProduceEncoder`] out, prost's decoder back.
struct ProduceCodec;

impl Codec for ProduceCodec {
    type Encode = ProduceBody;
    type Decode = ProduceResponse;
    type Encoder = ProduceEncoder;
    type Decoder = ProstDecoder<ProduceResponse>;

    fn encoder(&mut self) -> ProduceEncoder {
        ProduceEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<ProduceResponse, ProduceResponse>::default().decoder()
    }
}

/// `runnel.v1.Broker/Produce`, as the generated client would call it.
pub(crate) async fn produce(
    channel: crate::cluster::Svc,
    body: ProduceBody,
    timeout: Duration,
) -> Result<tonic::Response<ProduceResponse>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("service was not ready: {e}")))?;
    let mut req = request(body, timeout);
    req.extensions_mut()
        .insert(tonic::GrpcMethod::new("runnel.v1.Broker", "Produce"));
    grpc.unary(
        req,
        PathAndQuery::from_static("/runnel.v1.Broker/Produce"),
        ProduceCodec,
    )
    .await
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use runnel_proto::v1::{Acks, PartitionProduceData, ProduceRequest, TopicProduceData};

    use super::*;

    fn body(partition0: u32, acks: i32, timeout_ms: u32) -> ProduceBody {
        ProduceBody {
            topics: vec![
                TopicBody {
                    topic: "events".into(),
                    partitions: vec![
                        PartitionBody {
                            partition: partition0,
                            batches: vec![
                                Bytes::from(vec![1u8; 300]),
                                Bytes::from_static(b"second"),
                            ],
                        },
                        PartitionBody {
                            partition: 7,
                            batches: vec![Bytes::from(vec![2u8; 70_000])],
                        },
                    ],
                },
                TopicBody {
                    topic: "t2".into(),
                    partitions: vec![PartitionBody {
                        partition: 1,
                        batches: vec![],
                    }],
                },
            ],
            acks,
            timeout_ms,
        }
    }

    fn expected(body: &ProduceBody) -> ProduceRequest {
        ProduceRequest {
            topics: body
                .topics
                .iter()
                .map(|t| TopicProduceData {
                    topic: t.topic.to_string(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| PartitionProduceData {
                            partition: p.partition,
                            records: p.batches.concat().into(),
                        })
                        .collect(),
                })
                .collect(),
            acks: body.acks,
            timeout_ms: body.timeout_ms,
            transactional_id: String::new(),
        }
    }

    #[test]
    fn encoding_is_prosts_encoding_of_the_concatenated_request() {
        for b in [
            body(0, 0, 0),
            body(3, Acks::All as i32, 30_000),
            body(1, Acks::None as i32, 0),
        ] {
            let mut buf = Vec::new();
            b.encode(&mut buf);
            assert_eq!(buf.len(), b.encoded_len());
            let want = expected(&b);
            assert_eq!(buf, want.encode_to_vec());
            assert_eq!(ProduceRequest::decode(&buf[..]).unwrap(), want);
        }
    }
}
