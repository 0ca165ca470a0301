//! The classic group coordinator as a sans-IO state machine.
//!
//! [`GroupCoordinator`] holds every group of the `__consumer_offsets`
//! partitions this node leads. Its inputs are requests (already decoded
//! into the plain structs below), the records of a partition being loaded,
//! and `now` in milliseconds; it never reads a clock, a socket or a file.
//! Its outputs are:
//! - [`Output`]s: answers to JoinGroup and SyncGroup requests, which may be
//!   parked for a long time (until a rebalance completes) and are
//!   identified by the [`ReplyId`] the caller chose when it handed the
//!   request in;
//! - records appended through the [`GroupLog`] the caller passes in. The
//!   caller's append is synchronous (the log is local), so the state moves
//!   on only after the records are stored;
//! - [`GroupCoordinator::next_deadline`], when [`GroupCoordinator::tick`]
//!   is due next (rebalance, session and sync timeouts).
//!
//! The states and transitions are Kafka's classic protocol:
//!
//! ```text
//!            join                   all joined / timeout         leader's sync stored
//!   Empty ----------> PreparingRebalance ----------> CompletingRebalance -----------> Stable
//!     ^                 ^   |  no member left            |   member change / timeout    |
//!     |                 |   +--> Empty                   +--> PreparingRebalance        |
//!     |                 +-------------------------------------------------------------+
//!     |                         member joins, leaves, changes protocols or times out
//!   Dead: deleted, or expired with no offsets left (the group is removed).
//! ```
//!
//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98) are
//! kept pending per producer until [`GroupCoordinator::complete_transaction`]
//! reports the producer's COMMIT or ABORT marker; each offset carries the
//! log offset of its record, and when a transaction commits the later
//! record of a partition wins, so memory and a replay of the log agree.
//! Where Kafka's two coordinators differ, this one follows Kafka 4.0's
//! (`OffsetMetadataManager`): an unknown group is created by a
//! transactional commit only without a generation; tombstones (OffsetDelete,
//! DeleteGroups, deleted topics) delete pending offsets too; an offset an
//! open transaction may replace does not expire, nor does a group with
//! pending offsets. One departure: a producer whose pending offsets of a
//! group were all deleted no longer holds the group (Kafka 4.0 keeps it
//! "open" until the marker), so such a group may expire before the marker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info};

use super::records::{self, GroupMetadataValue, GroupRecord, LogEntry, MemberMetadata, OffsetKey};

/// How long a new member may wait in a join before it is dropped; Kafka's
/// `GroupCoordinator.NewMemberJoinTimeoutMs`.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// Identifies a parked JoinGroup or SyncGroup request; chosen by the caller.
pub type ReplyId = u64;

/// The states of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    pub fn from_name(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// The coordinator's settings (Kafka's `group.*` and `offset*` configs).
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub num_partitions: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: i32,
    pub offset_metadata_max_bytes: i32,
    pub offsets_retention_ms: i64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            num_partitions: 50,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: i32::MAX,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Stores records in `__consumer_offsets`.
///
/// Both methods append `records` (key, value or tombstone) to `partition`
/// as one batch and return once they are stored: the log offset of the
/// first record (the record at index `i` is at that offset plus `i`), or
/// the append's error, which the coordinator maps to the error its clients
/// expect. The offsets order plain and transactional commits of the same
/// partition (see [`GroupCoordinator::complete_transaction`]), so they must
/// be the offsets the records really have in the log.
pub trait GroupLog {
    /// Appends the coordinator's own records (no producer).
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError>;

    /// Appends the offsets of a TxnOffsetCommit as one transactional batch
    /// of `producer_id` at `producer_epoch` (base sequence -1). The log may
    /// refuse a fenced producer epoch (INVALID_PRODUCER_EPOCH); it does not
    /// check sequences.
    fn append_transactional(
        &mut self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError>;
}

/// A JoinGroup request.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+ of a dynamic member: a first join is answered with
    /// MEMBER_ID_REQUIRED and a member id to join with.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader replaced in a stable group is told it
    /// leads but must not assign (KIP-814).
    pub supports_skip_assignment: bool,
}

/// One member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(member_id: &str, error: ResponseError) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer the caller must deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Join(ReplyId, JoinResult),
    Sync(ReplyId, SyncResult),
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit request (after the caller dropped partitions of
/// unknown topics).
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-v4's retention time; -1 keeps the broker's.
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
}

/// A TxnOffsetCommit request (after the caller answered the partitions of
/// unknown topics): offsets committed as part of the producer's
/// transaction, which count only once the transaction commits.
#[derive(Debug, Clone, Default)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Version 3+ (KIP-447): the consumer's group membership, checked when
    /// given; "" and -1 (older versions, or a producer outside any group)
    /// skip the checks.
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

/// (topic, partition).
pub type TopicPartitionKey = (String, i32);

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: i64,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// An offset with the log offset of its record. When a transaction
/// commits, its offset of a partition replaces the committed one only if
/// its record is the later one in the log: a plain commit made while the
/// transaction was open wins (Kafka's `CommitRecordMetadataAndOffset`; the
/// order must not depend on whether the log was compacted and reloaded in
/// between).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredOffset {
    committed: Committed,
    record_offset: i64,
}

impl StoredOffset {
    fn from_value(v: records::OffsetValue, record_offset: i64) -> StoredOffset {
        StoredOffset {
            committed: Committed {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                commit_timestamp: v.commit_timestamp,
                expire_timestamp: v.expire_timestamp,
            },
            record_offset,
        }
    }
}

/// A group's offsets: the committed ones, and the pending ones of open
/// transactions. The same rules apply when records are appended and when
/// they are replayed from the log, so a reload gives back what was in
/// memory.
#[derive(Debug, Clone, Default)]
struct GroupOffsets {
    committed: HashMap<TopicPartitionKey, StoredOffset>,
    /// Producer id -> the offsets its open transaction committed; never an
    /// empty map.
    pending: BTreeMap<i64, HashMap<TopicPartitionKey, StoredOffset>>,
}

impl GroupOffsets {
    /// A plain commit: its record is the latest of the partition, so it
    /// replaces the committed offset whatever that was.
    fn commit(&mut self, tp: TopicPartitionKey, stored: StoredOffset) {
        self.committed.insert(tp, stored);
    }

    /// A transactional commit: pending until the producer's marker.
    fn stage(&mut self, producer_id: i64, tp: TopicPartitionKey, stored: StoredOffset) {
        self.pending
            .entry(producer_id)
            .or_default()
            .insert(tp, stored);
    }

    /// An offset tombstone: it deletes the committed offset and every
    /// pending one of the partition (Kafka 4.0's replay of a tombstone), so
    /// a deleted offset does not come back when a transaction commits.
    /// Returns whether there was anything to delete.
    fn remove(&mut self, tp: &TopicPartitionKey) -> bool {
        let mut removed = self.committed.remove(tp).is_some();
        self.pending.retain(|_, offsets| {
            removed |= offsets.remove(tp).is_some();
            !offsets.is_empty()
        });
        removed
    }

    /// The producer's transaction ended: on commit its pending offsets
    /// become committed where they are later in the log than the committed
    /// ones; on abort they are dropped. Returns how many became committed.
    fn complete(&mut self, producer_id: i64, commit: bool) -> usize {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return 0;
        };
        if !commit {
            return 0;
        }
        let mut materialized = 0;
        for (tp, stored) in pending {
            let newer = self
                .committed
                .get(&tp)
                .is_none_or(|current| current.record_offset < stored.record_offset);
            if newer {
                self.committed.insert(tp, stored);
                materialized += 1;
            }
        }
        materialized
    }

    fn has_pending(&self, tp: &TopicPartitionKey) -> bool {
        self.pending
            .values()
            .any(|offsets| offsets.contains_key(tp))
    }

    /// The partitions with a committed or a pending offset.
    fn partitions(&self) -> BTreeSet<TopicPartitionKey> {
        let mut all: BTreeSet<TopicPartitionKey> = self.committed.keys().cloned().collect();
        for offsets in self.pending.values() {
            all.extend(offsets.keys().cloned());
        }
        all
    }

    fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<ReplyId>,
    awaiting_sync: Option<ReplyId>,
    /// Joined during the current rebalance: it may be expired while it
    /// waits for the join to complete.
    is_new: bool,
    heartbeat_deadline: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the member owes a heartbeat: members waiting in a rebalance
    /// are kept alive by it, except new members, which may give up.
    fn expired(&self, now: i64) -> bool {
        if !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some()) {
            return false;
        }
        now >= self.heartbeat_deadline
    }
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    state: GroupState,
    state_timestamp: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time by
    /// which they must join.
    pending_members: HashMap<String, i64>,
    /// Members of the current generation that have not sent SyncGroup.
    pending_sync: BTreeSet<String>,
    sync_deadline: Option<i64>,
    /// When PreparingRebalance ends regardless of missing members.
    join_deadline: Option<i64>,
    /// During the first rebalance of an empty group: the time left of the
    /// rebalance timeout after the current delay.
    initial_delay_remaining: Option<i64>,
    new_member_added: bool,
    /// `group.initial.rebalance.delay.ms`.
    initial_delay_ms: i64,
    offsets: GroupOffsets,
}

impl Group {
    fn new(id: &str, now: i64, initial_delay_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
            initial_delay_ms,
            offsets: GroupOffsets::default(),
        }
    }

    fn transition(&mut self, to: GroupState, now: i64) {
        debug!(group = %self.id, from = self.state.name(), to = to.name(), "group state");
        self.state = to;
        self.state_timestamp = now;
    }

    fn is_fenced(&self, instance_id: &Option<String>, member_id: &str) -> bool {
        match instance_id {
            Some(i) => self
                .static_members
                .get(i)
                .is_some_and(|known| known != member_id),
            None => false,
        }
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The protocols every member supports, in the order of the first
    /// member's preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let rest: Vec<&Member> = members.collect();
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| rest.iter().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
            .collect()
    }

    /// Each member votes for the first protocol it lists among the
    /// candidates; the most votes win (ties: the earliest candidate).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c.as_str()).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c.as_str(), v));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == name))
            })
    }

    /// Kafka's `acceptJoiningMember`: whether `group.max.size` leaves room.
    /// While a rebalance is prepared the members already awaiting the join
    /// count (the group may be over a lowered limit, and this lets the last
    /// ones to rejoin be the ones refused); otherwise the members do.
    /// Pending member ids do not count: they are only ids handed out.
    fn accepts_member(&self, member_id: &str, max_size: i32) -> bool {
        let max = max_size.max(0) as usize;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self
                        .members
                        .values()
                        .filter(|m| m.awaiting_join.is_some())
                        .count()
                        < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    /// The members the leader is told about in its JoinGroup response.
    fn member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            members: if leader == member_id {
                self.member_list()
            } else {
                Vec::new()
            },
            leader,
            member_id: member_id.to_string(),
            skip_assignment: false,
        }
    }

    fn metadata_value(&self, assignments: Option<&HashMap<String, Bytes>>) -> GroupMetadataValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: assignments
                        .and_then(|a| a.get(&m.id).cloned())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    /// Topics the members subscribe to, when they use the consumer
    /// protocol; `None` when that cannot be known.
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(&m.metadata_for(&protocol))?);
        }
        Some(topics)
    }
}

/// The topics of a ConsumerProtocolSubscription.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut buf = Bytes::copy_from_slice(metadata);
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    let version = version.clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .ok()
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
}

/// Kafka's mapping of storage errors to the errors group clients handle,
/// which the transaction coordinator shares
/// (`TransactionStateManager.appendTransactionToLog` maps the same errors
/// but INVALID_FETCH_SIZE, which no append returns).
pub(crate) fn coordinator_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
        other => other,
    }
}

/// Whether this node coordinates a partition, and whether it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionStatus {
    Loading,
    Active,
}

/// The group coordinator of one node.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    partitions: HashMap<i32, PartitionStatus>,
    groups: HashMap<String, Group>,
    /// Producer id -> the groups that may hold pending offsets of its open
    /// transaction (Kafka's `openGroupsForProducer`), so that a marker
    /// does not look at every group. A superset: a group that was deleted
    /// or lost its pending offsets to a tombstone may still be listed;
    /// every group with pending offsets of the producer is.
    open_transactions: HashMap<i64, BTreeSet<String>>,
    /// Transaction markers written to a partition while it was loading:
    /// (producer id, commit), applied once it is loaded (see
    /// [`Self::complete_transaction`]).
    markers_while_loading: HashMap<i32, Vec<(i64, bool)>>,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            partitions: HashMap::new(),
            groups: HashMap::new(),
            open_transactions: HashMap::new(),
            markers_while_loading: HashMap::new(),
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        records::partition_for(group_id, self.config.num_partitions)
    }

    /// Whether this node serves `group_id`: NOT_COORDINATOR when it does
    /// not lead the group's partition, COORDINATOR_LOAD_IN_PROGRESS while
    /// the partition loads.
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), ResponseError> {
        match self.partitions.get(&self.partition_for(group_id)) {
            Some(PartitionStatus::Active) => Ok(()),
            Some(PartitionStatus::Loading) => Err(ResponseError::CoordinatorLoadInProgress),
            None => Err(ResponseError::NotCoordinator),
        }
    }

    /// The partitions this node coordinates (loaded or loading).
    pub fn owned_partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Marks a partition as loading: its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until [`Self::load_partition`].
    pub fn begin_load(&mut self, partition: i32) {
        self.partitions
            .entry(partition)
            .or_insert(PartitionStatus::Loading);
    }

    /// Installs the groups and offsets of a partition from its log (in
    /// log order) and starts serving it. Groups with members come back
    /// Stable, their members' sessions restarted at `now`; a group with more
    /// members than `group.max.size` starts a rebalance.
    ///
    /// Offsets of transactional batches are pending until their producer's
    /// marker: a COMMIT makes them committed (unless a plain commit of the
    /// partition came later in the log), an ABORT drops them, and those
    /// whose transaction has no marker yet stay pending. Markers written
    /// while the partition was loading are applied last.
    pub fn load_partition(
        &mut self,
        partition: i32,
        entries: impl IntoIterator<Item = LogEntry>,
        now: i64,
    ) {
        let mut offsets: HashMap<String, GroupOffsets> = HashMap::new();
        let mut metadata: HashMap<String, Option<GroupMetadataValue>> = HashMap::new();
        // Producer id -> the groups its open transaction wrote to.
        let mut open: HashMap<i64, BTreeSet<String>> = HashMap::new();
        for entry in entries {
            match entry {
                LogEntry::Record {
                    offset,
                    producer_id,
                    record: GroupRecord::Offset { key, value },
                } => {
                    let group = offsets.entry(key.group.clone()).or_default();
                    let tp = (key.topic, key.partition);
                    match (value, producer_id) {
                        (Some(v), None) => group.commit(tp, StoredOffset::from_value(v, offset)),
                        (Some(v), Some(producer_id)) => {
                            group.stage(producer_id, tp, StoredOffset::from_value(v, offset));
                            open.entry(producer_id).or_default().insert(key.group);
                        }
                        (None, _) => {
                            group.remove(&tp);
                        }
                    }
                }
                LogEntry::Record {
                    record: GroupRecord::Group { group, value },
                    ..
                } => {
                    metadata.insert(group, value);
                }
                LogEntry::Record {
                    record: GroupRecord::Other { .. },
                    ..
                } => {}
                LogEntry::Marker {
                    producer_id,
                    commit,
                    ..
                } => {
                    for name in open.remove(&producer_id).unwrap_or_default() {
                        if let Some(group) = offsets.get_mut(&name) {
                            group.complete(producer_id, commit);
                        }
                    }
                }
            }
        }
        let mut names: BTreeSet<String> = offsets
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(g, _)| g.clone())
            .collect();
        names.extend(
            metadata
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(g, _)| g.clone()),
        );
        let mut loaded = 0;
        for name in names {
            let mut group = Group::new(&name, now, self.config.initial_rebalance_delay_ms as i64);
            if let Some(Some(v)) = metadata.remove(&name) {
                group.generation = v.generation;
                group.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
                group.protocol = v.protocol;
                group.leader = v.leader;
                if v.current_state_timestamp >= 0 {
                    group.state_timestamp = v.current_state_timestamp;
                }
                let protocol = group.protocol.clone().unwrap_or_default();
                for m in v.members {
                    if let Some(i) = &m.group_instance_id {
                        group.static_members.insert(i.clone(), m.member_id.clone());
                    }
                    group.members.insert(
                        m.member_id.clone(),
                        Member {
                            id: m.member_id,
                            instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            rebalance_timeout_ms: if m.rebalance_timeout < 0 {
                                m.session_timeout
                            } else {
                                m.rebalance_timeout
                            },
                            session_timeout_ms: m.session_timeout,
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            awaiting_join: None,
                            awaiting_sync: None,
                            is_new: false,
                            heartbeat_deadline: now + m.session_timeout.max(0) as i64,
                        },
                    );
                }
                group.state = if group.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
                if group.members.len() > self.config.max_size.max(0) as usize {
                    // Kafka's onGroupLoaded: group.max.size was lowered
                    // since; the rebalance lets the members beyond it go
                    // (after committing their offsets).
                    let mut none = Vec::new();
                    prepare_rebalance(
                        &mut group,
                        now,
                        "the loaded group is over group.max.size",
                        &mut none,
                    );
                    assert!(none.is_empty(), "a loaded group has no parked requests");
                }
            }
            group.offsets = offsets.remove(&name).unwrap_or_default();
            for &producer_id in group.offsets.pending.keys() {
                self.open_transactions
                    .entry(producer_id)
                    .or_default()
                    .insert(name.clone());
            }
            self.groups.insert(name, group);
            loaded += 1;
        }
        if loaded > 0 {
            info!(
                partition,
                groups = loaded,
                "loaded __consumer_offsets partition"
            );
        } else {
            debug!(partition, "loaded __consumer_offsets partition (no groups)");
        }
        self.partitions.insert(partition, PartitionStatus::Active);
        for (producer_id, commit) in self
            .markers_while_loading
            .remove(&partition)
            .unwrap_or_default()
        {
            self.complete_transaction(partition, producer_id, commit);
        }
    }

    /// Stops serving a partition (its leadership moved away): its groups
    /// are dropped and their parked requests answered NOT_COORDINATOR.
    pub fn unload_partition(&mut self, partition: i32) -> Vec<Output> {
        self.partitions.remove(&partition);
        self.markers_while_loading.remove(&partition);
        let n = self.config.num_partitions;
        let names: Vec<String> = self
            .groups
            .keys()
            .filter(|g| records::partition_for(g, n) == partition)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for name in names {
            if let Some(group) = self.groups.remove(&name) {
                for m in group.members.values() {
                    if let Some(r) = m.awaiting_join {
                        out.push(Output::Join(
                            r,
                            JoinResult::error(&m.id, ResponseError::NotCoordinator),
                        ));
                    }
                    if let Some(r) = m.awaiting_sync {
                        out.push(Output::Sync(
                            r,
                            SyncResult::error(ResponseError::NotCoordinator),
                        ));
                    }
                }
            }
        }
        self.open_transactions.retain(|_, groups| {
            groups.retain(|g| records::partition_for(g, n) != partition);
            !groups.is_empty()
        });
        out
    }

    // ---- JoinGroup -------------------------------------------------------

    /// JoinGroup. The answer comes as an [`Output::Join`] with `reply`,
    /// now or when the rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        reply: ReplyId,
        now: i64,
        log: &mut dyn GroupLog,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let fail =
            |e: ResponseError| vec![Output::Join(reply, JoinResult::error(&req.member_id, e))];
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return fail(e);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let unknown = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown {
                return fail(ResponseError::UnknownMemberId);
            }
            self.groups.insert(
                req.group_id.clone(),
                Group::new(
                    &req.group_id,
                    now,
                    self.config.initial_rebalance_delay_ms as i64,
                ),
            );
        }
        let max_size = self.config.max_size;
        let group = self.groups.get_mut(&req.group_id).expect("inserted above");
        if !group.accepts_member(&req.member_id, max_size) {
            info!(group = %group.id, member = %req.member_id, max_size, "join refused: group.max.size reached");
            // Kafka removes the refused member (a pending one, or one that
            // had not rejoined yet), so the rebalance does not wait for it.
            group.pending_members.remove(&req.member_id);
            remove_member(group, &req.member_id, &mut out);
            out.push(Output::Join(
                reply,
                JoinResult::error("", ResponseError::GroupMaxSizeReached),
            ));
            self.try_complete_join(&req.group_id, now, log, &mut out);
            return out;
        }
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if unknown {
            let group_id = req.group_id.clone();
            let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
            let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
            match req.group_instance_id.clone() {
                Some(instance) => match group.static_members.get(&instance).cloned() {
                    Some(old_id) => {
                        self.replace_static_member(req, old_id, new_id, reply, now, log, &mut out)
                    }
                    None => {
                        info!(group = %group.id, member = %new_id, instance = %instance, "static member joins");
                        add_member(group, &req, new_id, reply, now, &mut out);
                    }
                },
                None if req.require_known_member_id => {
                    let deadline = now + req.session_timeout_ms as i64;
                    group.pending_members.insert(new_id.clone(), deadline);
                    out.push(Output::Join(
                        reply,
                        JoinResult::error(&new_id, ResponseError::MemberIdRequired),
                    ));
                }
                None => add_member(group, &req, new_id, reply, now, &mut out),
            }
            // As after every join (Kafka's handleJoinGroup): the member
            // may have been the last one the rebalance waited for.
            self.try_complete_join(&group_id, now, log, &mut out);
            return out;
        }
        if group.pending_members.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            add_member(group, &req, id, reply, now, &mut out);
            self.try_complete_join(&req.group_id, now, log, &mut out);
            return out;
        }
        let instance_unknown = req
            .group_instance_id
            .as_ref()
            .is_some_and(|i| !group.static_members.contains_key(i));
        if group.is_fenced(&req.group_instance_id, &req.member_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(&req.member_id) || instance_unknown {
            return fail(ResponseError::UnknownMemberId);
        }
        let member = &group.members[&req.member_id];
        let same_protocols = member.protocols == req.protocols;
        let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
        match group.state {
            GroupState::PreparingRebalance => {
                update_member_and_rebalance(group, &req, reply, now, &mut out)
            }
            GroupState::CompletingRebalance if same_protocols => {
                // The member missed the JoinGroup response: same answer.
                let result = group.join_result_for(&req.member_id);
                replace_join_reply(group, &req.member_id, None, &mut out);
                out.push(Output::Join(reply, result));
            }
            GroupState::Stable if !is_leader && same_protocols => {
                let result = group.join_result_for(&req.member_id);
                out.push(Output::Join(reply, result));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member_and_rebalance(group, &req, reply, now, &mut out)
            }
            GroupState::Empty | GroupState::Dead => {
                return fail(ResponseError::UnknownMemberId);
            }
        }
        self.try_complete_join(&req.group_id, now, log, &mut out);
        out
    }

    /// A static member rejoined with an unknown member id: it takes the
    /// old member's place (the old id is fenced).
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        reply: ReplyId,
        now: i64,
        log: &mut dyn GroupLog,
        out: &mut Vec<Output>,
    ) {
        let group_id = req.group_id.clone();
        let partition = self.partition_for(&group_id);
        let group = self.groups.get_mut(&group_id).expect("checked by join");
        let Some(mut member) = group.members.remove(&old_id) else {
            // The mapping points at a member that is gone: a new member.
            group
                .static_members
                .remove(req.group_instance_id.as_deref().unwrap_or(""));
            add_member(group, &req, new_id, reply, now, out);
            return;
        };
        info!(group = %group.id, old = %old_id, new = %new_id, "static member rejoined; replacing its old member id");
        if let Some(r) = member.awaiting_join.take() {
            out.push(Output::Join(
                r,
                JoinResult::error(&old_id, ResponseError::FencedInstanceId),
            ));
        }
        if let Some(r) = member.awaiting_sync.take() {
            out.push(Output::Sync(
                r,
                SyncResult::error(ResponseError::FencedInstanceId),
            ));
        }
        let old_leader = group.leader.clone();
        let was_leader = old_leader.as_deref() == Some(old_id.as_str());
        let old_member = member.clone();
        member.id = new_id.clone();
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.heartbeat_deadline = now + req.session_timeout_ms as i64;
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        if group.pending_sync.remove(&old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        if let Some(i) = &req.group_instance_id {
            group.static_members.insert(i.clone(), new_id.clone());
        }
        group.members.insert(new_id.clone(), member);
        match group.state {
            GroupState::Stable => {
                if group.select_protocol() != group.protocol {
                    group
                        .members
                        .get_mut(&new_id)
                        .expect("inserted")
                        .awaiting_join = Some(reply);
                    prepare_rebalance(
                        group,
                        now,
                        "a static member rejoined with other protocols",
                        out,
                    );
                    return;
                }
                let record = group.metadata_value(None);
                let stored = log.append(
                    partition,
                    vec![(
                        records::group_key(&group_id),
                        Some(records::group_value(&record)),
                    )],
                );
                if let Err(e) = stored {
                    // Undo: the old member id stays valid.
                    group.members.remove(&new_id);
                    group.members.insert(old_id.clone(), old_member);
                    group.leader = old_leader;
                    if group.pending_sync.remove(&new_id) {
                        group.pending_sync.insert(old_id.clone());
                    }
                    if let Some(i) = &req.group_instance_id {
                        group.static_members.insert(i.clone(), old_id);
                    }
                    out.push(Output::Join(
                        reply,
                        JoinResult::error(&new_id, coordinator_error(e)),
                    ));
                    return;
                }
                let mut result = group.join_result_for(&new_id);
                if was_leader && req.supports_skip_assignment {
                    // KIP-814: it leads, with the member list, but must not
                    // assign: a stable group would not pass a new
                    // assignment on.
                    result.leader = new_id.clone();
                    result.members = group.member_list();
                    result.skip_assignment = true;
                } else {
                    // Tell it the old leader id, so a returning leader does
                    // not compute an assignment nobody would receive.
                    result.leader = old_leader.unwrap_or_default();
                    result.members = Vec::new();
                }
                out.push(Output::Join(reply, result));
            }
            GroupState::CompletingRebalance => {
                group
                    .members
                    .get_mut(&new_id)
                    .expect("inserted")
                    .awaiting_join = Some(reply);
                prepare_rebalance(
                    group,
                    now,
                    "a static member rejoined during a rebalance",
                    out,
                );
            }
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get_mut(&new_id)
                    .expect("inserted")
                    .awaiting_join = Some(reply);
                self.try_complete_join(&group_id, now, log, out);
            }
            GroupState::Empty | GroupState::Dead => {
                // A static member is never mapped in these states.
                group
                    .members
                    .get_mut(&new_id)
                    .expect("inserted")
                    .awaiting_join = Some(reply);
                prepare_rebalance(group, now, "a static member joined", out);
            }
        }
    }

    /// Completes the join phase when every member has rejoined (not during
    /// the initial delay, which always runs its course).
    fn try_complete_join(
        &mut self,
        group_id: &str,
        now: i64,
        log: &mut dyn GroupLog,
        out: &mut Vec<Output>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.state == GroupState::PreparingRebalance
            && group.initial_delay_remaining.is_none()
            && group.all_joined()
        {
            self.complete_join(group_id, now, log, out);
        }
    }

    fn complete_join(
        &mut self,
        group_id: &str,
        now: i64,
        log: &mut dyn GroupLog,
        out: &mut Vec<Output>,
    ) {
        let partition = self.partition_for(group_id);
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group.join_deadline = None;
        group.initial_delay_remaining = None;
        // Dynamic members that did not rejoin are out; static members keep
        // their place until their session times out.
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            info!(group = %group.id, members = ?gone, "removing members that did not rejoin");
        }
        for id in gone {
            remove_member(group, &id, out);
        }
        // A leader that did not rejoin hands over to one that did.
        let leader_joined = group
            .leader
            .as_ref()
            .and_then(|l| group.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            group.leader = group
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .map(|m| m.id.clone());
            if group.leader.is_none() && !group.members.is_empty() {
                // Nobody rejoined: wait another rebalance timeout for the
                // sessions of the silent members to run out.
                group.join_deadline = Some(now + group.rebalance_timeout_ms());
                return;
            }
        }
        group.generation += 1;
        group.pending_sync.clear();
        if group.members.is_empty() {
            group.protocol = None;
            group.transition(GroupState::Empty, now);
            info!(group = %group.id, generation = group.generation, "group is empty");
            let value = group.metadata_value(None);
            if let Err(e) = log.append(
                partition,
                vec![(
                    records::group_key(group_id),
                    Some(records::group_value(&value)),
                )],
            ) {
                info!(group = %group_id, "storing the empty group failed: {e:?}");
            }
            return;
        }
        group.protocol = group.select_protocol();
        group.transition(GroupState::CompletingRebalance, now);
        info!(
            group = %group.id,
            generation = group.generation,
            protocol = group.protocol.as_deref().unwrap_or(""),
            members = group.members.len(),
            "rebalance: every member joined"
        );
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in &ids {
            let result = group.join_result_for(id);
            let m = group.members.get_mut(id).expect("listed");
            if let Some(r) = m.awaiting_join.take() {
                out.push(Output::Join(r, result));
            }
            m.is_new = false;
            m.heartbeat_deadline = now + m.session_timeout_ms as i64;
        }
        group.pending_sync = ids.into_iter().collect();
        group.sync_deadline = Some(now + group.rebalance_timeout_ms());
    }

    // ---- SyncGroup -------------------------------------------------------

    /// SyncGroup. The answer comes as an [`Output::Sync`] with `reply`: at
    /// once, or when the leader's assignment is stored.
    pub fn sync(
        &mut self,
        req: SyncRequest,
        reply: ReplyId,
        now: i64,
        log: &mut dyn GroupLog,
    ) -> Vec<Output> {
        let fail = |e: ResponseError| vec![Output::Sync(reply, SyncResult::error(e))];
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return fail(e);
        }
        let partition = self.partition_for(&req.group_id);
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(&req.group_instance_id, &req.member_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(&req.member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| group.protocol.as_ref() != Some(p))
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let mut out = Vec::new();
        match group.state {
            GroupState::Empty | GroupState::Dead => return fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => return fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let m = group.members.get_mut(&req.member_id).expect("checked");
                m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                out.push(Output::Sync(
                    reply,
                    SyncResult {
                        error: None,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
            }
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                let m = group.members.get_mut(&req.member_id).expect("checked");
                if let Some(old) = m.awaiting_sync.replace(reply) {
                    out.push(Output::Sync(
                        old,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
                if group.leader.as_deref() != Some(req.member_id.as_str()) {
                    return out;
                }
                let mut assignments: HashMap<String, Bytes> = group
                    .members
                    .keys()
                    .map(|id| (id.clone(), Bytes::new()))
                    .collect();
                for (id, a) in req.assignments {
                    if let Some(slot) = assignments.get_mut(&id) {
                        *slot = a;
                    }
                }
                let value = group.metadata_value(Some(&assignments));
                let stored = log.append(
                    partition,
                    vec![(
                        records::group_key(&req.group_id),
                        Some(records::group_value(&value)),
                    )],
                );
                match stored {
                    Ok(_) => {
                        for m in group.members.values_mut() {
                            m.assignment = assignments.remove(&m.id).unwrap_or_default();
                            if let Some(r) = m.awaiting_sync.take() {
                                out.push(Output::Sync(
                                    r,
                                    SyncResult {
                                        error: None,
                                        protocol_type: group.protocol_type.clone(),
                                        protocol_name: group.protocol.clone(),
                                        assignment: m.assignment.clone(),
                                    },
                                ));
                                m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                            }
                        }
                        group.transition(GroupState::Stable, now);
                        info!(group = %group.id, generation = group.generation, "group is stable");
                    }
                    Err(e) => {
                        let e = coordinator_error(e);
                        info!(group = %group.id, "storing the group assignment failed: {e:?}");
                        propagate_sync_error(group, e, now, &mut out);
                        prepare_rebalance(
                            group,
                            now,
                            "the assignment could not be stored",
                            &mut out,
                        );
                    }
                }
            }
        }
        out
    }

    // ---- Heartbeat and LeaveGroup ----------------------------------------

    /// Heartbeat: `Ok` or the error to answer with.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: &Option<String>,
        generation: i32,
        now: i64,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        match self.check_coordinator(group_id) {
            // Kafka answers blindly while the group loads: older clients do
            // not expect COORDINATOR_LOAD_IN_PROGRESS here, and the member
            // learns the group's state at its next heartbeat.
            Err(ResponseError::CoordinatorLoadInProgress) => return Ok(()),
            other => other?,
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        let state = group.state;
        let m = group.members.get_mut(member_id).expect("checked");
        match state {
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                Err(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                Ok(())
            }
        }
    }

    /// LeaveGroup of `members` (member id, instance id). `Err` is a
    /// group-level error; otherwise one result per member.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: i64,
        log: &mut dyn GroupLog,
    ) -> Result<(Vec<Option<ResponseError>>, Vec<Output>), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok((
                vec![Some(ResponseError::UnknownMemberId); members.len()],
                Vec::new(),
            ));
        };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut out = Vec::new();
        let mut results = Vec::with_capacity(members.len());
        let mut changed = false;
        for (member_id, instance_id) in members {
            let target = match instance_id {
                Some(i) => match group.static_members.get(i) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(known) if !member_id.is_empty() && known != member_id => {
                        Err(ResponseError::FencedInstanceId)
                    }
                    Some(known) => Ok(known.clone()),
                },
                None if group.pending_members.remove(member_id).is_some() => {
                    changed = true;
                    results.push(None);
                    continue;
                }
                None if group.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(ResponseError::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    info!(group = %group_id, member = %id, "member left the group");
                    remove_member_and_update(group, &id, now, "a member left", &mut out);
                    changed = true;
                    results.push(None);
                }
                Err(e) => results.push(Some(e)),
            }
        }
        if changed {
            self.try_complete_join(group_id, now, log, &mut out);
        }
        Ok((results, out))
    }

    // ---- Offsets ---------------------------------------------------------

    /// OffsetCommit. `Err` applies to every partition; otherwise one result
    /// per partition of the request.
    pub fn commit_offsets(
        &mut self,
        req: &CommitRequest,
        now: i64,
        log: &mut dyn GroupLog,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_coordinator(&req.group_id)?;
        let partition = self.partition_for(&req.group_id);
        let max_metadata = self.config.offset_metadata_max_bytes.max(0) as usize;
        match self.groups.get_mut(&req.group_id) {
            None if req.generation_id < 0 => {
                // A group that only stores offsets (no group management).
                self.groups.insert(
                    req.group_id.clone(),
                    Group::new(
                        &req.group_id,
                        now,
                        self.config.initial_rebalance_delay_ms as i64,
                    ),
                );
            }
            None => return Err(ResponseError::IllegalGeneration),
            Some(group) => {
                if group.state == GroupState::Dead {
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
                if group.is_fenced(&req.group_instance_id, &req.member_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
                let simple = req.generation_id < 0 && group.state == GroupState::Empty;
                if !simple {
                    if !group.members.contains_key(&req.member_id) {
                        return Err(ResponseError::UnknownMemberId);
                    }
                    if req.generation_id != group.generation {
                        return Err(ResponseError::IllegalGeneration);
                    }
                    match group.state {
                        GroupState::CompletingRebalance => {
                            return Err(ResponseError::RebalanceInProgress)
                        }
                        GroupState::Stable | GroupState::PreparingRebalance => {
                            let m = group.members.get_mut(&req.member_id).expect("checked");
                            m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                        }
                        GroupState::Empty | GroupState::Dead => {
                            return Err(ResponseError::UnknownMemberId)
                        }
                    }
                }
            }
        }
        let expire_timestamp = if req.retention_time_ms > 0 {
            now.saturating_add(req.retention_time_ms)
        } else {
            -1
        };
        let OffsetCommitBatch {
            results,
            records: batch,
            accepted,
        } = offset_commit_records(
            &req.group_id,
            &req.partitions,
            now,
            expire_timestamp,
            max_metadata,
        );
        if batch.is_empty() {
            return Ok(results);
        }
        let first_offset = match log.append(partition, batch) {
            Ok(offset) => offset,
            Err(e) => {
                let e = coordinator_error(e);
                return Ok(results.into_iter().map(|r| r.or(Some(e))).collect());
            }
        };
        let group = self.groups.get_mut(&req.group_id).expect("present");
        for (i, (tp, committed)) in accepted.into_iter().enumerate() {
            let record_offset = first_offset + i as i64;
            group.offsets.commit(
                tp,
                StoredOffset {
                    committed,
                    record_offset,
                },
            );
        }
        Ok(results)
    }

    /// TxnOffsetCommit (KIP-98): stores the offsets as one transactional
    /// batch of the producer and keeps them pending, invisible to
    /// OffsetFetch, until [`Self::complete_transaction`] learns the
    /// transaction's outcome. `Err` applies to every partition; otherwise
    /// one result per partition of the request.
    ///
    /// The checks are Kafka 4.0's (`OffsetMetadataManager`
    /// `validateTransactionalOffsetCommit`, `ClassicGroup.validateOffsetCommit`):
    /// - an unknown group is created (as a group that only stores offsets)
    ///   when the generation is negative, and is ILLEGAL_GENERATION
    ///   otherwise; it is created only once the offsets are stored;
    /// - KIP-447: a member id, a generation or an instance id is checked
    ///   against the group (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
    ///   ILLEGAL_GENERATION); without them (versions 0-2) nothing is, and a
    ///   group in any state takes the offsets;
    /// - unlike OffsetCommit, a rebalancing group does not refuse the
    ///   commit, and the member's session is not extended;
    /// - metadata over `offset.metadata.max.bytes` fails that partition
    ///   only, with OFFSET_METADATA_TOO_LARGE.
    ///
    /// Whether the producer added the offsets to its transaction
    /// (AddOffsetsToTxn) is not verified, as Kafka 4.0 does not with
    /// transaction version 1; the log refuses a fenced producer epoch.
    pub fn txn_offset_commit(
        &mut self,
        req: &TxnCommitRequest,
        now: i64,
        log: &mut dyn GroupLog,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_coordinator(&req.group_id)?;
        let partition = self.partition_for(&req.group_id);
        let max_metadata = self.config.offset_metadata_max_bytes.max(0) as usize;
        match self.groups.get(&req.group_id) {
            None if req.generation_id < 0 => {}
            None => return Err(ResponseError::IllegalGeneration),
            Some(group) => validate_txn_commit(group, req)?,
        }
        let OffsetCommitBatch {
            results,
            records: batch,
            accepted,
        } = offset_commit_records(&req.group_id, &req.partitions, now, -1, max_metadata);
        if batch.is_empty() {
            return Ok(results);
        }
        let first_offset = match log.append_transactional(
            partition,
            req.producer_id,
            req.producer_epoch,
            batch,
        ) {
            Ok(offset) => offset,
            Err(e) => {
                let e = coordinator_error(e);
                info!(group = %req.group_id, producer_id = req.producer_id, "storing transactional offsets failed: {e:?}");
                return Ok(results.into_iter().map(|r| r.or(Some(e))).collect());
            }
        };
        let initial_delay_ms = self.config.initial_rebalance_delay_ms as i64;
        let group = self.groups.entry(req.group_id.clone()).or_insert_with(|| {
            info!(group = %req.group_id, "group created by a transactional offset commit");
            Group::new(&req.group_id, now, initial_delay_ms)
        });
        for (i, (tp, committed)) in accepted.into_iter().enumerate() {
            let record_offset = first_offset + i as i64;
            group.offsets.stage(
                req.producer_id,
                tp,
                StoredOffset {
                    committed,
                    record_offset,
                },
            );
        }
        self.open_transactions
            .entry(req.producer_id)
            .or_default()
            .insert(req.group_id.clone());
        debug!(group = %req.group_id, producer_id = req.producer_id, transactional_id = %req.transactional_id, "transactional offsets pending");
        Ok(results)
    }

    /// A COMMIT or ABORT marker of `producer_id` was written to
    /// `partition` of `__consumer_offsets` (Kafka's `handleTxnCompletion`).
    /// On commit the producer's pending offsets in the groups of that
    /// partition become committed, each unless a plain commit of the same
    /// partition was stored after it (the later record wins, as when the
    /// log is replayed); on abort they are dropped. Returns how many
    /// offsets became committed.
    ///
    /// The marker must be in the log before this is called. While the
    /// partition loads, the marker is kept and applied after the load: the
    /// load may have read the log before the marker was written, and a
    /// marker applied twice does nothing the second time (the producer's
    /// next transaction cannot store offsets before this call returns,
    /// since it waits for its previous transaction's markers). A partition
    /// this node does not coordinate is ignored: its leader reads the
    /// marker from the log.
    pub fn complete_transaction(
        &mut self,
        partition: i32,
        producer_id: i64,
        commit: bool,
    ) -> usize {
        match self.partitions.get(&partition) {
            None => {
                debug!(
                    partition,
                    producer_id, "transaction marker for a partition this node does not coordinate"
                );
                return 0;
            }
            Some(PartitionStatus::Loading) => {
                self.markers_while_loading
                    .entry(partition)
                    .or_default()
                    .push((producer_id, commit));
                return 0;
            }
            Some(PartitionStatus::Active) => {}
        }
        let n = self.config.num_partitions;
        let Some(names) = self.open_transactions.get_mut(&producer_id) else {
            return 0;
        };
        let (done, others): (BTreeSet<String>, BTreeSet<String>) = std::mem::take(names)
            .into_iter()
            .partition(|g| records::partition_for(g, n) == partition);
        if others.is_empty() {
            self.open_transactions.remove(&producer_id);
        } else {
            *names = others;
        }
        let mut materialized = 0;
        for name in &done {
            if let Some(group) = self.groups.get_mut(name) {
                materialized += group.offsets.complete(producer_id, commit);
            }
        }
        // Once per transaction that committed offsets: debug, not info.
        debug!(
            partition,
            producer_id,
            commit,
            groups = done.len(),
            offsets = materialized,
            "transactional offsets completed"
        );
        materialized
    }

    /// Whether `group_id` has a pending transactional offset of the
    /// partition: OffsetFetch with `require_stable` (KIP-447, version 7+)
    /// answers it with UNSTABLE_OFFSET_COMMIT and offset -1 rather than the
    /// committed offset, which the open transaction may be about to
    /// replace.
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| g.offsets.has_pending(&(topic.to_string(), partition)))
    }

    /// OffsetFetch of one group: the committed offsets of `partitions`, or
    /// of every partition with one when `None`. Partitions without a
    /// commit are answered by the caller with offset -1. Pending
    /// transactional offsets are not returned (see [`Self::has_pending`]).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<(TopicPartitionKey, Option<Committed>)>, ResponseError> {
        self.check_coordinator(group_id)?;
        let offsets = self.groups.get(group_id).map(|g| &g.offsets.committed);
        Ok(match partitions {
            Some(ps) => ps
                .iter()
                .map(|tp| {
                    let committed = offsets.and_then(|o| o.get(tp)).map(|s| s.committed.clone());
                    (tp.clone(), committed)
                })
                .collect(),
            None => {
                let mut all: Vec<_> = offsets
                    .map(|o| {
                        o.iter()
                            .map(|(tp, s)| (tp.clone(), Some(s.committed.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
        })
    }

    /// OffsetDelete: `Err` is the group-level error; otherwise one result
    /// per partition. A partition's tombstone deletes its pending
    /// transactional offsets too (Kafka 4.0).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        log: &mut dyn GroupLog,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        let partition = self.partition_for(group_id);
        let group = self
            .groups
            .get_mut(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(ResponseError::GroupIdNotFound)?;
        // `None`: the subscriptions cannot be read, so every topic counts
        // as subscribed, to be safe (Kafka's isSubscribedToTopic).
        let subscribed = if group.state == GroupState::Empty {
            Some(BTreeSet::new())
        } else if group.protocol_type.as_deref() == Some("consumer") {
            group.subscribed_topics()
        } else {
            return Err(ResponseError::NonEmptyGroup);
        };
        let stored = group.offsets.partitions();
        let mut results = Vec::with_capacity(partitions.len());
        let mut batch = Vec::new();
        for (topic, p) in partitions {
            if subscribed.as_ref().is_none_or(|s| s.contains(topic)) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            if stored.contains(&(topic.clone(), *p)) {
                batch.push(offset_tombstone(group_id, topic, *p));
            }
            results.push(None);
        }
        if !batch.is_empty() {
            log.append(partition, batch).map_err(coordinator_error)?;
        }
        for ((topic, p), r) in partitions.iter().zip(&results) {
            if r.is_none() {
                group.offsets.remove(&(topic.clone(), *p));
            }
        }
        Ok(results)
    }

    // ---- Admin -----------------------------------------------------------

    /// DeleteGroups of one group. An empty group is deleted even while a
    /// transaction holds pending offsets of it, as in Kafka: those are
    /// deleted with it.
    pub fn delete_group(
        &mut self,
        group_id: &str,
        log: &mut dyn GroupLog,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        let partition = self.partition_for(group_id);
        let group = self
            .groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(ResponseError::GroupIdNotFound)?;
        if group.state != GroupState::Empty {
            return Err(ResponseError::NonEmptyGroup);
        }
        // Pending transactional offsets get tombstones too (Kafka 4.0's
        // deleteAllOffsets), so that their transaction's COMMIT marker
        // does not bring them back when the log is replayed.
        let mut batch: Vec<(Bytes, Option<Bytes>)> = group
            .offsets
            .partitions()
            .iter()
            .map(|(topic, p)| offset_tombstone(group_id, topic, *p))
            .collect();
        batch.push((records::group_key(group_id), None));
        log.append(partition, batch).map_err(coordinator_error)?;
        self.groups.remove(group_id);
        info!(group = %group_id, "group deleted");
        Ok(())
    }

    /// DescribeGroups of one group; `None` when it does not exist.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, ResponseError> {
        self.check_coordinator(group_id)?;
        let Some(group) = self.groups.get(group_id) else {
            return Ok(None);
        };
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol.clone().unwrap_or_default();
        Ok(Some(GroupDescription {
            group_id: group.id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }))
    }

    /// ListGroups: every group of the loaded partitions.
    pub fn list(&self) -> Vec<GroupListing> {
        let mut v: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| {
                self.partitions.get(&self.partition_for(&g.id)) == Some(&PartitionStatus::Active)
            })
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    /// Whether any partition is still loading (ListGroups then says
    /// COORDINATOR_LOAD_IN_PROGRESS).
    pub fn loading(&self) -> bool {
        self.partitions
            .values()
            .any(|s| *s == PartitionStatus::Loading)
    }

    // ---- Timers ----------------------------------------------------------

    /// The earliest time [`Self::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for g in self.groups.values() {
            if let Some(t) = g.join_deadline {
                consider(t);
            }
            if let Some(t) = g.sync_deadline {
                consider(t);
            }
            for &t in g.pending_members.values() {
                consider(t);
            }
            for m in g.members.values() {
                if m.is_new || (m.awaiting_join.is_none() && m.awaiting_sync.is_none()) {
                    consider(m.heartbeat_deadline);
                }
            }
        }
        next
    }

    /// Runs the timeouts due at `now`: expired sessions and pending
    /// members, the end of a join phase, members that never synced.
    pub fn tick(&mut self, now: i64, log: &mut dyn GroupLog) -> Vec<Output> {
        let mut out = Vec::new();
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(group) = self.groups.get_mut(&name) else {
                continue;
            };
            let mut changed = false;
            let before = group.pending_members.len();
            group.pending_members.retain(|_, deadline| *deadline > now);
            changed |= group.pending_members.len() != before;
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.expired(now))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                info!(group = %name, member = %id, "member's session timed out");
                remove_member_and_update(group, &id, now, "a member's session timed out", &mut out);
                changed = true;
            }
            if group.sync_deadline.is_some_and(|t| t <= now) {
                group.sync_deadline = None;
                if matches!(
                    group.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                ) && !group.pending_sync.is_empty()
                {
                    let missing: Vec<String> = group.pending_sync.iter().cloned().collect();
                    info!(group = %name, members = ?missing, "members did not sync in time; removing them");
                    for id in missing {
                        remove_member_and_update(group, &id, now, "members did not sync", &mut out);
                    }
                    changed = true;
                }
            }
            if group.state == GroupState::PreparingRebalance
                && group.join_deadline.is_some_and(|t| t <= now)
            {
                match group.initial_delay_remaining {
                    Some(remaining) if group.new_member_added && remaining > 0 => {
                        // Members keep arriving: wait a little longer.
                        group.new_member_added = false;
                        let delay = (self.config.initial_rebalance_delay_ms as i64).min(remaining);
                        group.initial_delay_remaining = Some((remaining - delay).max(0));
                        group.join_deadline = Some(now + delay);
                    }
                    _ => {
                        self.complete_join(&name, now, log, &mut out);
                        continue;
                    }
                }
            }
            if changed {
                self.try_complete_join(&name, now, log, &mut out);
            }
        }
        out
    }
    /// Deletes the committed offsets of topics that were deleted (Kafka's
    /// `onPartitionsDeleted`), so a topic created again under the same name
    /// does not inherit them. Returns how many offsets were removed.
    pub fn remove_offsets_of_topics(&mut self, topics: &[String], log: &mut dyn GroupLog) -> usize {
        if topics.is_empty() {
            return 0;
        }
        let n = self.config.num_partitions;
        let mut removed = 0;
        for (name, group) in self.groups.iter_mut() {
            let partition = records::partition_for(name, n);
            if self.partitions.get(&partition) != Some(&PartitionStatus::Active) {
                continue;
            }
            // Pending transactional offsets of the topics go too (Kafka
            // 4.0's onPartitionsDeleted).
            let gone: Vec<TopicPartitionKey> = group
                .offsets
                .partitions()
                .into_iter()
                .filter(|(t, _)| topics.contains(t))
                .collect();
            if gone.is_empty() {
                continue;
            }
            let batch = gone
                .iter()
                .map(|(topic, p)| offset_tombstone(name, topic, *p))
                .collect();
            if let Err(e) = log.append(partition, batch) {
                info!(group = %name, "removing offsets of deleted topics failed: {e:?}");
                continue;
            }
            for tp in &gone {
                group.offsets.remove(tp);
            }
            removed += gone.len();
        }
        if removed > 0 {
            info!(offsets = removed, topics = ?topics, "removed committed offsets of deleted topics");
        }
        removed
    }

    /// Expires committed offsets past `offsets.retention.minutes` and
    /// removes groups left with neither members nor offsets (committed or
    /// pending in a transaction).
    pub fn expire_offsets(&mut self, now: i64, log: &mut dyn GroupLog) -> usize {
        let retention = self.config.offsets_retention_ms;
        let n = self.config.num_partitions;
        let mut expired_total = 0;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let partition = records::partition_for(&name, n);
            if self.partitions.get(&partition) != Some(&PartitionStatus::Active) {
                continue;
            }
            let group = self.groups.get_mut(&name).expect("listed");
            // Kafka's removeExpiredOffsets: the group's state picks the
            // offsets that may expire and the time retention counts from;
            // an offset's own expire timestamp (OffsetCommit v2-v4) only
            // replaces the latter.
            let subscribed = group.subscribed_topics();
            let rule = match (group.state, &group.protocol_type) {
                // An empty group: from the time it emptied.
                (GroupState::Empty, Some(_)) => Some((Some(group.state_timestamp), None)),
                // A stable consumer group: from the commit, for the topics
                // it no longer reads.
                (GroupState::Stable, Some(_)) if subscribed.is_some() => {
                    Some((None, subscribed.as_ref()))
                }
                // Offsets only (no group management): from the commit.
                (_, None) => Some((None, None)),
                // A rebalancing group, or one whose topics are unknown.
                _ => None,
            };
            let expired: Vec<(String, i32)> = match rule {
                None => Vec::new(),
                Some((since, subscribed)) => group
                    .offsets
                    .committed
                    .iter()
                    .map(|(tp, s)| (tp, &s.committed))
                    .filter(|(tp, c)| {
                        let topic = &tp.0;
                        if subscribed.is_some_and(|s| s.contains(topic)) {
                            return false;
                        }
                        // Kafka 4.0: an offset an open transaction may
                        // replace does not expire yet.
                        if group.offsets.has_pending(tp) {
                            return false;
                        }
                        if c.expire_timestamp >= 0 {
                            return now >= c.expire_timestamp;
                        }
                        now >= since.unwrap_or(c.commit_timestamp) + retention
                    })
                    .map(|(tp, _)| tp.clone())
                    .collect(),
            };
            // A group is not removed while a transaction holds pending
            // offsets of it (Kafka's hasOffsets / openTransactionsByGroup).
            let mut batch: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(topic, p)| offset_tombstone(&name, topic, *p))
                .collect();
            let remove_group = group.state == GroupState::Empty
                && group.offsets.committed.len() == expired.len()
                && group.offsets.pending.is_empty()
                && group.pending_members.is_empty();
            if remove_group {
                batch.push((records::group_key(&name), None));
            }
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = log.append(partition, batch) {
                info!(group = %name, "expiring offsets failed: {e:?}");
                continue;
            }
            for tp in &expired {
                group.offsets.remove(tp);
            }
            expired_total += expired.len();
            if remove_group {
                info!(group = %name, offsets = expired.len(), "expired offsets; group removed");
                self.groups.remove(&name);
            } else if !expired.is_empty() {
                info!(group = %name, offsets = expired.len(), "expired offsets");
            }
        }
        expired_total
    }
}

// ---- Group helpers (free functions so the borrow of one group is enough) ----

/// The tombstone of a committed offset.
fn offset_tombstone(group: &str, topic: &str, partition: i32) -> (Bytes, Option<Bytes>) {
    (
        records::offset_key(&OffsetKey {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }),
        None,
    )
}

/// What an offset commit appends.
struct OffsetCommitBatch {
    /// Per partition of the request: `None`, or OFFSET_METADATA_TOO_LARGE.
    results: Vec<Option<ResponseError>>,
    /// One record per accepted partition.
    records: Vec<(Bytes, Option<Bytes>)>,
    /// The offsets the records hold, in record order.
    accepted: Vec<(TopicPartitionKey, Committed)>,
}

/// The records of an offset commit's partitions.
fn offset_commit_records(
    group_id: &str,
    partitions: &[CommitPartition],
    now: i64,
    expire_timestamp: i64,
    max_metadata: usize,
) -> OffsetCommitBatch {
    let mut results = Vec::with_capacity(partitions.len());
    let mut batch = Vec::new();
    let mut accepted = Vec::new();
    for p in partitions {
        let metadata = p.metadata.clone().unwrap_or_default();
        if metadata.len() > max_metadata {
            results.push(Some(ResponseError::OffsetMetadataTooLarge));
            continue;
        }
        let value = records::OffsetValue {
            offset: p.offset,
            leader_epoch: p.leader_epoch,
            metadata: metadata.clone(),
            commit_timestamp: now,
            expire_timestamp,
        };
        batch.push((
            records::offset_key(&OffsetKey {
                group: group_id.to_string(),
                topic: p.topic.clone(),
                partition: p.partition,
            }),
            Some(records::offset_value(&value)),
        ));
        accepted.push((
            (p.topic.clone(), p.partition),
            Committed {
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata,
                commit_timestamp: value.commit_timestamp,
                expire_timestamp: value.expire_timestamp,
            },
        ));
        results.push(None);
    }
    OffsetCommitBatch {
        results,
        records: batch,
        accepted,
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for a transactional commit
/// to an existing group.
fn validate_txn_commit(group: &Group, req: &TxnCommitRequest) -> Result<(), ResponseError> {
    if group.state == GroupState::Dead {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && group.state == GroupState::Empty {
        // A producer outside group management, or an admin client.
        return Ok(());
    }
    let membership_given =
        req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some();
    if !membership_given {
        // Versions 0-2 carry no membership: the offsets are taken whatever
        // the group's state.
        return Ok(());
    }
    if let Some(instance) = &req.group_instance_id {
        match group.static_members.get(instance) {
            None => return Err(ResponseError::UnknownMemberId),
            Some(known) if *known != req.member_id => {
                info!(group = %group.id, member = %req.member_id, instance = %instance, current = %known, "transactional offset commit of a fenced static member");
                return Err(ResponseError::FencedInstanceId);
            }
            Some(_) => {}
        }
    }
    if !group.members.contains_key(&req.member_id) {
        return Err(ResponseError::UnknownMemberId);
    }
    if req.generation_id != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}

fn add_member(
    group: &mut Group,
    req: &JoinRequest,
    member_id: String,
    reply: ReplyId,
    now: i64,
    out: &mut Vec<Output>,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    if let Some(i) = &req.group_instance_id {
        group.static_members.insert(i.clone(), member_id.clone());
    }
    if group.leader.is_none() {
        group.leader = Some(member_id.clone());
    }
    group.members.insert(
        member_id.clone(),
        Member {
            id: member_id,
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: now + NEW_MEMBER_JOIN_TIMEOUT_MS,
        },
    );
    if group.state == GroupState::PreparingRebalance && group.generation == 0 {
        group.new_member_added = true;
    }
    maybe_prepare_rebalance(group, now, "a new member joined", out);
}

fn update_member_and_rebalance(
    group: &mut Group,
    req: &JoinRequest,
    reply: ReplyId,
    now: i64,
    out: &mut Vec<Output>,
) {
    let m = group.members.get_mut(&req.member_id).expect("checked");
    m.protocols = req.protocols.clone();
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.session_timeout_ms = req.session_timeout_ms;
    replace_join_reply(group, &req.member_id, Some(reply), out);
    maybe_prepare_rebalance(group, now, "a member rejoined", out);
}

/// Parks `reply` as the member's join; an older parked join (the client
/// gave up on it and asked again) is answered with UNKNOWN_MEMBER_ID.
fn replace_join_reply(
    group: &mut Group,
    member_id: &str,
    reply: Option<ReplyId>,
    out: &mut Vec<Output>,
) {
    let m = group.members.get_mut(member_id).expect("checked");
    let old = std::mem::replace(&mut m.awaiting_join, reply);
    if let Some(old) = old.filter(|o| Some(*o) != reply) {
        out.push(Output::Join(
            old,
            JoinResult::error(member_id, ResponseError::UnknownMemberId),
        ));
    }
}

fn maybe_prepare_rebalance(group: &mut Group, now: i64, reason: &str, out: &mut Vec<Output>) {
    if matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
    ) {
        prepare_rebalance(group, now, reason, out);
    }
}

fn prepare_rebalance(group: &mut Group, now: i64, reason: &str, out: &mut Vec<Output>) {
    if group.state == GroupState::CompletingRebalance {
        propagate_sync_error(group, ResponseError::RebalanceInProgress, now, out);
    }
    group.pending_sync.clear();
    group.sync_deadline = None;
    let timeout = group.rebalance_timeout_ms();
    if group.state == GroupState::Empty {
        // The first rebalance waits group.initial.rebalance.delay.ms for
        // more members; `tick` extends it while members keep coming.
        let delay = group.initial_delay_ms;
        group.initial_delay_remaining = Some((timeout - delay).max(0));
        group.new_member_added = false;
        group.join_deadline = Some(now + delay);
    } else {
        group.initial_delay_remaining = None;
        group.join_deadline = Some(now + timeout);
    }
    info!(group = %group.id, generation = group.generation, reason, "preparing to rebalance");
    group.transition(GroupState::PreparingRebalance, now);
}

/// Answers every parked SyncGroup with `error` and forgets the
/// assignments of the generation. A member answered starts a new session,
/// as in Kafka's `propagateAssignment`: its heartbeats were not due while
/// it waited, so its old deadline may have passed long ago.
fn propagate_sync_error(group: &mut Group, error: ResponseError, now: i64, out: &mut Vec<Output>) {
    for m in group.members.values_mut() {
        m.assignment = Bytes::new();
        if let Some(r) = m.awaiting_sync.take() {
            out.push(Output::Sync(r, SyncResult::error(error)));
            m.heartbeat_deadline = now + m.session_timeout_ms as i64;
        }
    }
}

/// Removes a member, answering its parked requests with
/// UNKNOWN_MEMBER_ID, and picks a new leader if it led.
fn remove_member(group: &mut Group, member_id: &str, out: &mut Vec<Output>) {
    let Some(m) = group.members.remove(member_id) else {
        return;
    };
    if let Some(r) = m.awaiting_join {
        out.push(Output::Join(
            r,
            JoinResult::error("", ResponseError::UnknownMemberId),
        ));
    }
    if let Some(r) = m.awaiting_sync {
        out.push(Output::Sync(
            r,
            SyncResult::error(ResponseError::UnknownMemberId),
        ));
    }
    if let Some(i) = &m.instance_id {
        if group.static_members.get(i).map(String::as_str) == Some(member_id) {
            group.static_members.remove(i);
        }
    }
    group.pending_sync.remove(member_id);
    if group.leader.as_deref() == Some(member_id) {
        group.leader = group.members.keys().next().cloned();
    }
}

fn remove_member_and_update(
    group: &mut Group,
    member_id: &str,
    now: i64,
    reason: &str,
    out: &mut Vec<Output>,
) {
    remove_member(group, member_id, out);
    maybe_prepare_rebalance_unless_empty(group, now, reason, out);
}

fn maybe_prepare_rebalance_unless_empty(
    group: &mut Group,
    now: i64,
    reason: &str,
    out: &mut Vec<Output>,
) {
    if matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance
    ) {
        prepare_rebalance(group, now, reason, out);
    }
}
