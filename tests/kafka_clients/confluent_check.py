"""confluent-kafka (librdkafka) against a Runnel broker: AdminClient, an
idempotent acks=all producer, a subscribed group consumer that commits,
and a second consumer that resumes from the committed offsets.
Prints one JSON summary; the Rust test asserts on it."""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewPartitions, NewTopic, OffsetSpec)

bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
admin = AdminClient({"bootstrap.servers": bs})
admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "3600000"})])[topic].result()
admin.create_partitions([NewPartitions(topic, 6)])[topic].result()
out["partitions"] = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
res = ConfigResource("topic", topic)
out["retention_before"] = admin.describe_configs([res])[res].result()["retention.ms"].value
alter = ConfigResource("topic", topic, incremental_configs=[
    ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
admin.incremental_alter_configs([alter])[alter].result()
out["retention_after"] = admin.describe_configs([res])[res].result()["retention.ms"].value
out["cluster_brokers"] = len(admin.describe_cluster().result().nodes)

producer = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all"})
errors = []
acked = []
def report(err, msg):
    (errors if err else acked).append(str(err) if err else msg.value().decode())
for i in range(n):
    producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, headers={"i": str(i)}, on_delivery=report)
producer.flush(30)
out["acked"] = len(acked)
out["produce_errors"] = errors[:5]

def consume(group, limit):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    values, deadline = [], time.time() + 60
    while len(values) < limit and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            out.setdefault("consume_errors", []).append(str(m.error()))
            continue
        values.append(m.value().decode())
    return c, values

c, first = consume("checker", n // 2)
c.commit(asynchronous=False)
committed = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
out["committed_sum"] = sum(max(tp.offset, 0) for tp in committed)
c.close()
c2, rest = consume("checker", n - len(first))
c2.close()
out["first"] = len(first)
out["rest"] = len(rest)
out["distinct"] = len(set(first) | set(rest))
out["duplicates"] = len(first) + len(rest) - out["distinct"]
# DeleteRecords: the lower half of the fullest partition goes; earliest
# moves there, a consumer from the beginning starts there, and past the
# high watermark is refused.
def offsets(spec):
    asked = {TopicPartition(topic, p): spec for p in range(6)}
    return {tp.partition: r.offset for tp, r in
            ((tp, f.result()) for tp, f in admin.list_offsets(asked).items())}
latest = offsets(OffsetSpec.latest())
p = max(latest, key=latest.get)
cut = latest[p] // 2
deleted = admin.delete_records([TopicPartition(topic, p, cut)])
out["low_watermark"] = next(iter(deleted.values())).result().low_watermark
out["earliest_after_delete"] = offsets(OffsetSpec.earliest())[p]
out["cut"] = cut
c3 = Consumer({"bootstrap.servers": bs, "group.id": "after-delete", "enable.auto.commit": False})
c3.assign([TopicPartition(topic, p, -2)])  # OFFSET_BEGINNING
first_offset, deadline = None, time.time() + 30
while first_offset is None and time.time() < deadline:
    m = c3.poll(0.5)
    if m is not None and not m.error():
        first_offset = m.offset()
c3.close()
out["first_offset_after_delete"] = first_offset
try:
    next(iter(admin.delete_records([TopicPartition(topic, p, latest[p] + 10)]).values())).result()
    out["delete_past_hw"] = "accepted"
except KafkaException as e:
    out["delete_past_hw"] = e.args[0].name()

groups = admin.list_consumer_groups().result().valid
out["groups"] = sorted(g.group_id for g in groups)
admin.delete_topics([topic])[topic].result()
out["deleted"] = topic not in admin.list_topics(timeout=10).topics
print(json.dumps(out))
