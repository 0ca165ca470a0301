//! `riffle-broker`: the server. Listeners and connections ([`server`]),
//! request handlers ([`handlers`], one function per API), the replica
//! manager ([`replica`]), the broker's shared state ([`broker::Broker`]),
//! the seam to the metadata quorum ([`metadata_log::MetadataLog`]), and
//! configuration ([`config`], [`meta_properties`]).
//!
//! Metadata flows one way: a handler asks the controller
//! (`riffle_metadata::Controller`) for records, the [`metadata_log`] commits
//! them, and the broker replays committed records into a new
//! `MetadataImage` and acts on the delta (creating and deleting logs).
//!
//! Must not depend on: the client, streams or migration crates.

pub mod broker;
pub mod config;
pub mod error;
pub mod forward;
pub mod group;
pub mod handlers;
pub mod meta_properties;
pub mod metadata_log;
pub mod producer_ids;
pub mod registration;
pub mod replica;
pub mod server;
pub mod txn;
pub mod util;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::{ListenerKind, Server};
