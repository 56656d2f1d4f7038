#!/usr/bin/env bash
# Builds and starts a single-node Runnel broker (embedded metadata, no other
# service needed). Arguments go to runnel-broker; see --help. Installs the one
# build prerequisite, protoc (etcd-client's build script needs it), if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages protoc:protobuf-compiler
exec cargo run --release --locked --bin runnel-broker -- "$@"
