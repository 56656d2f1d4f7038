#!/usr/bin/env python3
"""Checks the Helm chart (charts/runnel) and the Dockerfile, run by
scripts/test.sh inside the virtualenv it makes:

    target/venv/bin/python scripts/check-chart.py --operator-bin target/debug/runnel-operator

1. The chart's appVersion is the workspace version.
2. Lint (Helm's own linter, strict) and render (Helm's engine, through the
   helm-python-sdk package, which embeds Helm's Go library) with the default
   values and every value set in charts/runnel/ci/*-values.yaml.
3. Every rendered object of a built-in kind, and every CRD in crds/, is
   validated against the Kubernetes 1.33 OpenAPI schemas with
   kubernetes-validate in strict mode (unknown fields fail).
   kubernetes-validate has no schema for custom kinds and, even with
   --strict, only warns about them and passes, so they are handled here:
   - runnel.dev (Cluster, Topic, User): written to charts/runnel/ci/rendered/
     <set>.yaml and compared (drift fails; `--update` rewrites them). The
     operator's test `chart_resources_are_valid` deserializes those files
     into its Rust types, refuses unknown fields and runs the CRDs' CEL
     rules on them.
   - monitoring.coreos.com ServiceMonitor: no schema is available offline;
     its fields are checked against what the chart's metrics Service offers
     (selector, port name).
4. What each value set must produce (RBAC kind and namespace, leader
   election flags and Lease Role, Cluster metadata store and Kafka
   listener, NOTES addresses, the Kafka port in the NetworkPolicy,
   Topics and Users, the brokers' TokenReview binding with
   serviceAccountTokens).
5. The operator binary accepts the Deployment's arguments: `runnel-operator
   <args> --help` parses (and value-checks) every argument before printing
   help, so an unknown flag or a bad value fails.
6. Invalid values are refused by values.schema.json at install time.
7. The Dockerfile builds the workspace's packages, copies binaries that
   exist, runs as the chart's user and exposes the ports the chart and the
   operator use; the binaries link only against libraries the distroless
   cc base has.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import re
import subprocess
import sys
import tomllib

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "runnel"
CI = CHART / "ci"
RENDERED = CI / "rendered"
KUBE_VERSION = "1.33.0"
RELEASE = "runnel"
NAMESPACE = "runnel-system"

failures: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        failures.append(message)


def workspace_version() -> str:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    return cargo["workspace"]["package"]["version"]


def value_sets() -> dict[str, dict]:
    sets = {"default": {}}
    for path in sorted(CI.glob("*-values.yaml")):
        sets[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text()) or {}
    return sets


def objects_of(rendered: dict[str, str]) -> list[dict]:
    objects = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("_template", template)
                objects.append(doc)
    return objects


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def validate_builtin(obj: dict, where: str) -> None:
    body = {k: v for k, v in obj.items() if k != "_template"}
    try:
        kubernetes_validate.validate(body, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        failures.append(f"{where}: {obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")
    except kubernetes_validate.SchemaNotFoundError as e:
        failures.append(f"{where}: no Kubernetes schema for {obj['kind']}: {e}")


def check_service_monitor(monitor: dict, objects: list[dict], where: str) -> None:
    """No ServiceMonitor schema offline: check it against the Service it scrapes."""
    spec = monitor["spec"]
    check(set(spec) <= {"selector", "namespaceSelector", "endpoints"}, f"{where}: ServiceMonitor fields {sorted(spec)}")
    wanted = spec["selector"]["matchLabels"]
    services = [
        s
        for s in find(objects, "Service")
        if wanted.items() <= s["metadata"].get("labels", {}).items()
    ]
    check(len(services) == 1, f"{where}: ServiceMonitor selects {len(services)} Services")
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        check(endpoint["port"] in ports, f"{where}: ServiceMonitor port {endpoint['port']} not in {ports}")
        check(endpoint["path"] == "/metrics", f"{where}: ServiceMonitor path {endpoint['path']}")
    check(
        spec["namespaceSelector"] == {"matchNames": [services[0]["metadata"]["namespace"]]} if services else False,
        f"{where}: ServiceMonitor namespaceSelector",
    )


def check_semantics(name: str, values: dict, objects: list[dict], notes: str) -> None:
    """What each value set must produce."""
    where = f"[{name}]"
    merged = merged_values(values)
    op = merged["operator"]
    watch = op["watchNamespace"]
    deployment = find(objects, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    leader = op["leaderElection"].get("enabled")  # Helm drops null values
    if leader is None:
        leader = op["replicas"] > 1
    check(f"--leader-election={str(leader).lower()}" in args, f"{where}: --leader-election in {args}")
    strategy = deployment["spec"]["strategy"]["type"]
    check(strategy == ("RollingUpdate" if leader else "Recreate"), f"{where}: strategy {strategy}")
    check((f"--namespace={watch}" in args) == bool(watch), f"{where}: --namespace in {args}")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    check(env.get("POD_NAME") == "metadata.name", f"{where}: POD_NAME env")
    check(env.get("POD_NAMESPACE") == "metadata.namespace", f"{where}: POD_NAMESPACE env")
    sc = container["securityContext"]
    check(
        sc.get("readOnlyRootFilesystem") is True
        and sc.get("runAsNonRoot") is True
        and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"]
        and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{where}: container securityContext {sc}",
    )
    check(container["resources"].get("requests"), f"{where}: operator has no resource requests")
    probes = {p: container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    check(probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}, f"{where}: probes {probes}")
    tag = merged["image"]["tag"] or app_version
    check(container["image"] == f"{merged['image']['repository']}:{tag}", f"{where}: image {container['image']}")
    broker_tag = op["brokerImage"]["tag"] or app_version
    check(
        f"--broker-image={op['brokerImage']['repository']}:{broker_tag}" in args,
        f"{where}: --broker-image in {args}",
    )

    rbac = merged["rbac"]["create"]
    roles = find(objects, "Role") + find(objects, "ClusterRole")
    operator_roles = [r for r in roles if not r["metadata"]["name"].endswith("-leader-election")]
    lease_roles = [r for r in roles if r["metadata"]["name"].endswith("-leader-election")]
    if not rbac:
        check(not roles and not find(objects, "RoleBinding") and not find(objects, "ClusterRoleBinding"), f"{where}: RBAC rendered with rbac.create=false")
    else:
        check(len(operator_roles) == 1, f"{where}: {len(operator_roles)} operator roles")
        role = operator_roles[0]
        if watch:
            check(role["kind"] == "Role" and role["metadata"]["namespace"] == watch, f"{where}: namespaced Role in {watch}")
            operator_cluster_bindings = [b for b in find(objects, "ClusterRoleBinding") if b["roleRef"]["name"] != AUTH_DELEGATOR]
            check(not find(objects, "ClusterRole") and not operator_cluster_bindings, f"{where}: cluster-wide RBAC with watchNamespace")
        else:
            check(role["kind"] == "ClusterRole", f"{where}: ClusterRole without watchNamespace")
        granted = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        check(granted == OPERATOR_PERMISSIONS, f"{where}: operator RBAC differs: extra {sorted(granted - OPERATOR_PERMISSIONS)}, missing {sorted(OPERATOR_PERMISSIONS - granted)}")
        check(not any("*" in str(rule) for rule in role["rules"]), f"{where}: wildcard in RBAC")
        check(len(lease_roles) == (1 if leader else 0), f"{where}: {len(lease_roles)} Lease roles with leader election {leader}")
        for lease_role in lease_roles:
            check(lease_role["metadata"]["namespace"] == NAMESPACE, f"{where}: Lease Role outside the release namespace")
            lease_name = next(a for a in args if a.startswith("--lease-name=")).split("=", 1)[1]
            names = [n for rule in lease_role["rules"] for n in rule.get("resourceNames", [])]
            check(names == [lease_name], f"{where}: Lease Role names {names}, operator uses {lease_name}")
        bindings = find(objects, "RoleBinding") + find(objects, "ClusterRoleBinding")
        sa = pod["serviceAccountName"]
        for binding in bindings:
            if binding["roleRef"]["name"] == AUTH_DELEGATOR:
                continue  # the brokers' binding, checked below
            check(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}], f"{where}: binding subjects {binding['subjects']}")
    operator_accounts = [a for a in find(objects, "ServiceAccount") if a["metadata"]["namespace"] == NAMESPACE and a["metadata"]["name"] == pod["serviceAccountName"]]
    check(len(operator_accounts) == (1 if merged["serviceAccount"]["create"] else 0), f"{where}: operator ServiceAccount rendered")

    check(bool(find(objects, "ServiceMonitor")) == merged["serviceMonitor"]["enabled"], f"{where}: ServiceMonitor")
    check(bool(find(objects, "NetworkPolicy")) == merged["networkPolicy"]["enabled"], f"{where}: NetworkPolicy")

    resource_ns = watch or NAMESPACE
    clusters = find(objects, "Cluster")
    if merged["cluster"]["enabled"]:
        check(len(clusters) == 1, f"{where}: {len(clusters)} Clusters")
        cluster = clusters[0]
        cname = cluster["metadata"]["name"]
        check(cluster["metadata"]["namespace"] == resource_ns, f"{where}: Cluster namespace")
        store = cluster["spec"]["metadataStore"]
        external = merged["cluster"]["metadataStore"]["external"]["endpoints"]
        check(list(store) == (["external"] if external else ["managed"]), f"{where}: metadataStore {store}")
        check(f"{cname}-client.{resource_ns}.svc:9092" in notes, f"{where}: NOTES lacks the bootstrap address")
        if merged["networkPolicy"]["enabled"]:
            policies = {p["metadata"]["name"] for p in find(objects, "NetworkPolicy")}
            wanted = {f"{cname}-broker"} | ({f"{cname}-etcd"} if not external else set())
            check(wanted <= policies, f"{where}: NetworkPolicies {policies}")
        check_kafka(where, merged, cluster, objects, notes, resource_ns)
        security = merged["cluster"].get("security") or {}
        check(cluster["spec"].get("security", {}) == security, f"{where}: Cluster spec.security {cluster['spec'].get('security')} for {security} in values")
        check_broker_token_review(where, merged, cluster, objects, resource_ns)
    else:
        check(not clusters, f"{where}: Cluster rendered with cluster.enabled=false")
    if not merged["cluster"]["enabled"] or not token_review(merged):
        check(
            not any(b["roleRef"]["name"] == AUTH_DELEGATOR for b in find(objects, "ClusterRoleBinding")),
            f"{where}: {AUTH_DELEGATOR} bound without cluster.security.authentication.serviceAccountTokens",
        )
    topics = find(objects, "Topic")
    check(len(topics) == len(merged["topics"]), f"{where}: {len(topics)} Topics for {len(merged['topics'])} in values")
    for topic in topics:
        check(topic["metadata"]["namespace"] == resource_ns, f"{where}: Topic namespace")
    users = find(objects, "User")
    check(len(users) == len(merged["users"]), f"{where}: {len(users)} Users for {len(merged['users'])} in values")
    for user in users:
        check(user["metadata"]["namespace"] == resource_ns, f"{where}: User namespace")
        check(user["spec"]["cluster"], f"{where}: User {user['metadata']['name']} names no cluster")
    keep = merged["keepResources"]
    for obj in clusters + topics + users:
        policy = obj["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
        check((policy == "keep") == keep, f"{where}: {obj['kind']} resource-policy {policy}")
    check("kind: Topic" in notes, f"{where}: NOTES do not show how to create a Topic")


def check_kafka(where: str, merged: dict, cluster: dict, objects: list[dict], notes: str, resource_ns: str) -> None:
    """`cluster.kafka` becomes the Cluster's spec.kafka; its bootstrap address
    is in the NOTES; a Kafka-only port is open in the brokers' NetworkPolicy
    (and no other port is)."""
    kafka = merged["cluster"]["kafka"]
    wanted = {"enabled": kafka["enabled"]}
    if kafka["port"]:
        wanted["port"] = kafka["port"]
    if isinstance(kafka.get("tls"), bool):
        wanted["tls"] = kafka["tls"]
    if kafka["authentication"]["type"]:
        wanted["authentication"] = {"type": kafka["authentication"]["type"]}
    check(cluster["spec"].get("kafka") == wanted, f"{where}: Cluster spec.kafka {cluster['spec'].get('kafka')}, wanted {wanted}")
    cname = cluster["metadata"]["name"]
    dedicated = kafka["port"] if kafka["enabled"] and kafka["port"] else None
    if kafka["enabled"]:
        address = f"{cname}-client.{resource_ns}.svc:{dedicated or 9092}"
        check(address in notes and "status.kafkaBootstrap" in notes, f"{where}: NOTES lack the Kafka bootstrap {address}")
    else:
        check("Kafka clients" not in notes, f"{where}: NOTES offer Kafka with cluster.kafka.enabled=false")
    if merged["networkPolicy"]["enabled"]:
        policy = find(objects, "NetworkPolicy", f"{cname}-broker")[0]
        clients = policy["spec"]["ingress"][0]
        ports = [p["port"] for p in clients["ports"]]
        check(ports == [9092] + ([dedicated] if dedicated else []), f"{where}: broker NetworkPolicy client ports {ports}, Kafka port {dedicated}")


def token_review(merged: dict) -> bool:
    security = merged["cluster"].get("security") or {}
    return bool(security.get("authentication", {}).get("serviceAccountTokens"))


def check_broker_token_review(where: str, merged: dict, cluster: dict, objects: list[dict], resource_ns: str) -> None:
    """With serviceAccountTokens the brokers run as a ServiceAccount bound to
    system:auth-delegator (to create TokenReviews), and nothing else is."""
    delegations = [b for b in find(objects, "ClusterRoleBinding") if b["roleRef"]["name"] == AUTH_DELEGATOR]
    named = (merged["cluster"].get("template") or {}).get("serviceAccountName")
    account = cluster["spec"].get("template", {}).get("serviceAccountName")
    if not token_review(merged):
        check(account == named, f"{where}: broker serviceAccountName {account} without serviceAccountTokens")
        return
    cname = cluster["metadata"]["name"]
    wanted = named or f"{cname}-broker"
    check(account == wanted, f"{where}: broker serviceAccountName {account}, wanted {wanted}")
    created = [a for a in find(objects, "ServiceAccount") if a["metadata"]["namespace"] == resource_ns and a["metadata"]["name"] == wanted]
    check(len(created) == (0 if named else 1), f"{where}: {len(created)} broker ServiceAccounts {wanted} (template.serviceAccountName: {named})")
    # Kept with the Cluster: its brokers outlive an uninstall.
    keep = merged["keepResources"]
    for obj in created + delegations:
        policy = obj["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
        check((policy == "keep") == keep, f"{where}: {obj['kind']}/{obj['metadata']['name']} resource-policy {policy}")
    if not merged["rbac"]["create"]:
        check(not delegations, f"{where}: {AUTH_DELEGATOR} bound with rbac.create=false")
        return
    check(len(delegations) == 1, f"{where}: {len(delegations)} {AUTH_DELEGATOR} bindings")
    for binding in delegations:
        check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUTH_DELEGATOR}, f"{where}: roleRef {binding['roleRef']}")
        check(binding["subjects"] == [{"kind": "ServiceAccount", "name": wanted, "namespace": resource_ns}], f"{where}: {AUTH_DELEGATOR} subjects {binding['subjects']}")
        name = binding["metadata"]["name"]
        check(resource_ns in name and cname in name, f"{where}: {AUTH_DELEGATOR} binding {name} lacks the namespace or Cluster name")


# The built-in ClusterRole that may create TokenReviews (and
# SubjectAccessReviews): what brokers verifying ServiceAccount tokens need.
AUTH_DELEGATOR = "system:auth-delegator"

# The operator's permissions, from its code (docs/install.md explains each).
OPERATOR_PERMISSIONS = {
    *(("runnel.dev", "clusters", v) for v in ("get", "list", "watch")),
    *(("runnel.dev", "topics", v) for v in ("list", "watch", "patch")),
    *(("runnel.dev", "consumergroups", v) for v in ("list", "watch")),
    *(("runnel.dev", "users", v) for v in ("list", "watch", "patch")),
    *(("runnel.dev", f"{r}/status", "patch") for r in ("clusters", "topics", "consumergroups", "users")),
    *(("apps", "statefulsets", v) for v in ("get", "list", "watch", "create", "patch")),
    *(("", r, v) for r in ("configmaps", "services") for v in ("get", "create", "patch")),
    *(("policy", "poddisruptionbudgets", v) for v in ("get", "create", "patch")),
    *(("", "pods", v) for v in ("list", "delete")),
    *(("", "secrets", v) for v in ("get", "create", "patch", "delete")),
    *(("cert-manager.io", "certificates", v) for v in ("get", "create", "patch")),
    *(("events.k8s.io", "events", v) for v in ("create", "patch")),
}


def merged_values(values: dict) -> dict:
    return chart.merge_values(copy.deepcopy(values))


def check_operator_args(name: str, objects: list[dict], operator_bin: pathlib.Path) -> None:
    container = find(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    result = subprocess.run([operator_bin, *args, "--help"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        failures.append(f"[{name}] runnel-operator refuses {args}: {result.stderr.strip()}")
        return
    for arg in args:
        flag = arg.split("=", 1)[0]
        check(re.search(rf"^\s+{re.escape(flag)}\b", result.stdout, re.M) is not None, f"[{name}] {flag} not in runnel-operator --help")


INVALID_VALUES = {
    "wrong type (replicas a string)": {"operator": {"replicas": "two"}},
    "unknown top-level key": {"operater": {"replicas": 2}},
    "unknown nested key": {"cluster": {"storage": {"sise": "10Gi"}}},
    "etcd members not 1, 3 or 5": {"cluster": {"metadataStore": {"managed": {"replicas": 2}}}},
    "etcd endpoint not a URL": {"cluster": {"metadataStore": {"external": {"endpoints": ["etcd:2379"]}}}},
    "resync without a unit": {"operator": {"resync": "60"}},
    "watchNamespace not a DNS label": {"operator": {"watchNamespace": "Apps_1"}},
    "topic without a name": {"topics": [{"partitions": 3}]},
    "topic with zero partitions": {"topics": [{"name": "t", "partitions": 0}]},
    "topic config value not a string": {"topics": [{"name": "t", "config": {"retention.ms": 1000}}]},
    "broker config value not a string": {"cluster": {"config": {"num.partitions": 6}}},
    "storage size not a quantity": {"cluster": {"storage": {"size": "ten gigs"}}},
    "pull policy misspelled": {"image": {"pullPolicy": "Sometimes"}},
    "unknown TLS clientAuth": {"cluster": {"security": {"tls": {"clientAuth": "Optional"}}}},
    "super user without User: prefix": {"cluster": {"security": {"tls": {}, "authorization": {"superUsers": ["admin"]}}}},
    "authorization without TLS": {"cluster": {"security": {"authorization": {}}}},
    "certificate validity out of range": {"cluster": {"security": {"tls": {"certificates": {"validityDays": 1}}}}},
    "CertManager issuer without issuerRef": {"cluster": {"security": {"tls": {"certificates": {"issuer": "CertManager"}}}}},
    "unknown security key": {"cluster": {"security": {"tls": {"clientAuthentication": "Required"}}}},
    "Kafka port on the gRPC port": {"cluster": {"kafka": {"port": 9092}}},
    "Kafka port out of range": {"cluster": {"kafka": {"port": 70000}}},
    "unknown Kafka authentication type": {"cluster": {"kafka": {"authentication": {"type": "ScramSha512"}}}},
    "unknown Kafka key": {"cluster": {"kafka": {"listen": "0.0.0.0:9093"}}},
    "user without a name": {"users": [{"authentication": {"type": "Tls"}}]},
    "user name not a DNS name": {"users": [{"name": "Orders_App"}]},
    "unknown ACL operation": {"users": [{"name": "u", "acls": [{"resource": {"type": "Topic", "name": "t"}, "operations": ["Produce"]}]}]},
    "ServiceAccount user without serviceAccount": {"users": [{"name": "u", "authentication": {"type": "ServiceAccount"}}]},
}


def check_invalid_values() -> None:
    for label, values in INVALID_VALUES.items():
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmValuesError:
            continue
        failures.append(f"invalid values accepted ({label}): {values}")


def check_dockerfile(operator_bin: pathlib.Path) -> None:
    text = (ROOT / "Dockerfile").read_text()
    bins = operator_bin.parent
    targets = re.findall(r"^FROM \S+ AS (\S+)", text, re.M)
    check({"broker", "operator", "cli"} <= set(targets), f"Dockerfile targets {targets}")
    build = re.search(r"cargo build --release --locked ([^\n\\]+)", text)
    check(build is not None, "Dockerfile: no `cargo build --release --locked`")
    members = {tomllib.loads((ROOT / m / "Cargo.toml").read_text())["package"]["name"] for m in tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]}
    if build:
        packages = re.findall(r"-p (\S+)", build.group(1))
        check(set(packages) <= members and packages, f"Dockerfile builds {packages}, workspace has {members}")
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    by_target = {s.split()[2] if len(s.split()) > 2 else "": s for s in stages}
    expected = {"broker": ("runnel-broker", {"9092", "9095"}), "operator": ("runnel-operator", {"8080"}), "cli": ("runnel", set())}
    for target, (binary, ports) in expected.items():
        stage = by_target.get(target, "")
        check(f'ENTRYPOINT ["/usr/local/bin/{binary}"]' in stage, f"Dockerfile {target}: ENTRYPOINT {binary}")
        check(re.search(r"^USER 65532:65532$", stage, re.M) is not None, f"Dockerfile {target}: USER 65532")
        exposed = set(" ".join(re.findall(r"^EXPOSE (.+)$", stage, re.M)).split())
        check(exposed == ports, f"Dockerfile {target}: EXPOSE {exposed}, wanted {ports}")
        path = bins / binary
        check(path.exists(), f"Dockerfile {target}: {path} not built")
        if path.exists():
            libs = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
            names = {line.split()[0] for line in libs.splitlines() if line.strip()}
            allowed = re.compile(r"^(linux-vdso\.so\.1|/lib64/ld-linux.*|ld-linux.*|lib(c|m|gcc_s|pthread|dl|rt)\.so\.\d+)$")
            extra = sorted(n for n in names if not allowed.match(n))
            check(not extra, f"{binary} links {extra}, not in distroless/cc")
    # The user the images run as is the chart's and the operator's.
    statefulset = (ROOT / "operator/src/manifests/statefulset.rs").read_text()
    check("pub const NONROOT_ID: i64 = 65532;" in statefulset, "broker pods' NONROOT_ID is not the image user 65532")
    check(chart.values["operator"]["podSecurityContext"]["runAsUser"] == 65532, "chart runAsUser is not the image user")
    ignore = (ROOT / ".dockerignore").read_text().split()
    check("target/" in ignore and ".git/" in ignore, ".dockerignore must leave out target/ and .git/")


def main() -> int:
    global chart, app_version
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operator-bin", type=pathlib.Path, default=ROOT / "target/debug/runnel-operator")
    parser.add_argument("--update", action="store_true", help="rewrite charts/runnel/ci/rendered/ instead of comparing")
    options = parser.parse_args()

    chart = helm.Chart.load(CHART)
    app_version = chart.metadata["appVersion"]
    check(app_version == workspace_version(), f"Chart.yaml appVersion {app_version} != workspace version {workspace_version()}")

    for crd in chart.crds:
        validate_builtin(yaml.safe_load(crd["data"]), f"crds/{crd['filename']}")
    print(f"chart CRDs valid against Kubernetes {KUBE_VERSION}: {len(chart.crds)}")

    rendered_sets = {}
    for name, values in value_sets().items():
        report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
        check(not problems, f"[{name}] helm lint: {problems}")
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        objects = objects_of(rendered)
        notes = next(v for k, v in rendered.items() if k.endswith("NOTES.txt"))
        skipped = []
        custom = []
        for obj in objects:
            group = obj["apiVersion"].rpartition("/")[0]
            if group == "runnel.dev":
                custom.append({k: v for k, v in obj.items() if k != "_template"})
            elif group == "monitoring.coreos.com":
                check_service_monitor(obj, objects, f"[{name}]")
                skipped.append(obj["kind"])
            else:
                validate_builtin(obj, f"[{name}] {obj['_template']}")
        check_semantics(name, values, objects, notes)
        check_operator_args(name, objects, options.operator_bin)
        rendered_sets[name] = custom
        kinds = sorted({o["kind"] for o in objects})
        note = f"; {', '.join(skipped)} checked against the metrics Service (no schema offline)" if skipped else ""
        print(f"[{name}] lint ok, {len(objects)} objects ({', '.join(kinds)}) valid; {len(custom)} runnel.dev resources for {RENDERED.relative_to(ROOT)}/{name}.yaml{note}")

    RENDERED.mkdir(exist_ok=True)
    for name, custom in rendered_sets.items():
        path = RENDERED / f"{name}.yaml"
        text = (
            "# Generated by scripts/check-chart.py --update: the runnel.dev resources the\n"
            f"# chart renders for the {name!r} value set; the operator's tests check them.\n"
            + "".join("---\n" + yaml.safe_dump(o, sort_keys=True) for o in custom)
        )
        if options.update:
            path.write_text(text)
        else:
            check(path.exists() and path.read_text() == text, f"{path.relative_to(ROOT)} differs from the chart: run scripts/check-chart.py --update")
    if options.update:
        for stale in set(RENDERED.glob("*.yaml")) - {RENDERED / f"{n}.yaml" for n in rendered_sets}:
            stale.unlink()

    check_invalid_values()
    print(f"invalid values refused by values.schema.json: {len(INVALID_VALUES)} cases")
    check_dockerfile(options.operator_bin)
    print("Dockerfile: targets, packages, binaries, user, ports, shared libraries")

    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print(f"{len(failures)} failures" if failures else "chart and images: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
