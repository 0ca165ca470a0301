//! `riffle-raft`: KRaft, the Raft metadata quorum of KIP-595 with the
//! snapshots of KIP-630, as a sans-IO core ([`core::RaftCore`]) plus a
//! thin driver.
//!
//! The core never reads a clock, a socket or a file: it is driven by
//! calls carrying `now` and answers with [`core::Action`]s to perform in
//! order. Its RPCs are Kafka's (`kafka-protocol` types).

pub mod batch;
pub mod core;
pub mod driver;
pub mod role;
pub mod storage;
pub mod store;
pub mod types;

pub use crate::core::{
    Action, ProposeError, RaftCore, RaftRequest, RaftResponse, ReadRecords, ReadSnapshot, RequestId,
};
pub use crate::role::{transition_allowed, EpochChange, RoleInfo, RoleKind};
pub use crate::types::{ElectionState, LogState, NodeId, OffsetAndEpoch, RaftConfig};
