"""Produce to and consume from Runnel in Python, with nothing but grpcio
and the proto file: gRPC is Runnel's language-neutral protocol.

    python -m venv .venv && .venv/bin/pip install grpcio grpcio-tools
    .venv/bin/python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. \
        proto/runnel/v1/runnel.proto
    PYTHONPATH=. .venv/bin/python examples/python/runnel_demo.py 127.0.0.1:9092 greetings

Records travel as Kafka RecordBatch v2 bytes (docs/storage.md): the
producer builds and CRCs them, the broker stores them as they are.
"""

import struct
import sys
import time

import grpc

from runnel.v1 import runnel_pb2 as pb
from runnel.v1 import runnel_pb2_grpc as rpc


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: fine for a demo."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(n: int) -> bytes:
    """Zigzag varint, as Kafka's records use."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf: bytes, pos: int):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1), pos


def record_batch(values, now_ms: int) -> bytes:
    """One RecordBatch v2 with keyless records."""
    records = bytearray()
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, now_ms, now_ms, -1, -1, -1,
                            len(values)) + bytes(records)
    crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def batch_values(data: bytes):
    """(offset, value) of every record in concatenated batches."""
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + length
        count = struct.unpack_from(">i", data, pos + 57)[0]
        p = pos + 61
        for _ in range(count):
            _, p = read_varint(data, p)  # record length
            p += 1  # attributes
            _, p = read_varint(data, p)  # timestamp delta
            offset_delta, p = read_varint(data, p)
            key_len, p = read_varint(data, p)
            p += max(key_len, 0)
            value_len, p = read_varint(data, p)
            value = data[p:p + value_len]
            p += max(value_len, 0)
            headers, p = read_varint(data, p)
            assert headers == 0, "this demo skips headers"
            yield base_offset + offset_delta, value
        pos = end


def main():
    address, topic = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(address)
    admin, broker = rpc.AdminStub(channel), rpc.BrokerStub(channel)
    try:
        admin.CreateTopics(pb.CreateTopicsRequest(topics=[pb.NewTopic(name=topic, partitions=1)]))
    except grpc.RpcError as e:
        # The Kafka-style code rides in the trailing metadata.
        code = dict(e.trailing_metadata() or ()).get("runnel-error-code")
        if code != "TOPIC_ALREADY_EXISTS":
            raise
    values = [f"hello from python {i}".encode() for i in range(3)]
    produced = broker.Produce(pb.ProduceRequest(
        acks=pb.ACKS_ALL,
        topics=[pb.TopicProduceData(topic=topic, partitions=[
            pb.PartitionProduceData(partition=0, records=record_batch(values, int(time.time() * 1000)))])]))
    result = produced.topics[0].partitions[0]
    assert not result.HasField("error") or result.error.code == pb.NONE, result.error
    print(f"produced {len(values)} records at offset {result.base_offset}")
    fetched = broker.Fetch(pb.FetchRequest(max_wait_ms=500, min_bytes=1, topics=[
        pb.FetchTopic(topic=topic, partitions=[
            pb.FetchPartition(partition=0, fetch_offset=result.base_offset)])]))
    for offset, value in batch_values(fetched.topics[0].partitions[0].records):
        if offset >= result.base_offset:
            print(f"consumed offset {offset}: {value.decode()}")


if __name__ == "__main__":
    main()
