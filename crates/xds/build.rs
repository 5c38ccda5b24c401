//! Compiles the protocol's .proto files with protox (a protobuf compiler written in Rust), so
//! building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/discovery.proto", "proto/ca.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".bowline.discovery.v1.Resource.body")
        .codec_path("crate::codec::XdsCodec")
        .compile_fds(fds)?;
    Ok(())
}
