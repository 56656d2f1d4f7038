//! Generates the `runnel.v1` messages and gRPC stubs with prost/tonic.
//! `bytes` fields become `bytes::Bytes` so record batches are never copied
//! between the transport and the log.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=runnel");
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&["runnel/v1/runnel.proto"], &["."])?;
    Ok(())
}
