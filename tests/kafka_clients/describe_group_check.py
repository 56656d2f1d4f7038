"""confluent-kafka's AdminClient.describe_consumer_groups (librdkafka sends
ConsumerGroupDescribe for KIP-848 groups, DescribeGroups for classic ones)
against Runnel: prints one JSON object with what the client made of the
group. Usage: describe_group_check.py BOOTSTRAP GROUP"""
import json
import sys

from confluent_kafka.admin import AdminClient

bs, group = sys.argv[1:3]
admin = AdminClient({"bootstrap.servers": bs})
d = admin.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)


def partitions(assignment):
    if assignment is None:
        return None
    return sorted([tp.topic, tp.partition] for tp in assignment.topic_partitions)


print(json.dumps({
    "group": d.group_id,
    "type": d.type.name if getattr(d, "type", None) is not None else None,
    "state": d.state.name,
    "assignor": d.partition_assignor,
    "coordinator": d.coordinator.id,
    "members": sorted(({
        "member_id": m.member_id,
        "client_id": m.client_id,
        "assignment": partitions(m.assignment),
        "target_assignment": partitions(getattr(m, "target_assignment", None)),
    } for m in d.members), key=lambda m: m["member_id"]),
}))
