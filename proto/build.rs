//! Generates the `runnel.v1` messages and gRPC stubs with prost/tonic.
//!
//! The .proto files are parsed by `protox` (a pure-Rust protobuf compiler)
//! so building Runnel needs no system `protoc`. `bytes` fields become
//! `bytes::Bytes` so record batches are never copied between the transport
//! and the log.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=runnel");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_none() {
        return Ok(());
    }
    let fds = protox::compile(["runnel/v1/runnel.proto"], ["."])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
