"""One confluent-kafka (librdkafka) group member for the rebalance test:
subscribes to a topic, consumes and commits, and prints a JSON line for
every assignment it is given and every record batch it has committed, until
it has run for `seconds` (then it closes: LeaveGroup) or the file `stop`
exists. Usage: rebalance_check.py BOOTSTRAP TOPIC GROUP NAME SECONDS STOP"""
import json
import os
import sys
import time

from confluent_kafka import Consumer

bs, topic, group, name, seconds, stop = sys.argv[1:7]
protocol = os.environ.get("GROUP_PROTOCOL", "classic")

def say(**kv):
    print(json.dumps(dict(member=name, t=time.time(), **kv)), flush=True)

# What the member owns: the classic protocol revokes and assigns
# everything at each rebalance, the consumer protocol (KIP-848) only what
# changes, so the callbacks keep the set and print it whole.
owned = set()

def assigned(consumer, partitions):
    owned.update(p.partition for p in partitions)
    say(event="assigned", partitions=sorted(owned))

def revoked(consumer, partitions):
    owned.difference_update(p.partition for p in partitions)
    say(event="revoked", partitions=sorted(owned))

conf = {"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "group.protocol": protocol}
if protocol == "classic":
    conf["session.timeout.ms"] = 6000
    conf["heartbeat.interval.ms"] = 500
c = Consumer(conf)
c.subscribe([topic], on_assign=assigned, on_revoke=revoked)
deadline = time.time() + float(seconds)
while time.time() < deadline and not os.path.exists(stop):
    msgs = c.consume(100, 0.3)
    good = [m for m in msgs if not m.error()]
    for m in msgs:
        if m.error():
            say(event="error", error=str(m.error()))
    if good:
        c.commit(asynchronous=False)
        say(event="consumed", values=[m.value().decode() for m in good],
            partitions=sorted({m.partition() for m in good}))
c.close()
say(event="closed")
