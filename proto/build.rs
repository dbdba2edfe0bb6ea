//! Generates the policy-sync code from `palisade/sync/v1/sync.proto` with a
//! vendored protoc, so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=palisade");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["palisade/sync/v1/sync.proto"], &["."])?;
    Ok(())
}
