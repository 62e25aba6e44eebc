//! Generates the tonic/prost code and the encoded descriptor set used for
//! server reflection. protoc comes from `protoc-bin-vendored`, so a build
//! needs nothing but cargo.
//!
//! Two passes: the messages and clients with prost's codec, then the
//! servers alone (their messages referring to the first pass's) with
//! `crate::codec::RequestCodec`, which refuses a request that does not
//! decode as the caller's fault.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let includes = vec![PathBuf::from("proto"), protoc_bin_vendored::include_path()?];
    let files = vec![
        PathBuf::from("proto/cudly/recommendations/v1/trigger.proto"),
        PathBuf::from("proto/cudly/recommendations/v1/recommendations.proto"),
        PathBuf::from("proto/cudly/recommendations/v1/accounts.proto"),
        PathBuf::from("proto/cudly/recommendations/v1/notifications.proto"),
        PathBuf::from("proto/cudly/collector/v1/collector.proto"),
        PathBuf::from("proto/google/type/money.proto"),
    ];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let config = || {
        let mut config = prost_build::Config::new();
        config.protoc_executable(&protoc);
        // `prost::Name` on every message: its full name finds its descriptor
        // in FILE_DESCRIPTOR_SET, which is how clients print the canonical
        // proto3 JSON of a message.
        config.enable_type_names();
        config
    };
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out.join("cudly_descriptor.bin"))
        .compile_with_config(config(), &files, &includes)?;
    let servers = out.join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .codec_path("crate::codec::RequestCodec")
        .extern_path(".cudly.recommendations.v1", "crate::recommendations::v1")
        .extern_path(".cudly.collector.v1", "crate::collector::v1")
        .extern_path(".google.type", "crate::google::r#type")
        .out_dir(&servers)
        .compile_with_config(config(), &files, &includes)?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}
