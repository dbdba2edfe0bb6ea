//! Generates the policy-sync code from `palisade/sync/v1/sync.proto` (and the
//! Envoy messages under `envoy/` that xds-api lacks) with a
//! vendored protoc, so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=palisade");
    println!("cargo:rerun-if-changed=envoy");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["palisade/sync/v1/sync.proto"], &["."])?;
    // Envoy messages the xds-api crate lacks; Envoy's core types come from xds-api.
    tonic_build::configure()
        .build_server(false)
        .build_client(false)
        .btree_map(["."])
        .extern_path(
            ".envoy.config.core.v3",
            "::xds_api::pb::envoy::config::core::v3",
        )
        .compile_protos(
            &[
                "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
                "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
            ],
            &["."],
        )?;
    Ok(())
}
