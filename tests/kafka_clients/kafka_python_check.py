"""kafka-python (pure Python, classic group protocol) against Runnel:
produce, group consume, commit. Prints one JSON summary."""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer

bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = KafkaProducer(bootstrap_servers=bs, acks="all")
futures = [p.send(topic, key=b"k%d" % i, value=b"v%d" % i) for i in range(n)]
offsets = [f.get(timeout=30).offset for f in futures]
p.close()
c = KafkaConsumer(topic, bootstrap_servers=bs, group_id="kp-group", auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=20000)
seen = []
for m in c:
    seen.append(m.value.decode())
    if len(seen) == n:
        break
c.commit()
committed = sum(c.committed(tp) or 0 for tp in c.assignment())
c.close()
print(json.dumps({"acked": len(offsets), "consumed": len(seen), "distinct": len(set(seen)),
                  "committed": committed}))
