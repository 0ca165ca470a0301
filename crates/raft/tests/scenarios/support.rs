//! Helpers shared by the scenario runner (`tests/scenario.rs`) and the role
//! tests (`tests/roles.rs`): building the KRaft requests and responses a
//! peer would send, and rendering the core's actions as flat field maps in
//! the vocabulary of the scenario language.
//!
//! Both test binaries include this file with `#[path]`; each uses part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    begin_quorum_epoch_request, begin_quorum_epoch_response, end_quorum_epoch_request,
    end_quorum_epoch_response, fetch_request, fetch_response, fetch_snapshot_request,
    fetch_snapshot_response, vote_request, vote_response, BeginQuorumEpochRequest,
    BeginQuorumEpochResponse, DescribeQuorumRequest, EndQuorumEpochRequest, EndQuorumEpochResponse,
    FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, TopicName,
    VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::StrBytes;
use riffle_raft::types::{METADATA_PARTITION, METADATA_TOPIC, METADATA_TOPIC_ID};
use riffle_raft::{Action, NodeId, OffsetAndEpoch, RaftRequest, RaftResponse, RoleKind};

pub const CLUSTER: &str = "scenario-cluster";

// ---- names ----------------------------------------------------------------

/// Kafka's name of an error code (`NONE` for 0, `CODE_<n>` for codes the
/// protocol crate does not know).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("CODE_{c}"),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

/// The code of a Kafka error name (`NONE`, `FENCED_LEADER_EPOCH`, ...).
pub fn error_code(name: &str) -> Result<i16, String> {
    if let Some(n) = name.strip_prefix("CODE_") {
        return n.parse().map_err(|_| format!("bad error code `{name}`"));
    }
    (-1i16..=200)
        .find(|c| error_name(*c) == name)
        .ok_or_else(|| {
            format!("unknown error name `{name}` (use Kafka's, e.g. FENCED_LEADER_EPOCH)")
        })
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

pub fn role_name(kind: RoleKind) -> &'static str {
    match kind {
        RoleKind::Unattached => "unattached",
        RoleKind::Voted => "voted",
        RoleKind::Candidate => "candidate",
        RoleKind::Leader => "leader",
        RoleKind::Follower => "follower",
        RoleKind::Resigned => "resigned",
    }
}

pub fn role_kind(name: &str) -> Result<RoleKind, String> {
    RoleKind::ALL
        .into_iter()
        .find(|k| role_name(*k) == name)
        .ok_or_else(|| {
            format!(
                "unknown role `{name}` (unattached, voted, candidate, leader, follower, resigned)"
            )
        })
}

/// The scenario name of a request's API.
pub fn request_api(r: &RaftRequest) -> &'static str {
    match r {
        RaftRequest::Vote(_) => "vote",
        RaftRequest::BeginQuorumEpoch(_) => "begin-epoch",
        RaftRequest::EndQuorumEpoch(_) => "end-epoch",
        RaftRequest::Fetch(_) => "fetch",
        RaftRequest::FetchSnapshot(_) => "fetch-snapshot",
        RaftRequest::DescribeQuorum(_) => "describe-quorum",
    }
}

/// `epoch@offset`, the scenario spelling of an [`OffsetAndEpoch`].
pub fn eo(epoch: i32, offset: i64) -> String {
    format!("{epoch}@{offset}")
}

pub fn parse_eo(s: &str) -> Result<OffsetAndEpoch, String> {
    let (e, o) = s
        .split_once('@')
        .ok_or_else(|| format!("expected epoch@offset, got `{s}`"))?;
    let epoch = e.parse().map_err(|_| format!("bad epoch in `{s}`"))?;
    let offset = o.parse().map_err(|_| format!("bad offset in `{s}`"))?;
    Ok(OffsetAndEpoch::new(offset, epoch))
}

fn opt_id(id: Option<NodeId>) -> String {
    id.unwrap_or(-1).to_string()
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "-".to_string()
    } else {
        v.join(",")
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn cluster(c: &Option<String>) -> Option<StrBytes> {
    c.as_ref().map(|c| StrBytes::from_string(c.clone()))
}

// ---- requests a peer sends ------------------------------------------------

pub fn vote_request(
    cluster_id: Option<String>,
    candidate: NodeId,
    epoch: i32,
    last: OffsetAndEpoch,
) -> VoteRequest {
    VoteRequest::default()
        .with_cluster_id(cluster(&cluster_id))
        .with_voter_id(candidate.into())
        .with_topics(vec![vote_request::TopicData::default()
            .with_topic_name(topic())
            .with_partitions(vec![vote_request::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_replica_epoch(epoch)
                .with_replica_id(candidate.into())
                .with_last_offset_epoch(last.epoch)
                .with_last_offset(last.offset)])])
}

pub fn begin_epoch_request(
    cluster_id: Option<String>,
    leader: NodeId,
    epoch: i32,
) -> BeginQuorumEpochRequest {
    BeginQuorumEpochRequest::default()
        .with_cluster_id(cluster(&cluster_id))
        .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
            .with_topic_name(topic())
            .with_partitions(vec![
                begin_quorum_epoch_request::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_leader_id(leader.into())
                    .with_leader_epoch(epoch),
            ])])
}

pub fn end_epoch_request(
    cluster_id: Option<String>,
    leader: NodeId,
    epoch: i32,
    successors: Vec<NodeId>,
) -> EndQuorumEpochRequest {
    EndQuorumEpochRequest::default()
        .with_cluster_id(cluster(&cluster_id))
        .with_topics(vec![end_quorum_epoch_request::TopicData::default()
            .with_topic_name(topic())
            .with_partitions(vec![
                end_quorum_epoch_request::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_leader_id(leader.into())
                    .with_leader_epoch(epoch)
                    .with_preferred_successors(successors),
            ])])
}

pub fn fetch_request(
    cluster_id: Option<String>,
    replica: NodeId,
    epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_cluster_id(cluster(&cluster_id))
        .with_replica_id(replica.into())
        .with_replica_state(fetch_request::ReplicaState::default().with_replica_id(replica.into()))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic())
            .with_topic_id(METADATA_TOPIC_ID)
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(METADATA_PARTITION)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_partition_max_bytes(1 << 20)])])
}

pub fn fetch_snapshot_request(
    cluster_id: Option<String>,
    replica: NodeId,
    epoch: i32,
    id: OffsetAndEpoch,
    position: i64,
    max_bytes: i32,
) -> FetchSnapshotRequest {
    FetchSnapshotRequest::default()
        .with_cluster_id(cluster(&cluster_id))
        .with_replica_id(replica.into())
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
            .with_name(topic())
            .with_partitions(vec![
                fetch_snapshot_request::PartitionSnapshot::default()
                    .with_partition(METADATA_PARTITION)
                    .with_current_leader_epoch(epoch)
                    .with_snapshot_id(
                        fetch_snapshot_request::SnapshotId::default()
                            .with_end_offset(id.offset)
                            .with_epoch(id.epoch),
                    )
                    .with_position(position),
            ])])
}

pub fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default()
}

// ---- responses a peer sends -----------------------------------------------

/// A Vote response; `top_error` nonzero leaves out the partition.
pub fn vote_response(
    top_error: i16,
    error: i16,
    epoch: i32,
    leader: NodeId,
    granted: bool,
) -> VoteResponse {
    let r = VoteResponse::default().with_error_code(top_error);
    if top_error != 0 {
        return r;
    }
    r.with_topics(vec![vote_response::TopicData::default()
        .with_topic_name(topic())
        .with_partitions(vec![vote_response::PartitionData::default()
            .with_partition_index(METADATA_PARTITION)
            .with_error_code(error)
            .with_leader_id(leader.into())
            .with_leader_epoch(epoch)
            .with_vote_granted(granted)])])
}

pub fn begin_epoch_response(
    top_error: i16,
    error: i16,
    epoch: i32,
    leader: NodeId,
) -> BeginQuorumEpochResponse {
    let r = BeginQuorumEpochResponse::default().with_error_code(top_error);
    if top_error != 0 {
        return r;
    }
    r.with_topics(vec![begin_quorum_epoch_response::TopicData::default()
        .with_topic_name(topic())
        .with_partitions(vec![
            begin_quorum_epoch_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(error)
                .with_leader_id(leader.into())
                .with_leader_epoch(epoch),
        ])])
}

pub fn end_epoch_response(
    top_error: i16,
    error: i16,
    epoch: i32,
    leader: NodeId,
) -> EndQuorumEpochResponse {
    let r = EndQuorumEpochResponse::default().with_error_code(top_error);
    if top_error != 0 {
        return r;
    }
    r.with_topics(vec![end_quorum_epoch_response::TopicData::default()
        .with_topic_name(topic())
        .with_partitions(vec![
            end_quorum_epoch_response::PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(error)
                .with_leader_id(leader.into())
                .with_leader_epoch(epoch),
        ])])
}

/// The partition-level content of a Fetch response from the leader.
#[derive(Debug, Clone)]
pub struct FetchAnswer {
    pub top_error: i16,
    pub error: i16,
    pub epoch: i32,
    pub leader: NodeId,
    pub high_watermark: i64,
    pub log_start: i64,
    pub diverging: Option<OffsetAndEpoch>,
    pub snapshot: Option<OffsetAndEpoch>,
    pub records: Option<Bytes>,
}

pub fn fetch_response(a: &FetchAnswer) -> FetchResponse {
    let r = FetchResponse::default().with_error_code(a.top_error);
    if a.top_error != 0 {
        return r;
    }
    let mut p = fetch_response::PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(a.error)
        .with_high_watermark(a.high_watermark)
        .with_log_start_offset(a.log_start)
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(a.leader.into())
                .with_leader_epoch(a.epoch),
        )
        .with_records(a.records.clone());
    if let Some(d) = a.diverging {
        p = p.with_diverging_epoch(
            fetch_response::EpochEndOffset::default()
                .with_epoch(d.epoch)
                .with_end_offset(d.offset),
        );
    }
    if let Some(s) = a.snapshot {
        p = p.with_snapshot_id(
            fetch_response::SnapshotId::default()
                .with_epoch(s.epoch)
                .with_end_offset(s.offset),
        );
    }
    r.with_responses(vec![fetch_response::FetchableTopicResponse::default()
        .with_topic(topic())
        .with_topic_id(METADATA_TOPIC_ID)
        .with_partitions(vec![p])])
}

/// A FetchSnapshot response carrying `chunk` at `position`.
#[allow(clippy::too_many_arguments)]
pub fn fetch_snapshot_response(
    top_error: i16,
    error: i16,
    epoch: i32,
    leader: NodeId,
    id: OffsetAndEpoch,
    position: i64,
    size: i64,
    chunk: Bytes,
) -> FetchSnapshotResponse {
    let r = FetchSnapshotResponse::default().with_error_code(top_error);
    if top_error != 0 {
        return r;
    }
    r.with_topics(vec![fetch_snapshot_response::TopicSnapshot::default()
        .with_name(topic())
        .with_partitions(vec![
            fetch_snapshot_response::PartitionSnapshot::default()
                .with_index(METADATA_PARTITION)
                .with_error_code(error)
                .with_snapshot_id(
                    fetch_snapshot_response::SnapshotId::default()
                        .with_end_offset(id.offset)
                        .with_epoch(id.epoch),
                )
                .with_current_leader(
                    fetch_snapshot_response::LeaderIdAndEpoch::default()
                        .with_leader_id(leader.into())
                        .with_leader_epoch(epoch),
                )
                .with_size(size)
                .with_position(position)
                .with_unaligned_records(chunk),
        ])])
}

// ---- rendering actions ----------------------------------------------------

/// An action (or request, or response) as the scenario language sees it:
/// a kind and named fields, each a string in the language's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl Rendered {
    fn new(kind: &'static str) -> Rendered {
        Rendered {
            kind,
            fields: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl ToString) -> Rendered {
        self.fields.push((name, value.to_string()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind)?;
        for (n, v) in &self.fields {
            write!(f, " {n}={v}")?;
        }
        Ok(())
    }
}

fn cluster_name(c: &Option<StrBytes>) -> String {
    c.as_ref().map_or("-".to_string(), |c| c.to_string())
}

/// Renders the request of a `Send` into `r`.
fn render_request(mut r: Rendered, request: &RaftRequest) -> Rendered {
    r = r.with("api", request_api(request));
    match request {
        RaftRequest::Vote(v) => {
            r = r.with("cluster", cluster_name(&v.cluster_id));
            if let Some(p) = v.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("epoch", p.replica_epoch)
                    .with("candidate", i32::from(p.replica_id))
                    .with("last", eo(p.last_offset_epoch, p.last_offset));
            }
        }
        RaftRequest::BeginQuorumEpoch(b) => {
            r = r.with("cluster", cluster_name(&b.cluster_id));
            if let Some(p) = b.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id));
            }
        }
        RaftRequest::EndQuorumEpoch(e) => {
            r = r.with("cluster", cluster_name(&e.cluster_id));
            if let Some(p) = e.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id))
                    .with("successors", join(p.preferred_successors.iter()));
            }
        }
        RaftRequest::Fetch(f) => {
            r = r
                .with("cluster", cluster_name(&f.cluster_id))
                .with("replica", i32::from(f.replica_state.replica_id))
                .with("max-wait", f.max_wait_ms);
            if let Some(p) = f.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("epoch", p.current_leader_epoch)
                    .with("offset", p.fetch_offset)
                    .with("last-epoch", p.last_fetched_epoch);
            }
        }
        RaftRequest::FetchSnapshot(f) => {
            r = r
                .with("cluster", cluster_name(&f.cluster_id))
                .with("replica", i32::from(f.replica_id));
            if let Some(p) = f.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("epoch", p.current_leader_epoch)
                    .with(
                        "snapshot",
                        eo(p.snapshot_id.epoch, p.snapshot_id.end_offset),
                    )
                    .with("position", p.position);
            }
        }
        RaftRequest::DescribeQuorum(_) => {}
    }
    r
}

fn render_response(mut r: Rendered, response: &RaftResponse) -> Rendered {
    match response {
        RaftResponse::Vote(v) => {
            r = r
                .with("api", "vote")
                .with("top-error", error_name(v.error_code));
            if let Some(p) = v.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("error", error_name(p.error_code))
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id))
                    .with("granted", p.vote_granted);
            }
        }
        RaftResponse::BeginQuorumEpoch(b) => {
            r = r
                .with("api", "begin-epoch")
                .with("top-error", error_name(b.error_code));
            if let Some(p) = b.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("error", error_name(p.error_code))
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id));
            }
        }
        RaftResponse::EndQuorumEpoch(e) => {
            r = r
                .with("api", "end-epoch")
                .with("top-error", error_name(e.error_code));
            if let Some(p) = e.topics.first().and_then(|t| t.partitions.first()) {
                r = r
                    .with("error", error_name(p.error_code))
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id));
            }
        }
        RaftResponse::DescribeQuorum(d) => {
            r = r
                .with("api", "describe-quorum")
                .with("top-error", error_name(d.error_code));
            if let Some(p) = d.topics.first().and_then(|t| t.partitions.first()) {
                let replicas =
                    |v: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                        join(
                            v.iter().map(|s| {
                                format!("{}:{}", i32::from(s.replica_id), s.log_end_offset)
                            }),
                        )
                    };
                r = r
                    .with("error", error_name(p.error_code))
                    .with("epoch", p.leader_epoch)
                    .with("leader", i32::from(p.leader_id))
                    .with("hw", p.high_watermark)
                    .with("voters", replicas(&p.current_voters))
                    .with("observers", replicas(&p.observers));
            }
        }
        RaftResponse::Fetch(f) => r = render_fetch_response(r, f),
        RaftResponse::FetchSnapshot(f) => r = render_fetch_snapshot_response(r, f),
    }
    r
}

fn render_fetch_response(mut r: Rendered, f: &FetchResponse) -> Rendered {
    r = r
        .with("api", "fetch")
        .with("top-error", error_name(f.error_code));
    if let Some(p) = f.responses.first().and_then(|t| t.partitions.first()) {
        let diverging = if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 {
            eo(p.diverging_epoch.epoch, p.diverging_epoch.end_offset)
        } else {
            "-".to_string()
        };
        let snapshot = if p.snapshot_id.end_offset >= 0 || p.snapshot_id.epoch >= 0 {
            eo(p.snapshot_id.epoch, p.snapshot_id.end_offset)
        } else {
            "-".to_string()
        };
        r = r
            .with("error", error_name(p.error_code))
            .with("epoch", p.current_leader.leader_epoch)
            .with("leader", i32::from(p.current_leader.leader_id))
            .with("hw", p.high_watermark)
            .with("log-start", p.log_start_offset)
            .with("diverging", diverging)
            .with("snapshot", snapshot);
    }
    r
}

fn render_fetch_snapshot_response(mut r: Rendered, f: &FetchSnapshotResponse) -> Rendered {
    r = r
        .with("api", "fetch-snapshot")
        .with("top-error", error_name(f.error_code));
    if let Some(p) = f.topics.first().and_then(|t| t.partitions.first()) {
        r = r
            .with("error", error_name(p.error_code))
            .with("epoch", p.current_leader.leader_epoch)
            .with("leader", i32::from(p.current_leader.leader_id))
            .with(
                "snapshot",
                eo(p.snapshot_id.epoch, p.snapshot_id.end_offset),
            )
            .with("position", p.position)
            .with("size", p.size);
    }
    r
}

/// Summary of whole batches: (first offset, next offset, records, epochs,
/// kinds) where a kind is `lc` for a LeaderChange control batch, `ctl` for
/// another control batch and `data` otherwise.
fn render_batches(mut r: Rendered, bytes: &Bytes) -> Rendered {
    match riffle_raft::batch::headers(bytes) {
        Err(e) => r.with("invalid", e),
        Ok(headers) => {
            let first = headers.first().map_or(-1, |h| h.base_offset);
            let end = headers.last().map_or(-1, |h| h.next_offset());
            let records: i64 = headers.iter().map(|h| i64::from(h.record_count)).sum();
            let mut epochs: Vec<i32> = headers.iter().map(|h| h.partition_leader_epoch).collect();
            epochs.dedup();
            let kinds = headers.iter().map(|h| {
                if !h.is_control() {
                    "data"
                } else if control_type(bytes, h.base_offset)
                    == Some(riffle_raft::batch::CONTROL_LEADER_CHANGE)
                {
                    "lc"
                } else {
                    "ctl"
                }
            });
            r = r
                .with("offset", first)
                .with("end", end)
                .with("records", records)
                .with("epoch", join(epochs))
                .with("batches", headers.len())
                .with("kinds", join(kinds));
            r
        }
    }
}

/// The control type of the control batch at `base_offset` in `bytes`.
fn control_type(bytes: &Bytes, base_offset: i64) -> Option<i16> {
    let mut buf = bytes.clone();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).ok()?;
    let record = sets
        .into_iter()
        .flat_map(|s| s.records)
        .find(|r| r.offset == base_offset && r.control)?;
    let key = record.key?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

/// The positional field of each action kind: `expect hw 5` means
/// `expect hw offset=5`.
pub fn positional_field(kind: &str) -> Option<&'static str> {
    match kind {
        "send" | "respond" => Some("api"),
        "role" => Some("role"),
        "hw" | "delete-before" => Some("offset"),
        "truncate" | "flush" => Some("end"),
        "install-snapshot" => Some("snapshot"),
        _ => None,
    }
}

pub const ACTION_KINDS: [&str; 11] = [
    "persist",
    "append",
    "truncate",
    "flush",
    "send",
    "respond",
    "hw",
    "role",
    "write-chunk",
    "install-snapshot",
    "delete-before",
];

pub fn render_action(action: &Action) -> Rendered {
    match action {
        Action::PersistElectionState(e) => Rendered::new("persist")
            .with("epoch", e.epoch)
            .with("voted", opt_id(e.voted_id))
            .with("leader", opt_id(e.leader_id))
            .with("voters", join(e.voters.iter())),
        Action::Append { batches } => render_batches(Rendered::new("append"), batches),
        Action::Truncate { end_offset } => Rendered::new("truncate").with("end", end_offset),
        Action::Flush { end_offset } => Rendered::new("flush").with("end", end_offset),
        Action::Send { to, seq, request } => render_request(
            Rendered::new("send").with("to", to).with("seq", seq),
            request,
        ),
        Action::Respond { id, response } => {
            render_response(Rendered::new("respond").with("id", id), response)
        }
        Action::RespondFetch { id, response, read } => {
            let r = render_fetch_response(Rendered::new("respond").with("id", id), response);
            match read {
                Some(read) => r
                    .with("read", format!("{}..{}", read.from, read.end))
                    .with("read-max", read.max_bytes),
                None => r.with("read", "-").with("read-max", "-"),
            }
        }
        Action::RespondFetchSnapshot { id, response, read } => {
            let r =
                render_fetch_snapshot_response(Rendered::new("respond").with("id", id), response);
            match read {
                Some(read) => r
                    .with("read", read.position)
                    .with("read-max", read.max_bytes)
                    .with("read-snapshot", eo(read.id.epoch, read.id.offset)),
                None => r
                    .with("read", "-")
                    .with("read-max", "-")
                    .with("read-snapshot", "-"),
            }
        }
        Action::HighWatermark(hw) => Rendered::new("hw").with("offset", hw),
        Action::RoleChanged(info) => Rendered::new("role")
            .with("role", role_name(info.kind))
            .with("epoch", info.epoch)
            .with("leader", opt_id(info.leader_id)),
        Action::WriteSnapshotChunk {
            id,
            position,
            bytes,
        } => Rendered::new("write-chunk")
            .with("snapshot", eo(id.epoch, id.offset))
            .with("position", position)
            .with("bytes", bytes.len()),
        Action::InstallSnapshot { id } => {
            Rendered::new("install-snapshot").with("snapshot", eo(id.epoch, id.offset))
        }
        Action::DeleteBefore { offset } => Rendered::new("delete-before").with("offset", offset),
    }
}

/// Whether `actual` satisfies `expected`: equal strings, for a number a
/// range `a..b` (inclusive; either end may be left out), or any of
/// several alternatives `x|y`.
pub fn value_matches(expected: &str, actual: &str) -> bool {
    if expected.contains('|') {
        return expected.split('|').any(|e| value_matches(e, actual));
    }
    if expected == actual {
        return true;
    }
    if let Some((lo, hi)) = expected.split_once("..") {
        if let Ok(a) = actual.parse::<i128>() {
            let lo_ok = lo.is_empty() || lo.parse::<i128>().is_ok_and(|lo| a >= lo);
            let hi_ok = hi.is_empty() || hi.parse::<i128>().is_ok_and(|hi| a <= hi);
            return lo_ok && hi_ok;
        }
    }
    false
}
