//! The sans-IO KRaft state machine.
//!
//! Inputs are calls with the current time (`now`, milliseconds): a request
//! received, a response received, a send that failed, a proposal, a tick.
//! Each call queues [`Action`]s that the driver must perform in order,
//! completely, before the next call: persist the election state, append,
//! truncate, fsync, send, respond, publish the high watermark. The core
//! never reads a clock, a socket or a file; what it knows of the log is
//! the [`LogState`] it was started with plus its own actions.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    begin_quorum_epoch_request, begin_quorum_epoch_response, describe_quorum_response,
    end_quorum_epoch_request, end_quorum_epoch_response, fetch_request, fetch_response,
    fetch_snapshot_request, fetch_snapshot_response, vote_request, vote_response,
    BeginQuorumEpochRequest, BeginQuorumEpochResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, EndQuorumEpochRequest, EndQuorumEpochResponse, FetchRequest,
    FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, TopicName, VoteRequest,
    VoteResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use crate::batch;
use crate::role::{transition_allowed, EpochChange, RoleInfo, RoleKind};
use crate::types::{
    ElectionState, LogState, NodeId, OffsetAndEpoch, RaftConfig, METADATA_PARTITION,
    METADATA_TOPIC, METADATA_TOPIC_ID,
};

/// Names an inbound request so its response can be sent later.
pub type RequestId = u64;

/// A KRaft request, as the `kafka-protocol` crate types it.
#[derive(Debug, Clone, PartialEq)]
pub enum RaftRequest {
    Vote(VoteRequest),
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    EndQuorumEpoch(EndQuorumEpochRequest),
    Fetch(FetchRequest),
    FetchSnapshot(FetchSnapshotRequest),
    DescribeQuorum(DescribeQuorumRequest),
}

/// A KRaft response.
#[derive(Debug, Clone, PartialEq)]
pub enum RaftResponse {
    Vote(VoteResponse),
    BeginQuorumEpoch(BeginQuorumEpochResponse),
    EndQuorumEpoch(EndQuorumEpochResponse),
    Fetch(FetchResponse),
    FetchSnapshot(FetchSnapshotResponse),
    DescribeQuorum(DescribeQuorumResponse),
}

impl RaftRequest {
    pub fn api_name(&self) -> &'static str {
        match self {
            RaftRequest::Vote(_) => "Vote",
            RaftRequest::BeginQuorumEpoch(_) => "BeginQuorumEpoch",
            RaftRequest::EndQuorumEpoch(_) => "EndQuorumEpoch",
            RaftRequest::Fetch(_) => "Fetch",
            RaftRequest::FetchSnapshot(_) => "FetchSnapshot",
            RaftRequest::DescribeQuorum(_) => "DescribeQuorum",
        }
    }
}

/// Records the driver reads into a Fetch response: whole batches starting
/// at the batch that holds `from`, ending before `end`, at most
/// `max_bytes` of them but always at least one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRecords {
    pub from: i64,
    pub end: i64,
    pub max_bytes: usize,
}

/// Bytes of a snapshot file the driver reads into a FetchSnapshot response
/// (`unaligned_records`), also setting its `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSnapshot {
    pub id: OffsetAndEpoch,
    pub position: u64,
    pub max_bytes: usize,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write the `quorum-state` file and fsync it before anything after.
    PersistElectionState(ElectionState),
    /// Append whole batches, offsets already assigned, at the log end.
    Append { batches: Bytes },
    /// Remove every record at or after `end_offset`.
    Truncate { end_offset: i64 },
    /// Fsync the log up to `end_offset` before anything after.
    Flush { end_offset: i64 },
    /// Send a request; its response comes back through
    /// [`RaftCore::handle_response`] with the same `seq`.
    Send {
        to: NodeId,
        seq: u64,
        request: RaftRequest,
    },
    /// Answer request `id`.
    Respond {
        id: RequestId,
        response: RaftResponse,
    },
    /// Answer Fetch request `id` after reading `read` into its records.
    RespondFetch {
        id: RequestId,
        response: FetchResponse,
        read: Option<ReadRecords>,
    },
    /// Answer FetchSnapshot request `id` after reading `read`.
    RespondFetchSnapshot {
        id: RequestId,
        response: FetchSnapshotResponse,
        read: Option<ReadSnapshot>,
    },
    /// Records below this offset are committed (exclusive end).
    HighWatermark(i64),
    /// The role, epoch or known leader changed.
    RoleChanged(RoleInfo),
    /// Write a chunk of a snapshot being downloaded at `position`.
    WriteSnapshotChunk {
        id: OffsetAndEpoch,
        position: u64,
        bytes: Bytes,
    },
    /// The downloaded snapshot is complete: make it durable, then replace
    /// the log by an empty one starting at `id.offset`.
    InstallSnapshot { id: OffsetAndEpoch },
    /// Advance the log start offset to `offset` (a snapshot covers it).
    DeleteBefore { offset: i64 },
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (epoch {epoch}, leader {leader:?})")]
    NotLeader { epoch: i32, leader: Option<NodeId> },
    #[error("the proposal of {bytes} bytes is larger than a batch may be")]
    TooLarge { bytes: usize },
}

/// Replication progress of one replica, as the leader sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaProgress {
    pub end_offset: Option<i64>,
    pub last_fetch_ms: Option<u64>,
    pub last_caught_up_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct LeaderState {
    epoch: i32,
    /// Offset of the LeaderChange record that opened the epoch; the high
    /// watermark moves only once a record at or after it is committed.
    epoch_start_offset: i64,
    voters: BTreeMap<NodeId, ReplicaProgress>,
    observers: BTreeMap<NodeId, ReplicaProgress>,
    /// Voters that have not yet acknowledged the epoch (BeginQuorumEpoch
    /// answered or a Fetch in this epoch).
    unacked: BTreeSet<NodeId>,
    /// When the leader became leader; check-quorum starts from here.
    since_ms: u64,
    /// Proposals waiting for the linger time.
    pending: Vec<Bytes>,
    pending_bytes: usize,
    linger_deadline: Option<u64>,
}

#[derive(Debug, Clone)]
enum Role {
    Unattached {
        epoch: i32,
        election_deadline: u64,
    },
    Voted {
        epoch: i32,
        voted_id: NodeId,
        election_deadline: u64,
    },
    Candidate {
        epoch: i32,
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        retries: u32,
        election_deadline: u64,
        /// Set once the election is lost or timed out: the next one
        /// starts at this time.
        backoff_until: Option<u64>,
    },
    Leader(Box<LeaderState>),
    Follower {
        epoch: i32,
        leader_id: NodeId,
        /// No successful Fetch from the leader by then: a voter stands
        /// for election, an observer looks for the leader again.
        fetch_deadline: u64,
        /// The snapshot being downloaded and the next position.
        snapshot: Option<(OffsetAndEpoch, u64)>,
    },
    Resigned {
        epoch: i32,
        election_deadline: u64,
        successors: Vec<NodeId>,
        unacked: BTreeSet<NodeId>,
    },
}

impl Role {
    fn kind(&self) -> RoleKind {
        match self {
            Role::Unattached { .. } => RoleKind::Unattached,
            Role::Voted { .. } => RoleKind::Voted,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower { .. } => RoleKind::Follower,
            Role::Resigned { .. } => RoleKind::Resigned,
        }
    }

    fn epoch(&self) -> i32 {
        match self {
            Role::Unattached { epoch, .. }
            | Role::Voted { epoch, .. }
            | Role::Candidate { epoch, .. }
            | Role::Follower { epoch, .. }
            | Role::Resigned { epoch, .. } => *epoch,
            Role::Leader(l) => l.epoch,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    api: &'static str,
    deadline: u64,
}

#[derive(Debug, Clone)]
struct ParkedFetch {
    id: RequestId,
    fetch_offset: i64,
    max_bytes: usize,
    deadline: u64,
    /// The high watermark when it was parked; a change completes it.
    high_watermark: i64,
}

/// The result of checking a follower's fetch position against the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchPosition {
    Valid,
    Diverging(OffsetAndEpoch),
    Snapshot(OffsetAndEpoch),
}

/// SplitMix64: small, seedable, good enough for timeouts.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}

/// Most observers the leader tracks for DescribeQuorum.
const MAX_OBSERVERS: usize = 1024;

/// The KRaft state machine of one node.
#[derive(Debug)]
pub struct RaftCore {
    config: RaftConfig,
    rng: Rng,
    role: Role,
    /// The election state last persisted.
    election: ElectionState,
    log: LogState,
    /// Log end offset known to be on disk.
    flushed_end: i64,
    /// Exclusive end of the committed records on this node.
    high_watermark: i64,
    /// The size of the newest snapshot file, for FetchSnapshot.
    snapshot_size: u64,
    actions: Vec<Action>,
    next_seq: u64,
    in_flight: BTreeMap<NodeId, InFlight>,
    backoff_until: BTreeMap<NodeId, u64>,
    parked: Vec<ParkedFetch>,
    /// Observers without a leader ask the voters in turn.
    observer_cursor: usize,
    /// A follower that lost its leader (fetch timeout) but may not stand:
    /// it fetches from the voters in turn until one names the leader.
    discovering: bool,
    shutting_down: bool,
}

impl RaftCore {
    /// Starts a node from its persisted election state (None on first
    /// start) and the state of its log. The first actions (an election on a
    /// single-voter quorum, for instance) are queued at once.
    pub fn new(
        config: RaftConfig,
        persisted: Option<ElectionState>,
        log: LogState,
        snapshot_size: u64,
        now: u64,
    ) -> RaftCore {
        let mut rng = Rng(config.random_seed);
        let log_epoch = log
            .epochs
            .last()
            .map(|e| e.0)
            .or(log.latest_snapshot.map(|s| s.epoch))
            .unwrap_or(0);
        let mut election =
            persisted.unwrap_or_else(|| ElectionState::unattached(0, config.voters.clone()));
        let timeout = config.election_timeout_ms + rng.below(config.election_timeout_ms.max(1));
        let role = if election.epoch < log_epoch {
            // The log holds a newer epoch than the file: trust the log.
            election = ElectionState::unattached(log_epoch, config.voters.clone());
            Role::Unattached {
                epoch: log_epoch,
                election_deadline: now + timeout,
            }
        } else if election.leader_id == Some(config.node_id) {
            Role::Resigned {
                epoch: election.epoch,
                election_deadline: now + timeout,
                successors: Vec::new(),
                unacked: BTreeSet::new(),
            }
        } else if let Some(leader_id) = election.leader_id {
            Role::Follower {
                epoch: election.epoch,
                leader_id,
                fetch_deadline: now + config.fetch_timeout_ms,
                snapshot: None,
            }
        } else if election.voted_id == Some(config.node_id) && config.is_voter() {
            Role::Candidate {
                epoch: election.epoch,
                granted: BTreeSet::from([config.node_id]),
                rejected: BTreeSet::new(),
                retries: 1,
                election_deadline: now + timeout,
                backoff_until: None,
            }
        } else if let Some(voted_id) = election.voted_id {
            Role::Voted {
                epoch: election.epoch,
                voted_id,
                election_deadline: now + timeout,
            }
        } else {
            Role::Unattached {
                epoch: election.epoch,
                election_deadline: now + timeout,
            }
        };
        let high_watermark = log.latest_snapshot.map_or(0, |s| s.offset);
        let mut core = RaftCore {
            flushed_end: log.end_offset,
            config,
            rng,
            role,
            election,
            log,
            high_watermark,
            snapshot_size,
            actions: Vec::new(),
            next_seq: 1,
            in_flight: BTreeMap::new(),
            backoff_until: BTreeMap::new(),
            parked: Vec::new(),
            observer_cursor: 0,
            discovering: false,
            shutting_down: false,
        };
        let info = core.role_info();
        core.actions.push(Action::RoleChanged(info));
        if core.high_watermark > 0 {
            core.actions
                .push(Action::HighWatermark(core.high_watermark));
        }
        // A lone voter elects itself at once.
        if core.config.is_voter()
            && core.config.voters.len() == 1
            && !matches!(core.role, Role::Leader(_))
        {
            core.become_candidate(now);
        }
        core.maybe_send(now);
        core
    }

    // ---- queries -------------------------------------------------------

    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    pub fn role_info(&self) -> RoleInfo {
        RoleInfo {
            kind: self.role.kind(),
            epoch: self.role.epoch(),
            leader_id: self.leader_id(),
        }
    }

    pub fn epoch(&self) -> i32 {
        self.role.epoch()
    }

    pub fn leader_id(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(_) | Role::Resigned { .. } => Some(self.config.node_id),
            Role::Follower { leader_id, .. } => Some(*leader_id),
            _ => None,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_state(&self) -> &LogState {
        &self.log
    }

    pub fn election_state(&self) -> &ElectionState {
        &self.election
    }

    /// The offset of the first record of the leader's epoch, when leader.
    pub fn epoch_start_offset(&self) -> Option<i64> {
        match &self.role {
            Role::Leader(l) => Some(l.epoch_start_offset),
            _ => None,
        }
    }

    /// The leader's view of a replica's progress.
    pub fn replica_progress(&self, id: NodeId) -> Option<ReplicaProgress> {
        match &self.role {
            Role::Leader(l) => l.voters.get(&id).or(l.observers.get(&id)).copied(),
            _ => None,
        }
    }

    /// Takes the queued actions.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// When [`RaftCore::tick`] must be called next at the latest.
    pub fn next_deadline(&self) -> u64 {
        let mut d = u64::MAX;
        let mut at = |t: u64| d = d.min(t);
        match &self.role {
            Role::Unattached {
                election_deadline, ..
            }
            | Role::Voted {
                election_deadline, ..
            } => {
                if self.config.is_voter() && !self.shutting_down {
                    at(*election_deadline)
                }
            }
            Role::Candidate {
                election_deadline,
                backoff_until,
                ..
            } => {
                if !self.shutting_down {
                    at(backoff_until.unwrap_or(*election_deadline))
                }
            }
            Role::Leader(l) => {
                if let Some(t) = l.linger_deadline {
                    at(t)
                }
                at(self.check_quorum_deadline(l))
            }
            Role::Follower { fetch_deadline, .. } => at(*fetch_deadline),
            Role::Resigned {
                election_deadline, ..
            } => {
                if !self.shutting_down {
                    at(*election_deadline)
                }
            }
        }
        for p in &self.parked {
            at(p.deadline);
        }
        for f in self.in_flight.values() {
            at(f.deadline);
        }
        for t in self.backoff_until.values() {
            at(*t);
        }
        d
    }

    // ---- inputs --------------------------------------------------------

    /// Time passed: elections, linger, timeouts, resends.
    pub fn tick(&mut self, now: u64) {
        self.expire_in_flight(now);
        match &self.role {
            Role::Unattached {
                election_deadline, ..
            }
            | Role::Voted {
                election_deadline, ..
            } if now >= *election_deadline && self.config.is_voter() && !self.shutting_down => {
                info!(
                    epoch = self.epoch(),
                    "election timeout; standing for election"
                );
                self.become_candidate(now);
            }
            Role::Candidate {
                election_deadline,
                backoff_until,
                ..
            } => match backoff_until {
                Some(t) if now >= *t && !self.shutting_down => self.become_candidate(now),
                None if now >= *election_deadline && !self.shutting_down => {
                    debug!(epoch = self.epoch(), "election timed out; backing off");
                    self.start_backoff(now);
                }
                _ => {}
            },
            Role::Leader(l) => {
                if l.linger_deadline.is_some_and(|t| now >= t) {
                    self.drain_pending(now);
                }
                if let Role::Leader(l) = &self.role {
                    if now >= self.check_quorum_deadline(l) {
                        warn!(
                            epoch = l.epoch,
                            "no Fetch from a majority of voters within controller.quorum.fetch.timeout.ms; resigning"
                        );
                        self.resign(now);
                    }
                }
            }
            Role::Follower { fetch_deadline, .. } if now >= *fetch_deadline => {
                if self.config.is_voter() && !self.shutting_down {
                    info!(
                        epoch = self.epoch(),
                        leader = ?self.leader_id(),
                        "no Fetch response from the leader within controller.quorum.fetch.timeout.ms; standing for election"
                    );
                    self.become_candidate(now);
                } else {
                    // An observer (or a voter shutting down) keeps its
                    // role and asks the voters in turn who leads (Kafka
                    // fetches from the bootstrap servers).
                    self.discovering = true;
                    // The Fetch to the silent leader is abandoned.
                    if let Some(leader) = self.leader_id() {
                        self.in_flight.remove(&leader);
                    }
                    let timeout = self.config.fetch_timeout_ms;
                    if let Role::Follower { fetch_deadline, .. } = &mut self.role {
                        *fetch_deadline = now + timeout;
                    }
                }
            }
            Role::Resigned {
                election_deadline, ..
            } if now >= *election_deadline && !self.shutting_down => {
                self.become_candidate(now);
            }
            _ => {}
        }
        self.complete_parked(now, true);
        self.maybe_send(now);
    }

    /// Proposes records (already encoded values) for the log. Returns the
    /// offset of the last of them; it is committed once the high watermark
    /// passes it while this node is still leader of this epoch.
    pub fn propose(&mut self, now: u64, values: Vec<Bytes>) -> Result<(i64, i32), ProposeError> {
        let bytes: usize = values.iter().map(|v| v.len() + 32).sum();
        if bytes > self.config.max_batch_bytes {
            return Err(ProposeError::TooLarge { bytes });
        }
        let end = self.log.end_offset;
        let Role::Leader(l) = &mut self.role else {
            return Err(ProposeError::NotLeader {
                epoch: self.role.epoch(),
                leader: self.leader_id(),
            });
        };
        if self.shutting_down {
            return Err(ProposeError::NotLeader {
                epoch: l.epoch,
                leader: None,
            });
        }
        if values.is_empty() {
            return Ok((end + l.pending.len() as i64 - 1, l.epoch));
        }
        if l.pending_bytes + bytes > self.config.max_batch_bytes {
            self.drain_pending(now);
        }
        let end = self.log.end_offset;
        let Role::Leader(l) = &mut self.role else {
            unreachable!("draining keeps the leader role")
        };
        l.pending.extend(values);
        l.pending_bytes += bytes;
        if l.linger_deadline.is_none() {
            l.linger_deadline = Some(now + self.config.append_linger_ms);
        }
        let last = end + l.pending.len() as i64 - 1;
        let epoch = l.epoch;
        if self.config.append_linger_ms == 0 {
            self.drain_pending(now);
        }
        Ok((last, epoch))
    }

    /// Graceful shutdown: a leader resigns and tells the voters, naming
    /// the successors by how much of the log they hold.
    pub fn shutdown(&mut self, now: u64) {
        self.shutting_down = true;
        if matches!(self.role, Role::Leader(_)) {
            self.resign(now);
        }
        self.maybe_send(now);
    }

    /// Whether a graceful shutdown has nothing left to tell the voters.
    pub fn shutdown_complete(&self) -> bool {
        match &self.role {
            Role::Resigned { unacked, .. } => unacked.is_empty(),
            _ => true,
        }
    }

    /// A send to `to` failed (connection refused or lost).
    pub fn handle_send_failure(&mut self, now: u64, to: NodeId, seq: u64) {
        if self.in_flight.get(&to).is_some_and(|f| f.seq == seq) {
            self.in_flight.remove(&to);
            self.backoff_until
                .insert(to, now + self.config.retry_backoff_ms);
        }
        self.maybe_send(now);
    }

    /// The state machine wrote a snapshot of the committed records below
    /// `id.offset` (`size` bytes). The log before it can go.
    pub fn snapshot_created(&mut self, now: u64, id: OffsetAndEpoch, size: u64) {
        if id.offset > self.high_watermark || id.offset <= self.log.start_offset {
            warn!(
                ?id,
                hw = self.high_watermark,
                "ignoring a snapshot outside the committed log"
            );
            return;
        }
        if self.epoch_of_offset(id.offset - 1) != Some(id.epoch) {
            warn!(
                ?id,
                "ignoring a snapshot whose epoch does not match the log"
            );
            return;
        }
        self.log.latest_snapshot = Some(id);
        self.snapshot_size = size;
        self.log.start_offset = id.offset;
        self.trim_epochs_from_start(id);
        self.actions
            .push(Action::DeleteBefore { offset: id.offset });
        self.maybe_send(now);
    }

    /// The epoch of the record at `offset`, if the log or snapshot knows.
    pub fn epoch_of_offset(&self, offset: i64) -> Option<i32> {
        if offset < 0 || offset >= self.log.end_offset {
            return None;
        }
        if let Some(e) = self.log.epochs.iter().rev().find(|e| e.1 <= offset) {
            return Some(e.0);
        }
        match self.log.latest_snapshot {
            Some(s) if offset < s.offset => Some(s.epoch),
            _ => None,
        }
    }

    /// A response to the request `seq` sent to `from`.
    pub fn handle_response(&mut self, now: u64, from: NodeId, seq: u64, response: RaftResponse) {
        match self.in_flight.get(&from) {
            Some(f) if f.seq == seq => {
                self.in_flight.remove(&from);
            }
            _ => {
                debug!(from, seq, "ignoring a stale or duplicate response");
                return;
            }
        }
        match response {
            RaftResponse::Vote(r) => self.on_vote_response(now, from, r),
            RaftResponse::BeginQuorumEpoch(r) => self.on_begin_epoch_response(now, from, r),
            RaftResponse::EndQuorumEpoch(r) => self.on_end_epoch_response(now, from, r),
            RaftResponse::Fetch(r) => self.on_fetch_response(now, from, r),
            RaftResponse::FetchSnapshot(r) => self.on_fetch_snapshot_response(now, from, r),
            RaftResponse::DescribeQuorum(_) => {}
        }
        self.maybe_send(now);
    }

    /// A request from another node (or an operator, for DescribeQuorum).
    pub fn handle_request(&mut self, now: u64, id: RequestId, request: RaftRequest) {
        match request {
            RaftRequest::Vote(r) => self.on_vote(now, id, r),
            RaftRequest::BeginQuorumEpoch(r) => self.on_begin_epoch(now, id, r),
            RaftRequest::EndQuorumEpoch(r) => self.on_end_epoch(now, id, r),
            RaftRequest::Fetch(r) => self.on_fetch(now, id, r),
            RaftRequest::FetchSnapshot(r) => self.on_fetch_snapshot(now, id, r),
            RaftRequest::DescribeQuorum(_) => self.on_describe_quorum(now, id),
        }
        self.maybe_send(now);
    }

    // ---- transitions ---------------------------------------------------

    fn election_timeout(&mut self) -> u64 {
        let t = self.config.election_timeout_ms;
        t + self.rng.below(t.max(1))
    }

    /// Moves to `next`, persisting the election state first. Refuses (with
    /// a warning) what the transition table forbids.
    fn transition(&mut self, next: Role, now: u64) {
        let from = self.role.kind();
        let to = next.kind();
        let epoch_change = if next.epoch() > self.role.epoch() {
            EpochChange::Higher
        } else if next.epoch() == self.role.epoch() {
            EpochChange::Same
        } else {
            warn!(
                from = from.name(),
                to = to.name(),
                "refusing a transition to a lower epoch"
            );
            return;
        };
        let observer_forbidden = !self.config.is_voter()
            && matches!(to, RoleKind::Voted | RoleKind::Candidate | RoleKind::Leader);
        if !transition_allowed(from, to, epoch_change) || observer_forbidden {
            warn!(
                from = from.name(),
                to = to.name(),
                ?epoch_change,
                "refusing a transition the quorum state machine does not allow"
            );
            return;
        }
        let mut election = ElectionState::unattached(next.epoch(), self.config.voters.clone());
        match &next {
            Role::Voted { voted_id, .. } => election.voted_id = Some(*voted_id),
            Role::Candidate { .. } => election.voted_id = Some(self.config.node_id),
            Role::Leader(_) | Role::Resigned { .. } => {
                election.leader_id = Some(self.config.node_id);
                election.voted_id = self
                    .election
                    .voted_id
                    .filter(|_| next.epoch() == self.election.epoch);
            }
            Role::Follower { leader_id, .. } => {
                election.leader_id = Some(*leader_id);
                if next.epoch() == self.election.epoch {
                    election.voted_id = self.election.voted_id;
                }
            }
            Role::Unattached { .. } => {}
        }
        if election != self.election {
            self.actions
                .push(Action::PersistElectionState(election.clone()));
            self.election = election;
        }
        let leaving_leader = matches!(self.role, Role::Leader(_));
        if leaving_leader && to != RoleKind::Resigned {
            // Proposals not yet appended are lost with the leadership.
            if let Role::Leader(l) = &mut self.role {
                l.pending.clear();
            }
        }
        self.role = next;
        self.discovering = false;
        // Outstanding requests belong to the old role.
        self.in_flight.clear();
        self.backoff_until.clear();
        if leaving_leader {
            self.complete_parked(now, false);
        }
        info!(
            node = self.config.node_id,
            role = to.name(),
            epoch = self.role.epoch(),
            leader = ?self.leader_id(),
            "quorum role changed"
        );
        let info = self.role_info();
        self.actions.push(Action::RoleChanged(info));
    }

    fn become_candidate(&mut self, now: u64) {
        let retries = match &self.role {
            Role::Candidate { retries, .. } => retries + 1,
            _ => 1,
        };
        let epoch = self.role.epoch() + 1;
        let deadline = now + self.election_timeout();
        self.transition(
            Role::Candidate {
                epoch,
                granted: BTreeSet::from([self.config.node_id]),
                rejected: BTreeSet::new(),
                retries,
                election_deadline: deadline,
                backoff_until: None,
            },
            now,
        );
        self.maybe_become_leader(now);
    }

    /// After a lost or timed-out election: wait a random, exponentially
    /// growing time bounded by `controller.quorum.election.backoff.max.ms`.
    fn start_backoff(&mut self, now: u64) {
        let retry = self.config.retry_backoff_ms.max(1);
        let max = self.config.election_backoff_max_ms.max(1);
        if let Role::Candidate {
            retries,
            backoff_until,
            ..
        } = &mut self.role
        {
            let exp = (*retries).saturating_sub(1).min(30);
            let bound = retry.saturating_mul(1u64 << exp).min(max);
            *backoff_until = Some(now + 1 + self.rng.below(bound));
        }
    }

    fn maybe_become_leader(&mut self, now: u64) {
        let Role::Candidate { epoch, granted, .. } = &self.role else {
            return;
        };
        if granted.len() < self.config.majority() {
            return;
        }
        let epoch = *epoch;
        let granting = granted.clone();
        let others: BTreeSet<NodeId> = self
            .config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.config.node_id)
            .collect();
        let voters = self
            .config
            .voters
            .iter()
            .map(|v| (*v, ReplicaProgress::default()))
            .collect();
        let start = self.log.end_offset;
        self.transition(
            Role::Leader(Box::new(LeaderState {
                epoch,
                epoch_start_offset: start,
                voters,
                observers: BTreeMap::new(),
                unacked: others,
                since_ms: now,
                pending: Vec::new(),
                pending_bytes: 0,
                linger_deadline: None,
            })),
            now,
        );
        if !self.is_leader() {
            return;
        }
        let voters: Vec<i32> = self.config.voters.iter().copied().collect();
        let granting: Vec<i32> = granting.into_iter().collect();
        let batch = batch::leader_change_batch(
            start,
            epoch,
            now as i64,
            self.config.node_id,
            &voters,
            &granting,
        );
        self.append_local(batch, start, epoch, 1);
        self.flush(now);
        if self.shutting_down {
            self.resign(now);
        }
    }

    /// Resign leadership (shutdown or lost quorum): tell the other voters,
    /// preferring those that hold the most of the log.
    fn resign(&mut self, now: u64) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let epoch = l.epoch;
        let mut others: Vec<(i64, NodeId)> = l
            .voters
            .iter()
            .filter(|(id, _)| **id != self.config.node_id)
            .map(|(id, p)| (p.end_offset.unwrap_or(-1), *id))
            .collect();
        others.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let successors: Vec<NodeId> = others.iter().map(|o| o.1).collect();
        // Appended records stay; lingering ones are dropped.
        let deadline = now + self.election_timeout();
        self.transition(
            Role::Resigned {
                epoch,
                election_deadline: deadline,
                unacked: successors.iter().copied().collect(),
                successors,
            },
            now,
        );
    }

    /// Adopt what another node says about the epoch and its leader.
    fn maybe_transition(&mut self, leader: Option<NodeId>, epoch: i32, now: u64) {
        let ours = self.role.epoch();
        let leader = leader.filter(|l| *l >= 0);
        if epoch > ours {
            match leader {
                Some(l) if l != self.config.node_id => self.become_follower(epoch, l, now),
                _ => {
                    let deadline = self.carried_election_deadline(now);
                    self.transition(
                        Role::Unattached {
                            epoch,
                            election_deadline: deadline,
                        },
                        now,
                    )
                }
            }
        } else if epoch == ours {
            if let Some(l) = leader {
                let following =
                    matches!(self.role, Role::Follower { leader_id, .. } if leader_id == l);
                if l != self.config.node_id
                    && !following
                    && matches!(
                        self.role.kind(),
                        RoleKind::Unattached | RoleKind::Voted | RoleKind::Candidate
                    )
                {
                    self.become_follower(epoch, l, now);
                }
            }
        }
    }

    /// The election deadline a node keeps when it moves to a higher epoch
    /// without a leader: what is left of its current one when it has one,
    /// a fresh random timeout otherwise.
    fn carried_election_deadline(&mut self, now: u64) -> u64 {
        match &self.role {
            Role::Unattached {
                election_deadline, ..
            }
            | Role::Voted {
                election_deadline, ..
            } => *election_deadline,
            Role::Candidate {
                election_deadline,
                backoff_until,
                ..
            } => backoff_until.unwrap_or(*election_deadline),
            _ => now + self.election_timeout(),
        }
    }

    fn become_follower(&mut self, epoch: i32, leader_id: NodeId, now: u64) {
        self.transition(
            Role::Follower {
                epoch,
                leader_id,
                fetch_deadline: now + self.config.fetch_timeout_ms,
                snapshot: None,
            },
            now,
        );
    }

    // ---- the log -------------------------------------------------------

    fn last_epoch(&self) -> i32 {
        self.log
            .epochs
            .last()
            .map(|e| e.0)
            .or(self.log.latest_snapshot.map(|s| s.epoch))
            .unwrap_or(0)
    }

    fn end_offset_and_epoch(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(self.log.end_offset, self.last_epoch())
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at most `epoch` and
    /// the offset where it ends. None when `epoch` is older than the log.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<OffsetAndEpoch> {
        let mut entries: Vec<(i32, i64)> = Vec::with_capacity(self.log.epochs.len() + 1);
        if let Some(s) = self.log.latest_snapshot {
            if self.log.epochs.first().is_none_or(|e| e.0 > s.epoch) {
                entries.push((s.epoch, s.offset));
            }
        }
        entries.extend(self.log.epochs.iter().copied());
        let i = entries.iter().rposition(|e| e.0 <= epoch)?;
        let end = entries
            .get(i + 1)
            .map_or(self.log.end_offset, |next| next.1);
        Some(OffsetAndEpoch::new(end, entries[i].0))
    }

    fn append_local(&mut self, batches: Bytes, base_offset: i64, epoch: i32, records: i64) {
        if self.log.epochs.last().is_none_or(|e| e.0 < epoch) {
            self.log.epochs.push((epoch, base_offset));
        }
        self.log.end_offset = base_offset + records;
        self.actions.push(Action::Append { batches });
    }

    fn flush(&mut self, now: u64) {
        if self.flushed_end < self.log.end_offset {
            self.flushed_end = self.log.end_offset;
            self.actions.push(Action::Flush {
                end_offset: self.log.end_offset,
            });
        }
        if let Role::Leader(l) = &mut self.role {
            let me = self.config.node_id;
            if let Some(p) = l.voters.get_mut(&me) {
                p.end_offset = Some(self.flushed_end);
                p.last_fetch_ms = Some(now);
                p.last_caught_up_ms = Some(now);
            }
            self.maybe_advance_leader_hw(now);
            self.complete_parked(now, false);
        }
    }

    fn truncate(&mut self, end_offset: i64) {
        if end_offset >= self.log.end_offset {
            return;
        }
        if end_offset < self.high_watermark {
            warn!(
                end_offset,
                hw = self.high_watermark,
                "asked to truncate committed records; truncating to the high watermark instead"
            );
        }
        let end_offset = end_offset
            .max(self.high_watermark)
            .max(self.log.start_offset);
        if end_offset >= self.log.end_offset {
            return;
        }
        self.log.end_offset = end_offset;
        self.log.epochs.retain(|e| e.1 < end_offset);
        self.flushed_end = self.flushed_end.min(end_offset);
        self.actions.push(Action::Truncate { end_offset });
    }

    fn trim_epochs_from_start(&mut self, id: OffsetAndEpoch) {
        // Keep the epoch in force at the new start offset, starting there.
        let in_force = self.log.epochs.iter().rposition(|e| e.1 <= id.offset);
        if let Some(i) = in_force {
            self.log.epochs.drain(..i);
            if let Some(first) = self.log.epochs.first_mut() {
                first.1 = first.1.max(id.offset);
            }
        }
        if self
            .log
            .epochs
            .first()
            .is_some_and(|e| e.1 >= self.log.end_offset)
        {
            self.log.epochs.clear();
        }
    }

    fn set_high_watermark(&mut self, hw: i64) {
        if hw > self.high_watermark {
            self.high_watermark = hw;
            self.actions.push(Action::HighWatermark(hw));
        }
    }

    fn drain_pending(&mut self, now: u64) {
        let end = self.log.end_offset;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.linger_deadline = None;
        if l.pending.is_empty() {
            return;
        }
        let values = std::mem::take(&mut l.pending);
        l.pending_bytes = 0;
        let epoch = l.epoch;
        let n = values.len() as i64;
        let batch = batch::data_batch(end, epoch, now as i64, &values);
        self.append_local(batch, end, epoch, n);
        self.flush(now);
    }

    fn check_quorum_deadline(&self, l: &LeaderState) -> u64 {
        let timeout = self.config.fetch_timeout_ms;
        if self.config.voters.len() <= 1 {
            return u64::MAX;
        }
        // The deadline is when the majority-th most recent fetch (this
        // node counts as fetching now) becomes too old.
        let mut last: Vec<u64> = l
            .voters
            .iter()
            .filter(|(id, _)| **id != self.config.node_id)
            .map(|(_, p)| p.last_fetch_ms.unwrap_or(0).max(l.since_ms))
            .collect();
        last.sort_unstable_by(|a, b| b.cmp(a));
        let needed = self.config.majority() - 1;
        last.get(needed.saturating_sub(1))
            .map_or(u64::MAX, |t| t + timeout)
    }

    fn maybe_advance_leader_hw(&mut self, now: u64) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let mut offsets: Vec<i64> = l
            .voters
            .values()
            .map(|p| p.end_offset.unwrap_or(-1))
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let Some(candidate) = offsets.get(self.config.majority() - 1).copied() else {
            return;
        };
        // Raft: only a record of the current epoch commits by counting.
        if candidate > l.epoch_start_offset && candidate > self.high_watermark {
            self.set_high_watermark(candidate);
            self.complete_parked(now, false);
        }
    }

    // ---- sending -------------------------------------------------------

    fn send(&mut self, now: u64, to: NodeId, request: RaftRequest) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert(
            to,
            InFlight {
                seq,
                api: request.api_name(),
                deadline: now + self.config.request_timeout_ms,
            },
        );
        self.actions.push(Action::Send { to, seq, request });
    }

    fn can_send(&self, now: u64, to: NodeId) -> bool {
        !self.in_flight.contains_key(&to) && self.backoff_until.get(&to).is_none_or(|t| now >= *t)
    }

    fn expire_in_flight(&mut self, now: u64) {
        let expired: Vec<NodeId> = self
            .in_flight
            .iter()
            .filter(|(_, f)| now >= f.deadline)
            .map(|(n, _)| *n)
            .collect();
        for n in expired {
            if let Some(f) = self.in_flight.remove(&n) {
                debug!(to = n, api = f.api, "request timed out");
            }
            self.backoff_until
                .insert(n, now + self.config.retry_backoff_ms);
        }
        self.backoff_until.retain(|_, t| *t > now);
    }

    fn cluster_id(&self) -> Option<StrBytes> {
        Some(StrBytes::from_string(self.config.cluster_id.clone()))
    }

    /// Sends whatever the role needs sent and nothing is outstanding for.
    fn maybe_send(&mut self, now: u64) {
        match self.role.clone() {
            Role::Candidate {
                epoch,
                granted,
                rejected,
                backoff_until: None,
                ..
            } => {
                let targets: Vec<NodeId> = self
                    .config
                    .voters
                    .iter()
                    .copied()
                    .filter(|v| {
                        *v != self.config.node_id && !granted.contains(v) && !rejected.contains(v)
                    })
                    .collect();
                for to in targets {
                    if self.can_send(now, to) {
                        let request = self.vote_request(epoch);
                        self.send(now, to, RaftRequest::Vote(request));
                    }
                }
            }
            Role::Leader(l) => {
                for to in l.unacked.clone() {
                    if self.can_send(now, to) {
                        let request = self.begin_epoch_request(l.epoch);
                        self.send(now, to, RaftRequest::BeginQuorumEpoch(request));
                    }
                }
            }
            Role::Follower { epoch, .. } if self.discovering => {
                if self.in_flight.is_empty() {
                    self.fetch_from_next_voter(now, epoch);
                }
            }
            Role::Follower {
                leader_id,
                snapshot,
                epoch,
                ..
            } => {
                if self.can_send(now, leader_id) {
                    let request = match snapshot {
                        Some((id, position)) => RaftRequest::FetchSnapshot(
                            self.fetch_snapshot_request(epoch, id, position),
                        ),
                        None => RaftRequest::Fetch(self.fetch_request(epoch)),
                    };
                    self.send(now, leader_id, request);
                }
            }
            Role::Resigned {
                epoch,
                successors,
                unacked,
                ..
            } => {
                for to in unacked {
                    if self.can_send(now, to) {
                        let request = self.end_epoch_request(epoch, &successors);
                        self.send(now, to, RaftRequest::EndQuorumEpoch(request));
                    }
                }
            }
            Role::Unattached { epoch, .. } | Role::Voted { epoch, .. } => {
                // Observers find the leader by asking the voters in turn.
                if !self.config.is_voter() && self.in_flight.is_empty() {
                    self.fetch_from_next_voter(now, epoch);
                }
            }
            Role::Candidate { .. } => {}
        }
    }

    /// Sends a Fetch to the next voter (other than this node) that is not
    /// backing off; its answer names the leader it knows.
    fn fetch_from_next_voter(&mut self, now: u64, epoch: i32) {
        let voters: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.config.node_id)
            .collect();
        for _ in 0..voters.len() {
            let to = voters[self.observer_cursor % voters.len()];
            self.observer_cursor = self.observer_cursor.wrapping_add(1);
            if self.can_send(now, to) {
                let request = self.fetch_request(epoch);
                self.send(now, to, RaftRequest::Fetch(request));
                return;
            }
        }
    }

    fn vote_request(&self, epoch: i32) -> VoteRequest {
        let last = self.end_offset_and_epoch();
        VoteRequest::default()
            .with_cluster_id(self.cluster_id())
            // VoterId (v1+, KIP-853) names the receiving voter; with
            // static voters it stays unset (-1), which Kafka accepts.
            .with_topics(vec![vote_request::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![vote_request::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_replica_epoch(epoch)
                    .with_replica_id(self.config.node_id.into())
                    .with_last_offset_epoch(last.epoch)
                    .with_last_offset(last.offset)])])
    }

    fn begin_epoch_request(&self, epoch: i32) -> BeginQuorumEpochRequest {
        BeginQuorumEpochRequest::default()
            .with_cluster_id(self.cluster_id())
            .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![
                    begin_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_leader_id(self.config.node_id.into())
                        .with_leader_epoch(epoch),
                ])])
    }

    fn end_epoch_request(&self, epoch: i32, successors: &[NodeId]) -> EndQuorumEpochRequest {
        EndQuorumEpochRequest::default()
            .with_cluster_id(self.cluster_id())
            .with_topics(vec![end_quorum_epoch_request::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![
                    end_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_leader_id(self.config.node_id.into())
                        .with_leader_epoch(epoch)
                        .with_preferred_successors(successors.to_vec()),
                ])])
    }

    fn fetch_request(&self, epoch: i32) -> FetchRequest {
        FetchRequest::default()
            .with_cluster_id(self.cluster_id())
            // Fetch v15+ carries the replica in ReplicaState only.
            .with_replica_state(
                fetch_request::ReplicaState::default().with_replica_id(self.config.node_id.into()),
            )
            .with_max_wait_ms(self.config.fetch_max_wait_ms as i32)
            .with_min_bytes(0)
            .with_max_bytes(self.config.fetch_max_bytes as i32)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(metadata_topic_name())
                .with_topic_id(METADATA_TOPIC_ID)
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(METADATA_PARTITION)
                    .with_current_leader_epoch(epoch)
                    .with_fetch_offset(self.log.end_offset)
                    .with_last_fetched_epoch(self.last_epoch())
                    .with_partition_max_bytes(self.config.fetch_max_bytes as i32)])])
    }

    fn fetch_snapshot_request(
        &self,
        epoch: i32,
        id: OffsetAndEpoch,
        position: u64,
    ) -> FetchSnapshotRequest {
        FetchSnapshotRequest::default()
            .with_cluster_id(self.cluster_id())
            .with_replica_id(self.config.node_id.into())
            .with_max_bytes(self.config.fetch_snapshot_max_bytes as i32)
            .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
                .with_name(metadata_topic_name())
                .with_partitions(vec![
                    fetch_snapshot_request::PartitionSnapshot::default()
                        .with_partition(METADATA_PARTITION)
                        .with_current_leader_epoch(epoch)
                        .with_snapshot_id(
                            fetch_snapshot_request::SnapshotId::default()
                                .with_end_offset(id.offset)
                                .with_epoch(id.epoch),
                        )
                        .with_position(position as i64),
                ])])
    }

    // ---- request handlers ----------------------------------------------

    fn valid_cluster_id(&self, id: &Option<StrBytes>) -> bool {
        id.as_ref()
            .is_none_or(|c| c.as_str() == self.config.cluster_id)
    }

    fn respond(&mut self, id: RequestId, response: RaftResponse) {
        self.actions.push(Action::Respond { id, response });
    }

    fn on_vote(&mut self, now: u64, id: RequestId, r: VoteRequest) {
        let reply = |core: &RaftCore, top: i16, part: Option<i16>, granted: bool| {
            let mut resp = VoteResponse::default().with_error_code(top);
            if let Some(part) = part {
                resp = resp.with_topics(vec![vote_response::TopicData::default()
                    .with_topic_name(metadata_topic_name())
                    .with_partitions(vec![vote_response::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_error_code(part)
                        .with_leader_id(core.leader_id().unwrap_or(-1).into())
                        .with_leader_epoch(core.epoch())
                        .with_vote_granted(granted)])]);
            }
            RaftResponse::Vote(resp)
        };
        if !self.valid_cluster_id(&r.cluster_id) {
            let resp = reply(
                self,
                ResponseError::InconsistentClusterId.code(),
                None,
                false,
            );
            return self.respond(id, resp);
        }
        let Some(p) = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions)
            .filter(|p| p.partition_index == METADATA_PARTITION)
        else {
            let resp = reply(
                self,
                ResponseError::UnknownTopicOrPartition.code(),
                None,
                false,
            );
            return self.respond(id, resp);
        };
        let candidate = i32::from(p.replica_id);
        let candidate_epoch = p.replica_epoch;
        if candidate_epoch < self.epoch() {
            let resp = reply(
                self,
                0,
                Some(ResponseError::FencedLeaderEpoch.code()),
                false,
            );
            return self.respond(id, resp);
        }
        if !self.config.is_voter() || !self.config.voters.contains(&candidate) {
            let resp = reply(
                self,
                0,
                Some(ResponseError::InconsistentVoterSet.code()),
                false,
            );
            return self.respond(id, resp);
        }
        if candidate_epoch > self.epoch() {
            // Adopt the higher epoch even if the vote is then refused,
            // keeping the election time left (Kafka, and Raft: only a
            // granted vote restarts the timer).
            let deadline = self.carried_election_deadline(now);
            self.transition(
                Role::Unattached {
                    epoch: candidate_epoch,
                    election_deadline: deadline,
                },
                now,
            );
        }
        let candidate_log = OffsetAndEpoch::new(p.last_offset, p.last_offset_epoch);
        let log_ok = candidate_log >= self.end_offset_and_epoch();
        let granted = match &self.role {
            Role::Unattached { .. } => log_ok,
            Role::Voted { voted_id, .. } => *voted_id == candidate,
            _ => false,
        };
        if granted && matches!(self.role, Role::Unattached { .. }) {
            let deadline = now + self.election_timeout();
            self.transition(
                Role::Voted {
                    epoch: candidate_epoch,
                    voted_id: candidate,
                    election_deadline: deadline,
                },
                now,
            );
        }
        debug!(candidate, candidate_epoch, granted, log_ok, "vote request");
        let resp = reply(self, 0, Some(0), granted);
        self.respond(id, resp);
    }

    fn on_vote_response(&mut self, now: u64, from: NodeId, r: VoteResponse) {
        if r.error_code != 0 {
            warn!(from, error = r.error_code, "Vote refused");
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        }
        let Some(p) = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions) else {
            return;
        };
        let leader = Some(i32::from(p.leader_id));
        self.maybe_transition(leader, p.leader_epoch, now);
        let Role::Candidate {
            epoch,
            granted,
            rejected,
            ..
        } = &mut self.role
        else {
            return;
        };
        if p.leader_epoch != *epoch {
            return;
        }
        if p.error_code == 0 && p.vote_granted {
            granted.insert(from);
            self.maybe_become_leader(now);
        } else if p.error_code == 0 || p.error_code == ResponseError::FencedLeaderEpoch.code() {
            rejected.insert(from);
            let voters = self.config.voters.len();
            if rejected.len() > voters - self.config.majority() {
                debug!(epoch = *epoch, "election lost; backing off");
                self.start_backoff(now);
            }
        } else {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
        }
    }

    fn on_begin_epoch(&mut self, now: u64, id: RequestId, r: BeginQuorumEpochRequest) {
        if !self.valid_cluster_id(&r.cluster_id) {
            let resp = BeginQuorumEpochResponse::default()
                .with_error_code(ResponseError::InconsistentClusterId.code());
            return self.respond(id, RaftResponse::BeginQuorumEpoch(resp));
        }
        let Some(p) = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions) else {
            let resp = BeginQuorumEpochResponse::default()
                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
            return self.respond(id, RaftResponse::BeginQuorumEpoch(resp));
        };
        let error = if p.leader_epoch < self.epoch() {
            ResponseError::FencedLeaderEpoch.code()
        } else {
            self.maybe_transition(Some(i32::from(p.leader_id)), p.leader_epoch, now);
            0
        };
        let resp = BeginQuorumEpochResponse::default().with_topics(vec![
            begin_quorum_epoch_response::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![begin_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_error_code(error)
                    .with_leader_id(self.leader_id().unwrap_or(-1).into())
                    .with_leader_epoch(self.epoch())]),
        ]);
        self.respond(id, RaftResponse::BeginQuorumEpoch(resp));
    }

    fn on_begin_epoch_response(&mut self, now: u64, from: NodeId, r: BeginQuorumEpochResponse) {
        let Some(p) = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions) else {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        };
        self.maybe_transition(Some(i32::from(p.leader_id)), p.leader_epoch, now);
        if let Role::Leader(l) = &mut self.role {
            if p.error_code == 0 && p.leader_epoch == l.epoch {
                l.unacked.remove(&from);
            } else {
                self.backoff_until
                    .insert(from, now + self.config.retry_backoff_ms);
            }
        }
    }

    fn on_end_epoch(&mut self, now: u64, id: RequestId, r: EndQuorumEpochRequest) {
        if !self.valid_cluster_id(&r.cluster_id) {
            let resp = EndQuorumEpochResponse::default()
                .with_error_code(ResponseError::InconsistentClusterId.code());
            return self.respond(id, RaftResponse::EndQuorumEpoch(resp));
        }
        let Some(p) = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions) else {
            let resp = EndQuorumEpochResponse::default()
                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
            return self.respond(id, RaftResponse::EndQuorumEpoch(resp));
        };
        let leader = i32::from(p.leader_id);
        let error = if p.leader_epoch < self.epoch() {
            ResponseError::FencedLeaderEpoch.code()
        } else {
            self.maybe_transition(Some(leader), p.leader_epoch, now);
            let resigned_leader_known = match &self.role {
                Role::Follower {
                    leader_id, epoch, ..
                } => *leader_id == leader && *epoch == p.leader_epoch,
                Role::Unattached { epoch, .. } | Role::Voted { epoch, .. } => {
                    *epoch == p.leader_epoch
                }
                _ => false,
            };
            if resigned_leader_known && self.config.is_voter() && !self.shutting_down {
                // v0 names successors by id; v1 (KIP-853) as candidates.
                let me = self.config.node_id;
                let position = if p.preferred_successors.is_empty() {
                    p.preferred_candidates
                        .iter()
                        .position(|c| i32::from(c.candidate_id) == me)
                } else {
                    p.preferred_successors.iter().position(|s| *s == me)
                };
                match position {
                    Some(0) => {
                        info!(
                            epoch = p.leader_epoch,
                            leader,
                            "the leader resigned and named this node first; standing for election"
                        );
                        self.become_candidate(now);
                    }
                    other => {
                        // The others wait: exponentially by position, or a
                        // full election timeout when not named.
                        let wait = match other {
                            Some(pos) => self
                                .config
                                .retry_backoff_ms
                                .saturating_mul(1u64 << (pos.min(30)))
                                .min(self.config.election_backoff_max_ms),
                            None => self.election_timeout(),
                        };
                        match &mut self.role {
                            Role::Follower { fetch_deadline, .. } => *fetch_deadline = now + wait,
                            Role::Unattached {
                                election_deadline, ..
                            }
                            | Role::Voted {
                                election_deadline, ..
                            } => *election_deadline = now + wait,
                            _ => {}
                        }
                    }
                }
            }
            0
        };
        let resp = EndQuorumEpochResponse::default().with_topics(vec![
            end_quorum_epoch_response::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![end_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_error_code(error)
                    .with_leader_id(self.leader_id().unwrap_or(-1).into())
                    .with_leader_epoch(self.epoch())]),
        ]);
        self.respond(id, RaftResponse::EndQuorumEpoch(resp));
    }

    fn on_end_epoch_response(&mut self, now: u64, from: NodeId, r: EndQuorumEpochResponse) {
        let p = single_partition(&r.topics, |t| &t.topic_name, |t| &t.partitions);
        if let Role::Resigned { unacked, epoch, .. } = &mut self.role {
            match p {
                Some(p) if p.error_code == 0 || p.leader_epoch > *epoch => {
                    unacked.remove(&from);
                }
                _ => {
                    self.backoff_until
                        .insert(from, now + self.config.retry_backoff_ms);
                }
            }
        }
        if let Some(p) = p {
            if p.leader_epoch > self.epoch() {
                self.maybe_transition(Some(i32::from(p.leader_id)), p.leader_epoch, now);
            }
        }
    }

    fn fetch_error(&self, error: ResponseError) -> FetchResponse {
        FetchResponse::default().with_error_code(error.code())
    }

    fn fetch_partition_response(&self, error: i16) -> fetch_response::PartitionData {
        fetch_response::PartitionData::default()
            .with_partition_index(METADATA_PARTITION)
            .with_error_code(error)
            .with_high_watermark(self.high_watermark)
            .with_log_start_offset(self.log.start_offset)
            .with_current_leader(
                fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(self.leader_id().unwrap_or(-1).into())
                    .with_leader_epoch(self.epoch()),
            )
            .with_records(None)
    }

    fn wrap_fetch(&self, partition: fetch_response::PartitionData) -> FetchResponse {
        FetchResponse::default().with_responses(vec![
            fetch_response::FetchableTopicResponse::default()
                .with_topic(metadata_topic_name())
                .with_topic_id(METADATA_TOPIC_ID)
                .with_partitions(vec![partition]),
        ])
    }

    /// Kafka's `validateOffsetAndEpoch` on the leader.
    fn check_fetch_position(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FetchPosition {
        if fetch_offset < self.log.start_offset {
            if let Some(s) = self.log.latest_snapshot {
                return FetchPosition::Snapshot(s);
            }
        }
        if fetch_offset == 0 && self.log.start_offset == 0 {
            return FetchPosition::Valid;
        }
        match self.end_offset_for_epoch(last_fetched_epoch) {
            None => match self.log.latest_snapshot {
                Some(s) => FetchPosition::Snapshot(s),
                None => FetchPosition::Diverging(OffsetAndEpoch::new(self.log.start_offset, 0)),
            },
            Some(end) => {
                if end.offset < self.log.start_offset {
                    if let Some(s) = self.log.latest_snapshot {
                        return FetchPosition::Snapshot(s);
                    }
                }
                if end.epoch != last_fetched_epoch || fetch_offset > end.offset {
                    FetchPosition::Diverging(end)
                } else {
                    FetchPosition::Valid
                }
            }
        }
    }

    /// Kafka's leader-only request check: the sender's idea of the epoch.
    fn leader_only_error(&self, request_epoch: i32) -> Option<ResponseError> {
        if request_epoch < self.epoch() {
            Some(ResponseError::FencedLeaderEpoch)
        } else if request_epoch > self.epoch() {
            Some(ResponseError::UnknownLeaderEpoch)
        } else if !self.is_leader() {
            Some(ResponseError::NotLeaderOrFollower)
        } else {
            None
        }
    }

    fn on_fetch(&mut self, now: u64, id: RequestId, r: FetchRequest) {
        if !self.valid_cluster_id(&r.cluster_id) {
            let resp = self.fetch_error(ResponseError::InconsistentClusterId);
            return self.actions.push(Action::RespondFetch {
                id,
                response: resp,
                read: None,
            });
        }
        let topic_ok = |t: &fetch_request::FetchTopic| {
            t.topic.as_str() == METADATA_TOPIC || t.topic_id == METADATA_TOPIC_ID
        };
        let partition = match r.topics.as_slice() {
            [t] if topic_ok(t)
                && t.partitions.len() == 1
                && t.partitions[0].partition == METADATA_PARTITION =>
            {
                t.partitions[0].clone()
            }
            _ => {
                let resp = self.fetch_error(ResponseError::InvalidRequest);
                return self.actions.push(Action::RespondFetch {
                    id,
                    response: resp,
                    read: None,
                });
            }
        };
        let replica = if i32::from(r.replica_state.replica_id) >= 0 {
            i32::from(r.replica_state.replica_id)
        } else {
            i32::from(r.replica_id)
        };
        if partition.fetch_offset < 0
            || partition.last_fetched_epoch < 0 && partition.fetch_offset > 0
        {
            let resp = self
                .wrap_fetch(self.fetch_partition_response(ResponseError::InvalidRequest.code()));
            return self.actions.push(Action::RespondFetch {
                id,
                response: resp,
                read: None,
            });
        }
        if let Some(e) = self.leader_only_error(partition.current_leader_epoch) {
            let resp = self.wrap_fetch(self.fetch_partition_response(e.code()));
            return self.actions.push(Action::RespondFetch {
                id,
                response: resp,
                read: None,
            });
        }
        let position =
            self.check_fetch_position(partition.fetch_offset, partition.last_fetched_epoch);
        if position == FetchPosition::Valid {
            self.record_fetch(now, replica, partition.fetch_offset);
        } else {
            self.record_contact(now, replica);
        }
        let max_bytes = (partition.partition_max_bytes.max(0) as usize)
            .min(r.max_bytes.max(0) as usize)
            .max(1);
        match position {
            FetchPosition::Snapshot(s) => {
                let part = self.fetch_partition_response(0).with_snapshot_id(
                    fetch_response::SnapshotId::default()
                        .with_end_offset(s.offset)
                        .with_epoch(s.epoch),
                );
                let resp = self.wrap_fetch(part);
                self.actions.push(Action::RespondFetch {
                    id,
                    response: resp,
                    read: None,
                });
            }
            FetchPosition::Diverging(d) => {
                let part = self.fetch_partition_response(0).with_diverging_epoch(
                    fetch_response::EpochEndOffset::default()
                        .with_epoch(d.epoch)
                        .with_end_offset(d.offset),
                );
                let resp = self.wrap_fetch(part);
                self.actions.push(Action::RespondFetch {
                    id,
                    response: resp,
                    read: None,
                });
            }
            FetchPosition::Valid => {
                let parked = ParkedFetch {
                    id,
                    fetch_offset: partition.fetch_offset,
                    max_bytes,
                    deadline: now + (r.max_wait_ms.max(0) as u64),
                    high_watermark: self.high_watermark,
                };
                if partition.fetch_offset < self.flushed_end || r.max_wait_ms <= 0 {
                    self.answer_fetch(parked);
                } else {
                    self.parked.push(parked);
                }
            }
        }
    }

    fn answer_fetch(&mut self, p: ParkedFetch) {
        let read = (p.fetch_offset < self.flushed_end).then_some(ReadRecords {
            from: p.fetch_offset,
            end: self.flushed_end,
            max_bytes: p.max_bytes,
        });
        let resp = self.wrap_fetch(
            self.fetch_partition_response(0)
                .with_records(Some(Bytes::new())),
        );
        self.actions.push(Action::RespondFetch {
            id: p.id,
            response: resp,
            read,
        });
    }

    /// Answers parked fetches that now have data, a new high watermark,
    /// or have waited long enough (`expire`), or all of them when this
    /// node is no longer leader.
    fn complete_parked(&mut self, now: u64, expire: bool) {
        if self.parked.is_empty() {
            return;
        }
        let leader = self.is_leader();
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            if !leader {
                let e = self
                    .leader_only_error(self.epoch() + 1)
                    .unwrap_or(ResponseError::NotLeaderOrFollower);
                let e = if e == ResponseError::UnknownLeaderEpoch {
                    ResponseError::NotLeaderOrFollower
                } else {
                    e
                };
                let resp = self.wrap_fetch(self.fetch_partition_response(e.code()));
                self.actions.push(Action::RespondFetch {
                    id: p.id,
                    response: resp,
                    read: None,
                });
            } else if p.fetch_offset < self.flushed_end
                || p.high_watermark != self.high_watermark
                || (expire && now >= p.deadline)
            {
                self.answer_fetch(p);
            } else {
                self.parked.push(p);
            }
        }
    }

    fn record_contact(&mut self, now: u64, replica: NodeId) {
        if let Role::Leader(l) = &mut self.role {
            if let Some(p) = l.voters.get_mut(&replica) {
                p.last_fetch_ms = Some(now);
                l.unacked.remove(&replica);
            }
        }
    }

    fn record_fetch(&mut self, now: u64, replica: NodeId, fetch_offset: i64) {
        let flushed_end = self.flushed_end;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let is_voter = l.voters.contains_key(&replica);
        if !is_voter && l.observers.len() >= MAX_OBSERVERS && !l.observers.contains_key(&replica) {
            // Forget the observer heard from least recently.
            if let Some(oldest) = l
                .observers
                .iter()
                .min_by_key(|(_, p)| p.last_fetch_ms)
                .map(|(id, _)| *id)
            {
                l.observers.remove(&oldest);
            }
        }
        let p = if is_voter {
            l.voters.entry(replica).or_default()
        } else {
            l.observers.entry(replica).or_default()
        };
        p.end_offset = Some(fetch_offset);
        p.last_fetch_ms = Some(now);
        if fetch_offset >= flushed_end {
            p.last_caught_up_ms = Some(now);
        }
        if is_voter {
            l.unacked.remove(&replica);
            self.maybe_advance_leader_hw(now);
        }
    }

    fn on_fetch_response(&mut self, now: u64, from: NodeId, r: FetchResponse) {
        if r.error_code != 0 {
            debug!(from, error = r.error_code, "Fetch refused");
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        }
        let Some(p) = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .cloned()
        else {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        };
        let leader = i32::from(p.current_leader.leader_id);
        self.maybe_transition(Some(leader), p.current_leader.leader_epoch, now);
        let Role::Follower {
            leader_id, epoch, ..
        } = &self.role
        else {
            if p.error_code != 0 {
                self.backoff_until
                    .insert(from, now + self.config.retry_backoff_ms);
            }
            return;
        };
        if *leader_id != from || p.current_leader.leader_epoch != *epoch {
            return;
        }
        if p.error_code != 0 {
            debug!(from, error = p.error_code, "Fetch partition error");
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        }
        // A successful answer from the leader of our epoch.
        self.discovering = false;
        let fetch_timeout = self.config.fetch_timeout_ms;
        if let Role::Follower { fetch_deadline, .. } = &mut self.role {
            *fetch_deadline = now + fetch_timeout;
        }
        if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 {
            let d = OffsetAndEpoch::new(p.diverging_epoch.end_offset, p.diverging_epoch.epoch);
            // Kafka's truncateToEndOffset: the smaller end when both logs
            // hold the epoch, else where the local epoch ends (a batch
            // boundary); the next Fetch converges.
            let local = self.end_offset_for_epoch(d.epoch);
            let to = match local {
                Some(l) if l.epoch == d.epoch => l.offset.min(d.offset),
                Some(l) => l.offset,
                None => d.offset.min(self.log.start_offset),
            };
            info!(diverging = ?d, truncate_to = to, "log diverges from the leader; truncating");
            self.truncate(to);
            return;
        }
        if p.snapshot_id.end_offset >= 0 {
            let id = OffsetAndEpoch::new(p.snapshot_id.end_offset, p.snapshot_id.epoch);
            info!(?id, "behind the leader's log start; fetching its snapshot");
            if let Role::Follower { snapshot, .. } = &mut self.role {
                *snapshot = Some((id, 0));
            }
            return;
        }
        if let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) {
            if let Err(e) = self.append_fetched(records) {
                warn!(from, "dropping a Fetch response with bad records: {e}");
                self.backoff_until
                    .insert(from, now + self.config.retry_backoff_ms);
                return;
            }
            self.flush(now);
        }
        let hw = p.high_watermark.min(self.flushed_end);
        self.set_high_watermark(hw);
    }

    /// Appends the batches of a Fetch response that extend the log.
    fn append_fetched(&mut self, records: &Bytes) -> Result<(), String> {
        let headers = batch::headers(records)?;
        let mut at = 0usize;
        let mut start = None;
        let mut expected = self.log.end_offset;
        let mut segments: Vec<(i64, i32, i64)> = Vec::new();
        for h in &headers {
            let size = h.size_bytes();
            if h.last_offset() < expected && start.is_none() {
                at += size;
                continue;
            }
            if h.base_offset != expected {
                if start.is_none() {
                    return Err(format!(
                        "expected a batch at offset {expected}, got one at {}",
                        h.base_offset
                    ));
                }
                break;
            }
            if h.partition_leader_epoch > self.epoch()
                || h.partition_leader_epoch < self.last_epoch()
            {
                if start.is_none() {
                    return Err(format!(
                        "batch at offset {} has epoch {} outside {}..={}",
                        h.base_offset,
                        h.partition_leader_epoch,
                        self.last_epoch(),
                        self.epoch()
                    ));
                }
                break;
            }
            if start.is_none() {
                start = Some(at);
            }
            segments.push((
                h.base_offset,
                h.partition_leader_epoch,
                i64::from(h.last_offset_delta) + 1,
            ));
            expected = h.next_offset();
            at += size;
        }
        let Some(begin) = start else {
            return Ok(());
        };
        let bytes = records.slice(begin..at);
        for (base, epoch, _) in &segments {
            if self.log.epochs.last().is_none_or(|e| e.0 < *epoch) {
                self.log.epochs.push((*epoch, *base));
            }
        }
        self.log.end_offset = expected;
        self.actions.push(Action::Append { batches: bytes });
        Ok(())
    }

    fn on_fetch_snapshot(&mut self, now: u64, id: RequestId, r: FetchSnapshotRequest) {
        let error_response = |core: &RaftCore, e: ResponseError| {
            FetchSnapshotResponse::default()
                .with_error_code(e.code())
                .with_topics(vec![fetch_snapshot_response::TopicSnapshot::default()
                    .with_name(metadata_topic_name())
                    .with_partitions(vec![
                        fetch_snapshot_response::PartitionSnapshot::default()
                            .with_index(METADATA_PARTITION)
                            .with_error_code(e.code())
                            .with_current_leader(
                                fetch_snapshot_response::LeaderIdAndEpoch::default()
                                    .with_leader_id(core.leader_id().unwrap_or(-1).into())
                                    .with_leader_epoch(core.epoch()),
                            ),
                    ])])
        };
        if !self.valid_cluster_id(&r.cluster_id) {
            let resp = FetchSnapshotResponse::default()
                .with_error_code(ResponseError::InconsistentClusterId.code());
            return self.actions.push(Action::RespondFetchSnapshot {
                id,
                response: resp,
                read: None,
            });
        }
        let Some(p) = single_partition(&r.topics, |t| &t.name, |t| &t.partitions)
            .filter(|p| p.partition == METADATA_PARTITION)
        else {
            let resp = FetchSnapshotResponse::default()
                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
            return self.actions.push(Action::RespondFetchSnapshot {
                id,
                response: resp,
                read: None,
            });
        };
        if let Some(e) = self.leader_only_error(p.current_leader_epoch) {
            let mut resp = error_response(self, e);
            resp.error_code = 0;
            return self.actions.push(Action::RespondFetchSnapshot {
                id,
                response: resp,
                read: None,
            });
        }
        self.record_contact(now, i32::from(r.replica_id));
        let wanted = OffsetAndEpoch::new(p.snapshot_id.end_offset, p.snapshot_id.epoch);
        if self.log.latest_snapshot != Some(wanted) {
            let mut resp = error_response(self, ResponseError::SnapshotNotFound);
            resp.error_code = 0;
            return self.actions.push(Action::RespondFetchSnapshot {
                id,
                response: resp,
                read: None,
            });
        }
        if p.position < 0 || p.position as u64 >= self.snapshot_size.max(1) && p.position != 0 {
            let mut resp = error_response(self, ResponseError::PositionOutOfRange);
            resp.error_code = 0;
            return self.actions.push(Action::RespondFetchSnapshot {
                id,
                response: resp,
                read: None,
            });
        }
        let mut resp = error_response(self, ResponseError::UnknownServerError);
        resp.error_code = 0;
        if let Some(part) = resp
            .topics
            .first_mut()
            .and_then(|t| t.partitions.first_mut())
        {
            part.error_code = 0;
            part.snapshot_id = fetch_snapshot_response::SnapshotId::default()
                .with_end_offset(wanted.offset)
                .with_epoch(wanted.epoch);
            part.position = p.position;
            part.size = self.snapshot_size as i64;
        }
        let max = (r.max_bytes.max(1) as usize).min(self.config.fetch_snapshot_max_bytes);
        self.actions.push(Action::RespondFetchSnapshot {
            id,
            response: resp,
            read: Some(ReadSnapshot {
                id: wanted,
                position: p.position as u64,
                max_bytes: max,
            }),
        });
    }

    fn on_fetch_snapshot_response(&mut self, now: u64, from: NodeId, r: FetchSnapshotResponse) {
        let p = r.topics.first().and_then(|t| t.partitions.first()).cloned();
        let Some(p) = p.filter(|_| r.error_code == 0) else {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        };
        self.maybe_transition(
            Some(i32::from(p.current_leader.leader_id)),
            p.current_leader.leader_epoch,
            now,
        );
        let Role::Follower {
            snapshot,
            leader_id,
            fetch_deadline,
            ..
        } = &mut self.role
        else {
            return;
        };
        if *leader_id != from {
            return;
        }
        let Some((id, position)) = *snapshot else {
            return;
        };
        if p.error_code == ResponseError::SnapshotNotFound.code()
            || p.error_code == ResponseError::PositionOutOfRange.code()
        {
            // The leader moved on: start over from a Fetch.
            *snapshot = None;
            return;
        }
        if p.error_code != 0 {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        }
        let got = OffsetAndEpoch::new(p.snapshot_id.end_offset, p.snapshot_id.epoch);
        if got != id || p.position as u64 != position || p.size < 0 {
            return;
        }
        *fetch_deadline = now + self.config.fetch_timeout_ms;
        let chunk = p.unaligned_records.clone();
        let next = position + chunk.len() as u64;
        if chunk.is_empty() && next < p.size as u64 {
            self.backoff_until
                .insert(from, now + self.config.retry_backoff_ms);
            return;
        }
        self.actions.push(Action::WriteSnapshotChunk {
            id,
            position,
            bytes: chunk,
        });
        if next >= p.size as u64 {
            *snapshot = None;
            info!(?id, bytes = next, "snapshot downloaded; replacing the log");
            self.actions.push(Action::InstallSnapshot { id });
            self.log.start_offset = id.offset;
            self.log.end_offset = id.offset;
            self.log.epochs.clear();
            self.log.latest_snapshot = Some(id);
            self.snapshot_size = next;
            self.flushed_end = id.offset;
            self.set_high_watermark(id.offset);
        } else {
            *snapshot = Some((id, next));
        }
    }

    fn on_describe_quorum(&mut self, now: u64, id: RequestId) {
        let Role::Leader(l) = &self.role else {
            let resp = DescribeQuorumResponse::default().with_topics(vec![
                describe_quorum_response::TopicData::default()
                    .with_topic_name(metadata_topic_name())
                    .with_partitions(vec![describe_quorum_response::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_error_code(ResponseError::NotLeaderOrFollower.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "this node is not the quorum leader",
                        )))
                        .with_leader_id(self.leader_id().unwrap_or(-1).into())
                        .with_leader_epoch(self.epoch())]),
            ]);
            return self.respond(id, RaftResponse::DescribeQuorum(resp));
        };
        let state = |id: &NodeId, p: &ReplicaProgress| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id((*id).into())
                .with_log_end_offset(p.end_offset.unwrap_or(-1))
                .with_last_fetch_timestamp(p.last_fetch_ms.map_or(-1, |t| t as i64))
                .with_last_caught_up_timestamp(p.last_caught_up_ms.map_or(-1, |t| t as i64))
        };
        let me = self.config.node_id;
        let voters: Vec<_> = l
            .voters
            .iter()
            .map(|(id, p)| {
                if *id == me {
                    // The leader is always caught up with itself.
                    let mine = ReplicaProgress {
                        end_offset: Some(self.flushed_end),
                        last_fetch_ms: Some(now),
                        last_caught_up_ms: Some(now),
                    };
                    state(id, &mine)
                } else {
                    state(id, p)
                }
            })
            .collect();
        let observers: Vec<_> = l.observers.iter().map(|(id, p)| state(id, p)).collect();
        let resp = DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(metadata_topic_name())
                .with_partitions(vec![describe_quorum_response::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_leader_id(me.into())
                    .with_leader_epoch(l.epoch)
                    .with_high_watermark(self.high_watermark)
                    .with_current_voters(voters)
                    .with_observers(observers)]),
        ]);
        self.respond(id, RaftResponse::DescribeQuorum(resp));
    }
}

fn metadata_topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

/// The only partition of the only topic, when the request names exactly
/// the metadata partition's topic.
fn single_partition<T, P>(
    topics: &[T],
    name: impl Fn(&T) -> &TopicName,
    partitions: impl Fn(&T) -> &Vec<P>,
) -> Option<&P> {
    match topics {
        [t] if name(t).0.as_str() == METADATA_TOPIC => match partitions(t).as_slice() {
            [p] => Some(p),
            _ => None,
        },
        _ => None,
    }
}
