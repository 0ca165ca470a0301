//! `riffle-metadata`: the cluster metadata of Riffle, as KRaft keeps it.
//!
//! - [`records`]: Kafka's metadata records ([`MetadataRecord`]) in the exact
//!   on-disk format of the `__cluster_metadata` log (`ApiMessageAndVersion`
//!   frames as values of v2 record batches).
//! - [`image`]: the immutable [`MetadataImage`] that committed records replay
//!   into, and the [`MetadataDelta`] each replay reports; snapshots of the
//!   image (KIP-630) as records, loaded back, and the delta between two
//!   images.
//! - [`controller`]: the sans-IO [`Controller`]: it validates admin requests
//!   (CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
//!   IncrementalAlterConfigs) against an image and returns the records to
//!   commit together with the response to send once they are committed.
//!
//! The seam with the broker: the broker appends the controller's records to
//! the `__cluster_metadata-0` log; once they are committed (at once on a
//! single node, by the KRaft quorum later) it decodes them back with
//! [`decode_batches`] and applies them to the image, then acts on the delta.
//! See `docs/metadata.md`.
//!
//! This crate does no I/O: it must not depend on tokio, sockets, files or
//! clocks (timestamps and randomness other than topic ids come from the
//! caller), nor on the broker.

pub mod controller;
pub mod image;
pub mod records;
pub mod topic_config;

pub use controller::{
    is_internal_topic, validate_topic_name, BrokerConfigValidator, Controller, ControllerConfig,
    ControllerResult, PRODUCER_ID_BLOCK_SIZE,
};
pub use image::{
    BrokerRegistration, MetadataDelta, MetadataImage, PartitionImage, TopicImage,
    CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC,
};
pub use records::{
    decode_batches, encode_batch, ConfigRecord, Endpoint, FeatureLevelRecord, MetadataRecord,
    NoOpRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord,
    RemoveTopicRecord, TopicRecord, UnregisterBrokerRecord,
};

/// Errors of this crate. Decoding errors mean a corrupt or foreign
/// metadata log; `Inconsistent` means records that contradict the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The bytes are not a well-formed metadata record or batch.
    #[error("malformed metadata record: {0}")]
    Malformed(String),
    /// A record type or version this crate does not know.
    #[error("unknown metadata record type {api_key} version {version}")]
    UnknownRecord { api_key: u32, version: u32 },
    /// A record that cannot apply to the image it is replayed onto.
    #[error("metadata record at offset {offset} is inconsistent: {what}")]
    Inconsistent { offset: i64, what: String },
}
