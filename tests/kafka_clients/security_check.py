"""confluent-kafka (librdkafka) and, where librdkafka cannot do it,
kafka-python against a secured Runnel broker, for
tests/tests/kafka_security.rs.

Reads one JSON object on stdin:

  {"bootstrap": "127.0.0.1:9092",
   "config": {...},            # librdkafka settings for every case
   "cases": [{"id": "...", "op": "...", "config": {...}, ...}, ...]}

Each case runs on clients of its own (so one case's credentials or
failures never leak into the next) with the shared config, its own
"config" over it, and, when it has "oauth_token", an OAUTHBEARER token
callback handing that token to librdkafka. Ops and their fields:

  connect                                   Metadata until answered or refused
  produce         topic, count              produce to partition 0, flush
  consume         topic, count              assign partition 0 from the beginning (kafka-python)
  commit          topic, group              commit offset 1 of partition 0, from outside the group (kafka-python)
  join            topic, group              subscribe and wait for an assignment
  create_topic    topic
  delete_topic    topic
  describe_topic_configs   topic
  describe_cluster_configs                  a broker resource (the cluster-wide configs)
  create_acls     bindings: [binding]       one result per binding
  describe_acls   filter: binding filter    ("client": "kafka-python" to see refusals)
  delete_acls     filters: [binding filter] one result per filter

A binding is {"restype", "name", "pattern", "principal", "host", "op",
"perm"} with confluent-kafka's enum names (TOPIC, LITERAL, WRITE, ALLOW,
...); in a filter name, principal and host may be null.

Prints one JSON line per case: {"id", "outcome": "ok" or the Kafka error
name librdkafka reports (TOPIC_AUTHORIZATION_FAILED, _AUTHENTICATION,
...), "detail": its message, "errors": names passed to error_cb, plus
op-specific fields}, then {"summary": true}. A case never raises: what
went wrong is its outcome, which the Rust test compares.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewTopic, ResourcePatternType,
                                   ResourceType)

# How long one case may wait for an answer that should come at once: an
# authentication or authorization refusal is immediate, so this bounds
# only the cases that go wrong.
TIMEOUT = 10


def name_of(e):
    """The Kafka error name of whatever an operation raised or returned."""
    if isinstance(e, KafkaException):
        e = e.args[0]
    if isinstance(e, KafkaError):
        return e.name(), e.str()
    return type(e).__name__, str(e)


def binding(b):
    return AclBinding(ResourceType[b["restype"]], b["name"], ResourcePatternType[b["pattern"]],
                      b["principal"], b["host"], AclOperation[b["op"]],
                      AclPermissionType[b["perm"]])


def binding_filter(f):
    return AclBindingFilter(ResourceType[f["restype"]], f.get("name"),
                            ResourcePatternType[f["pattern"]], f.get("principal"), f.get("host"),
                            AclOperation[f["op"]], AclPermissionType[f["perm"]])


def shown(b):
    """An AclBinding as the JSON the test compares."""
    return {"restype": b.restype.name, "name": b.name, "pattern": b.resource_pattern_type.name,
            "principal": b.principal, "host": b.host, "op": b.operation.name,
            "perm": b.permission_type.name}


def kafka_python_config(conf, token):
    """kafka-python's names for the librdkafka settings a case uses."""
    names = {"bootstrap.servers": "bootstrap_servers", "ssl.ca.location": "ssl_cafile",
             "ssl.certificate.location": "ssl_certfile", "ssl.key.location": "ssl_keyfile",
             "sasl.username": "sasl_plain_username", "sasl.password": "sasl_plain_password",
             "sasl.mechanisms": "sasl_mechanism"}
    out = {names[k]: v for k, v in conf.items() if k in names}
    out["security_protocol"] = conf.get("security.protocol", "PLAINTEXT").upper()
    if token is not None:
        from kafka.net.sasl.oauth import AbstractTokenProvider

        class Token(AbstractTokenProvider):
            def token(self):
                return token
        out["sasl_oauth_token_provider"] = Token()
    return out


def run(case, conf, errors):
    op = case["op"]
    out = {}
    if op == "connect":
        # Metadata until it is answered or librdkafka reports why not
        # (error_cb is served by poll, so poll between attempts).
        p = Producer(conf)
        deadline = time.time() + TIMEOUT
        while True:
            try:
                out["topics"] = sorted(p.list_topics(timeout=1).topics)
                break
            except KafkaException as e:
                p.poll(0.1)
                # The most telling reason first: a refused SASL exchange or
                # TLS handshake also breaks the connection (_TRANSPORT).
                for reason in ("_AUTHENTICATION", "_SSL", "_TRANSPORT"):
                    failed = [e for e in errors if e[0] == reason]
                    if failed:
                        return {**out, "outcome": reason, "detail": failed[0][1]}
                if time.time() > deadline:
                    raise e
    elif op == "produce":
        p = Producer({**conf, "acks": "all", "message.timeout.ms": TIMEOUT * 1000})
        results = []

        def report(err, msg):
            results.append(err if err else msg.offset())
        for i in range(case["count"]):
            p.produce(case["topic"], value=b"%s-%d" % (case["id"].encode(), i), partition=0,
                      on_delivery=report)
        p.flush(TIMEOUT + 5)
        errs = [r for r in results if isinstance(r, KafkaError)]
        out["offsets"] = [r for r in results if not isinstance(r, KafkaError)]
        if len(results) < case["count"]:
            return {**out, "outcome": "no_delivery_report", "detail": str(results)}
        if errs:
            raise KafkaException(errs[0])
    elif op == "consume":
        # kafka-python, because it has assign-only consumers without a
        # group: librdkafka insists on a group.id and then looks its
        # coordinator up, so a consume would also need the group's ACL.
        # Here only the topic's are involved (Describe for the offsets,
        # Read for the fetch).
        from kafka import KafkaConsumer, TopicPartition as KTopicPartition
        from kafka.errors import KafkaError as KError
        c = KafkaConsumer(group_id=None, enable_auto_commit=False,
                          request_timeout_ms=TIMEOUT * 1000,
                          **kafka_python_config(conf, case.get("oauth_token")))
        tp = KTopicPartition(case["topic"], 0)
        values, deadline = [], time.time() + TIMEOUT
        try:
            c.assign([tp])
            c.seek_to_beginning(tp)
            # Resolve the position first: poll only logs a refused
            # ListOffsets and retries, position raises it.
            out["position"] = c.position(tp, timeout_ms=TIMEOUT * 1000)
            while len(values) < case["count"] and time.time() < deadline:
                for records in c.poll(timeout_ms=500).values():
                    values.extend(r.value.decode() for r in records)
        except KError as e:
            # kafka-python's errors carry Kafka's name as `message`.
            return {**out, "values": values,
                    "outcome": getattr(e, "message", type(e).__name__), "detail": str(e)}
        finally:
            c.close()
        out["values"] = values
        if len(values) < case["count"]:
            return {**out, "outcome": "too_few_records", "detail": str(values)}
    elif op == "commit":
        # kafka-python: librdkafka, whose coordinator lookup is refused,
        # keeps waiting for a coordinator until the session times out
        # instead of reporting the refusal to a commit.
        from kafka import KafkaConsumer, TopicPartition as KTopicPartition
        from kafka.errors import KafkaError as KError
        from kafka.structs import OffsetAndMetadata
        c = KafkaConsumer(group_id=case["group"], enable_auto_commit=False,
                          request_timeout_ms=TIMEOUT * 1000,
                          **kafka_python_config(conf, case.get("oauth_token")))
        try:
            c.commit({KTopicPartition(case["topic"], 0): OffsetAndMetadata(1, "", -1)})
        except KError as e:
            return {**out, "outcome": getattr(e, "message", type(e).__name__), "detail": str(e)}
        finally:
            c.close()
    elif op == "join":
        c = Consumer({**conf, "group.id": case["group"], "enable.auto.commit": False,
                      "session.timeout.ms": 6000})
        assigned = []
        c.subscribe([case["topic"]], on_assign=lambda _c, parts: assigned.extend(parts))
        deadline = time.time() + TIMEOUT * 2
        try:
            while not assigned and time.time() < deadline:
                m = c.poll(0.5)
                if m is not None and m.error():
                    raise KafkaException(m.error())
        finally:
            c.close()
        out["assigned"] = [p.partition for p in assigned]
        if not assigned:
            return {**out, "outcome": "not_assigned", "detail": "no assignment in time"}
    else:
        # The AdminClient must outlive its futures: one that is collected
        # fails them with _DESTROY.
        admin = AdminClient(conf)
        out.update(run_admin(case, admin, conf))
        if "outcome" in out:
            return out
    return {**out, "outcome": "ok", "detail": ""}


def run_admin(case, admin, admin_conf):
    op = case["op"]
    out = {}
    if op == "create_topic":
        t = case["topic"]
        admin.create_topics([NewTopic(t, 1, 1)], request_timeout=TIMEOUT)[t].result()
    elif op == "delete_topic":
        t = case["topic"]
        admin.delete_topics([t], request_timeout=TIMEOUT)[t].result()
    elif op in ("describe_topic_configs", "describe_cluster_configs"):
        # librdkafka refuses Kafka's cluster-wide resource (broker "") and
        # sends a broker resource to that broker: name the one broker.
        # Runnel answers any broker resource with the cluster-wide configs.
        if op == "describe_topic_configs":
            res = ConfigResource("topic", case["topic"])
        else:
            broker = next(iter(admin.list_topics(timeout=TIMEOUT).brokers))
            res = ConfigResource("broker", str(broker))
        configs = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result()
        out["configs"] = len(configs)
    elif op == "create_acls":
        wanted = [binding(b) for b in case["bindings"]]
        futures = admin.create_acls(wanted, request_timeout=TIMEOUT)
        results = []
        for b in wanted:
            try:
                futures[b].result()
                results.append({"outcome": "ok"})
            except Exception as e:  # each binding has its own result
                name, detail = name_of(e)
                results.append({"outcome": name, "detail": detail})
        out["results"] = results
        failed = [r for r in results if r["outcome"] != "ok"]
        if failed:
            out.update(outcome=failed[0]["outcome"], detail=failed[0]["detail"])
    elif op == "describe_acls" and case.get("client") == "kafka-python":
        # librdkafka drops DescribeAcls' top-level error code (up to 2.16 at
        # least): a refusal arrives as an empty listing. kafka-python
        # raises it, so the ACL matrix asks with kafka-python.
        from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType,
                                 ACLResourcePatternType, KafkaAdminClient,
                                 ResourcePatternFilter, ResourceType as KResourceType)
        from kafka.errors import KafkaError as KError
        f = case["filter"]
        kadmin = KafkaAdminClient(request_timeout_ms=TIMEOUT * 1000,
                                  **kafka_python_config(admin_conf, case.get("oauth_token")))
        try:
            found = kadmin.describe_acls(ACLFilter(
                principal=f.get("principal"), host=f.get("host"),
                operation=ACLOperation[f["op"]], permission_type=ACLPermissionType[f["perm"]],
                resource_pattern=ResourcePatternFilter(KResourceType[f["restype"]], f.get("name"),
                                                       ACLResourcePatternType[f["pattern"]])))
            out["bindings"] = len(found)
        except KError as e:
            out.update(outcome=getattr(e, "message", type(e).__name__), detail=str(e))
        finally:
            kadmin.close()
    elif op == "describe_acls":
        found = admin.describe_acls(binding_filter(case["filter"]),
                                    request_timeout=TIMEOUT).result()
        out["bindings"] = sorted((shown(b) for b in found), key=json.dumps)
    elif op == "delete_acls":
        filters = [binding_filter(f) for f in case["filters"]]
        futures = admin.delete_acls(filters, request_timeout=TIMEOUT)
        out["deleted"] = [sorted((shown(b) for b in futures[f].result()), key=json.dumps)
                          for f in filters]
    else:
        raise ValueError("unknown op %r" % op)
    return out


def main():
    spec = json.load(sys.stdin)
    for case in spec["cases"]:
        errors = []
        conf = {"bootstrap.servers": spec["bootstrap"],
                # Fail fast rather than retrying a refused connection for
                # the default minute.
                "socket.timeout.ms": TIMEOUT * 1000,
                "error_cb": lambda e: errors.append((e.name(), e.str())),
                # Refusals are the point here; librdkafka would log every
                # reconnection after one. error_cb still gets them.
                "log_level": 0,
                **spec.get("config", {}), **case.get("config", {})}
        token = case.get("oauth_token")
        if token is not None:
            # The broker's bearer tokens are opaque strings, not JWTs:
            # hand librdkafka the token as it is (principal and expiry are
            # librdkafka's bookkeeping; the broker reads only the token).
            conf["oauth_cb"] = lambda _config: (token, time.time() + 3600, "runnel", {})
        started = time.time()
        try:
            result = run(case, conf, errors)
        except Exception as e:  # the outcome is the test's to judge
            name, detail = name_of(e)
            result = {"outcome": name, "detail": detail}
        result.update(id=case["id"], errors=sorted({name for name, _ in errors}),
                      seconds=round(time.time() - started, 2))
        print(json.dumps(result), flush=True)
    print(json.dumps({"summary": True}))


if __name__ == "__main__":
    main()
