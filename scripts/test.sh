#!/usr/bin/env bash
# Runs Runnel's whole test suite on a fresh Debian machine with Rust:
# installs what the tests need, then format, lint, build and test.
# This is the README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# One build from scratch: incremental compilation's caches would only cost
# disk (gigabytes over the workspace's test binaries) and time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
target_dir="${CARGO_TARGET_DIR:-target}"
# Disk is the resource a full run has run out of before; say how much there
# is at the start and how much the build took at the end.
df -h . | sed 's/^/disk: /'
trap 'du -sh "$target_dir" 2>/dev/null | sed "s/^/build output: /"' EXIT

# --- tools ------------------------------------------------------------------
# System packages, as "binary:package" pairs: a real etcd for the cluster-mode
# tests (tests/src/etcd.rs), and protoc for etcd-client's build script (our own
# protos are compiled by the pure-Rust protox).
source scripts/lib.sh
# make and a C compiler build the librdkafka that rdkafka-sys bundles, for
# the benchmark's Kafka-protocol driver (bench/src/driver/kafka.rs).
# iproute2 builds the fault suite's network namespaces (cargo xtask chaos).
ensure_packages etcd:etcd-server protoc:protobuf-compiler kcat:kcat node:nodejs npm:npm \
  make:make gcc:gcc ip:iproute2

if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# --- static checks ----------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings (broken doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# --- tests ------------------------------------------------------------------
step "building (debug) — tests run the real runnel-broker binary"
cargo build --workspace --bins --locked

# The operator's objects (and CRDs) against the Kubernetes 1.33 OpenAPI
# schemas, the version k8s-openapi is built for; --strict refuses unknown
# fields, the usual way a hand-built manifest goes wrong.
step "operator manifests validate against the Kubernetes 1.33 schemas"
ensure_venv target/venv kubernetes-validate==1.37.0 helm-python-sdk==0.2.2 \
  confluent-kafka==2.16.2 kafka-python==3.0.12
cargo xtask render-manifests --out target/manifests
target/venv/bin/kubernetes-validate --strict --quiet -k 1.33.0 target/manifests/*.yaml

# The Helm chart through Helm's own engine (helm-python-sdk embeds Helm's Go
# library; no helm binary is needed): lint and render for every value set in
# charts/runnel/ci/, every object against the 1.33 schemas, invalid values
# refused by values.schema.json, the operator binary accepting the
# Deployment's flags, and the Dockerfile's targets, user and ports.
step "Helm chart and Dockerfile (scripts/check-chart.py)"
target/venv/bin/python scripts/check-chart.py --operator-bin "$target_dir/debug/runnel-operator"

step "fuzz targets build (run them with: cargo fuzz run batch_decoder | kafka_request)"
cargo build --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-build --locked

# Kafka clients no one here wrote, for tests/tests/kafka_clients.rs: kcat
# (above), the Python ones in the venv (above), kafkajs from npm.
step "kafkajs for the Kafka client tests"
(cd tests/kafka_clients && npm ci --no-audit --no-fund --silent)

step "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --doc --locked

# The fault suite (docs/testing.md): 3 brokers and 3 etcd members in network
# namespaces, every nemesis at least once in a short run; the checker fails
# the step on any anomaly. Needs root (namespaces, tmpfs mounts). The binary
# was built by the --workspace --bins step above.
step "fault suite: cargo xtask chaos (about 2 minutes, every nemesis)"
# A fixed schedule (--seed) keeps CI repeatable; long runs with random seeds
# explore further (docs/testing.md lists them).
"$target_dir/debug/xtask" chaos --time-limit 100 --nemesis all --seed 20261207 \
  --out "$target_dir/chaos"
