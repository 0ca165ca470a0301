//! Plain values shared by the core, the storage and the driver.

use std::collections::BTreeSet;

/// A node id (`node.id`).
pub type NodeId = i32;

/// The metadata topic's fixed name and id (Kafka's `__cluster_metadata`,
/// topic id `AAAAAAAAAAAAAAAAAAAAAQ`).
pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_PARTITION: i32 = 0;
pub const METADATA_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(1);

/// An offset and the leader epoch that wrote the record before it; also
/// names a snapshot (`<end offset>-<epoch>.checkpoint`). Ordered by epoch
/// first, as Raft compares logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetAndEpoch {
    pub offset: i64,
    pub epoch: i32,
}

impl OffsetAndEpoch {
    pub const fn new(offset: i64, epoch: i32) -> OffsetAndEpoch {
        OffsetAndEpoch { offset, epoch }
    }
}

impl PartialOrd for OffsetAndEpoch {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OffsetAndEpoch {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.epoch, self.offset).cmp(&(other.epoch, other.offset))
    }
}

/// The durable election state: Kafka's `quorum-state` file. Written and
/// fsynced before a vote or an epoch change takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionState {
    pub epoch: i32,
    /// The leader of `epoch` when known.
    pub leader_id: Option<NodeId>,
    /// The candidate this node voted for in `epoch`.
    pub voted_id: Option<NodeId>,
    /// The voter set (static, from `controller.quorum.voters`).
    pub voters: BTreeSet<NodeId>,
}

impl ElectionState {
    pub fn unattached(epoch: i32, voters: BTreeSet<NodeId>) -> ElectionState {
        ElectionState {
            epoch,
            leader_id: None,
            voted_id: None,
            voters,
        }
    }
}

/// Settings of the quorum; Kafka's `controller.quorum.*` names and defaults.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub node_id: NodeId,
    pub cluster_id: String,
    /// `controller.quorum.voters` ids. A node not in the set is an observer.
    pub voters: BTreeSet<NodeId>,
    /// `controller.quorum.election.timeout.ms` (1000).
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms` (2000).
    pub fetch_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms` (1000).
    pub election_backoff_max_ms: u64,
    /// `controller.quorum.append.linger.ms` (25).
    pub append_linger_ms: u64,
    /// `controller.quorum.request.timeout.ms` (2000).
    pub request_timeout_ms: u64,
    /// `controller.quorum.retry.backoff.ms` (20).
    pub retry_backoff_ms: u64,
    /// How long the leader parks a Fetch that has nothing new (Kafka: 500).
    pub fetch_max_wait_ms: u64,
    /// Bytes of records per Fetch response (Kafka: 8 MiB).
    pub fetch_max_bytes: usize,
    /// Bytes per FetchSnapshot response.
    pub fetch_snapshot_max_bytes: usize,
    /// Largest batch the leader builds from proposals (Kafka: 8 MiB).
    pub max_batch_bytes: usize,
    /// Seeds the randomized timeouts; the core has no other randomness.
    pub random_seed: u64,
}

impl RaftConfig {
    /// Kafka's defaults for `node_id` in the static voter set `voters`.
    pub fn new(node_id: NodeId, cluster_id: impl Into<String>, voters: BTreeSet<NodeId>) -> Self {
        RaftConfig {
            node_id,
            cluster_id: cluster_id.into(),
            voters,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            election_backoff_max_ms: 1000,
            append_linger_ms: 25,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            fetch_max_wait_ms: 500,
            fetch_max_bytes: 8 * 1024 * 1024,
            fetch_snapshot_max_bytes: 1024 * 1024,
            max_batch_bytes: 8 * 1024 * 1024,
            random_seed: u64::from(node_id.unsigned_abs()) ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.node_id)
    }

    /// Votes needed for a majority of the voter set.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// What the core knows about the local log; the driver builds it when it
/// opens the log and the core keeps it current from its own actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogState {
    pub start_offset: i64,
    pub end_offset: i64,
    /// `(epoch, start offset)` of every epoch in the log, ascending.
    pub epochs: Vec<(i32, i64)>,
    /// The newest snapshot, if any (its offset is at most `end_offset`).
    pub latest_snapshot: Option<OffsetAndEpoch>,
}
