//! The gRPC contracts of the cudly services: generated messages, clients and
//! servers, and the encoded file descriptor set for server reflection.

#![allow(missing_docs, unreachable_pub)]

/// `cudly.recommendations.v1`: the public API of api-service.
pub mod recommendations {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cudly.recommendations.v1");
    }
}

/// `cudly.collector.v1`: the internal API of collector-service.
pub mod collector {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cudly.collector.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto in this crate, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cudly_descriptor");
