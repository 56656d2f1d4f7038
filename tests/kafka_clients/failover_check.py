"""confluent-kafka (librdkafka) through leader failures, for
tests/tests/kafka_failover.rs.

  failover_check.py produce BOOTSTRAP TOPIC PARTITIONS SECONDS
      An idempotent acks=all producer writes unique values ("v<n>" to
      partition n % PARTITIONS) for SECONDS, then flushes. The test kills
      leaders meanwhile; librdkafka must find the new leaders by itself.
      One JSON line per acknowledged message ({"p", "o", "v", "t"}: wall
      clock seconds of the acknowledgement), then a summary line.
  failover_check.py read BOOTSTRAP TOPIC PARTITIONS
      Every partition from the beginning to its high watermark, one JSON
      line per record ({"p", "o", "v"}), then a summary line.
"""
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def produce(bs, topic, partitions, seconds):
    producer = Producer({
        "bootstrap.servers": bs,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # Long enough to ride out a failover; what is not acknowledged by
        # then counts as a failed send, not a loss.
        "message.timeout.ms": 60000,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    errors = []

    def report(err, msg):
        if err:
            errors.append(str(err))
            return
        print(json.dumps({"p": msg.partition(), "o": msg.offset(),
                          "v": msg.value().decode(), "t": time.time()}))

    n, end = 0, time.time() + seconds
    while time.time() < end:
        # About 500 messages a second: enough to be writing at the kill.
        for _ in range(10):
            try:
                producer.produce(topic, value=b"v%d" % n, partition=n % partitions,
                                 on_delivery=report)
                n += 1
            except BufferError:
                break
        producer.poll(0.02)
    left = producer.flush(90)
    print(json.dumps({"summary": True, "sent": n, "unflushed": left,
                      "errors": len(errors), "error_samples": errors[:5]}))


def read(bs, topic, partitions):
    c = Consumer({"bootstrap.servers": bs, "group.id": "failover-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    ends = {}
    for p in range(partitions):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    done = {p for p, high in ends.items() if high == 0}
    count, deadline = 0, time.time() + 120
    while len(done) < partitions and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                if m.offset() >= ends[m.partition()]:
                    done.add(m.partition())
                continue
            raise KafkaException(m.error())
        print(json.dumps({"p": m.partition(), "o": m.offset(), "v": m.value().decode()}))
        count += 1
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    print(json.dumps({"summary": True, "read": count, "ends": ends,
                      "complete": len(done) == partitions}))


if __name__ == "__main__":
    mode, bs, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode == "produce":
        produce(bs, topic, partitions, float(sys.argv[5]))
    else:
        read(bs, topic, partitions)
