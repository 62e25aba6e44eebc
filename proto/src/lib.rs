//! The gRPC contracts of the cudly services: generated messages, clients and
//! servers, and the encoded file descriptor set for server reflection.

#![allow(missing_docs, unreachable_pub)]

/// The `cudly.*` packages, nested as their names are so that generated
/// references to `google.type` resolve (`super::super::super::google`).
mod cudly {
    /// `cudly.recommendations.v1`: the public API of api-service.
    pub mod recommendations {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("cudly.recommendations.v1");
            include!(concat!(env!("OUT_DIR"), "/servers/cudly.recommendations.v1.rs"));
        }
    }

    /// `cudly.collector.v1`: the internal API of collector-service.
    pub mod collector {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("cudly.collector.v1");
            include!(concat!(env!("OUT_DIR"), "/servers/cudly.collector.v1.rs"));
        }
    }
}

pub use cudly::{collector, recommendations};

pub mod codec;

/// `google.type`: the common types of Google's API design guide the
/// contracts use.
pub mod google {
    /// `google.type.Money`.
    pub mod r#type {
        include!(concat!(env!("OUT_DIR"), "/google.r#type.rs"));
    }
}

/// Encoded `FileDescriptorSet` of every proto in this crate, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cudly_descriptor");
