# syntax=docker/dockerfile:1
#
# Runnel's container images, one target each:
#
#   docker build --target broker   -t runnel/broker:0.1.0   .
#   docker build --target operator -t runnel/operator:0.1.0 .
#   docker build --target cli      -t runnel/cli:0.1.0      .
#
# The tag is the workspace version (Cargo.toml), which is also the Helm
# chart's appVersion and the operator's default --broker-image tag.
# docs/install.md has the details (BuildKit caches, multi-arch, pushing).
#
# Reproducible inputs: the Rust toolchain is the workspace's rust-version,
# dependencies are exactly Cargo.lock's (`--locked`), and the runtime base
# is a fixed Debian 12 distroless release. Pin the bases by digest in your
# registry mirror for byte-identical rebuilds.

ARG RUST_VERSION=1.95
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot

# --- build: every binary in one cargo invocation -----------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# protoc for etcd-client's build script (Runnel's own protos are compiled by
# the pure-Rust protox); a C compiler for zstd and ring comes with the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target directory between builds;
# the binaries are copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p runnel-broker -p runnel-operator -p runnel-cli \
    && mkdir -p /out \
    && cp target/release/runnel-broker target/release/runnel-operator target/release/runnel /out/
# The broker's data directory, owned by the runtime user, for `docker run`
# without a volume (Kubernetes mounts a volume here).
RUN mkdir -p /var/lib/runnel/data && chown -R 65532:65532 /var/lib/runnel

# --- broker ------------------------------------------------------------------
# Kubernetes: the operator's StatefulSet runs it with `--config` and RUNNEL_*
# variables. Alone: `docker run -p 9092:9092 -p 9095:9095 runnel/broker`
# gives a single-node broker on the embedded metadata store.
FROM ${RUNTIME_BASE} AS broker
COPY --from=build /out/runnel-broker /usr/local/bin/runnel-broker
COPY --from=build --chown=65532:65532 /var/lib/runnel /var/lib/runnel
ENV RUNNEL_LISTEN=0.0.0.0:9092 \
    RUNNEL_HTTP_LISTEN=0.0.0.0:9095 \
    RUNNEL_DATA_DIR=/var/lib/runnel/data
# gRPC API (clients, replication); HTTP /healthz /readyz /metrics.
EXPOSE 9092 9095
USER 65532:65532
# No HEALTHCHECK: the distroless base has no shell or HTTP client and the
# broker has no health subcommand. Kubernetes probes /healthz and /readyz
# on port 9095 (the operator's StatefulSet), and Kubernetes ignores an
# image's HEALTHCHECK anyway; with plain Docker, probe from outside:
# curl -f http://127.0.0.1:9095/readyz
ENTRYPOINT ["/usr/local/bin/runnel-broker"]

# --- operator ----------------------------------------------------------------
FROM ${RUNTIME_BASE} AS operator
COPY --from=build /out/runnel-operator /usr/local/bin/runnel-operator
# /healthz /readyz /metrics (--http-listen).
EXPOSE 8080
USER 65532:65532
# No HEALTHCHECK, as for the broker: the chart's Deployment probes /healthz
# and /readyz on port 8080.
ENTRYPOINT ["/usr/local/bin/runnel-operator"]

# --- cli ---------------------------------------------------------------------
# `kubectl run runnel-cli --rm -it --image=runnel/cli:0.1.0 -- --bootstrap
# main-client:9092 topic list`
FROM ${RUNTIME_BASE} AS cli
COPY --from=build /out/runnel /usr/local/bin/runnel
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/runnel"]
