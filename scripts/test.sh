#!/usr/bin/env bash
# Runs Runnel's whole test suite on a fresh Debian machine with Rust:
# installs what the tests need, then format, lint, build and test.
# This is the README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- tools ------------------------------------------------------------------
# System packages, as "binary:package" pairs: a real etcd for the cluster-mode
# tests (tests/src/etcd.rs), and protoc for etcd-client's build script (our own
# protos are compiled by the pure-Rust protox).
source scripts/lib.sh
ensure_packages etcd:etcd-server protoc:protobuf-compiler

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

step "fuzz target builds (run it with: cargo fuzz run batch_decoder)"
cargo build --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-build --locked

step "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --doc --locked
