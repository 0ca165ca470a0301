//! Every request and response crosses the simulated network as bytes:
//! encoded and decoded with `kafka-protocol` at the versions a KRaft
//! controller of Kafka 3.9/4.0 speaks, so a field the core sets that the
//! version cannot carry shows up as a failure instead of passing silently
//! through memory.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    BeginQuorumEpochRequest, BeginQuorumEpochResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, EndQuorumEpochRequest, EndQuorumEpochResponse, FetchRequest,
    FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use riffle_raft::{RaftRequest, RaftResponse};

/// The wire versions of the simulation: the ones riffle-raft's driver
/// speaks between Riffle controllers.
pub const VOTE_VERSION: i16 = riffle_raft::driver::VOTE_VERSION;
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = riffle_raft::driver::BEGIN_QUORUM_EPOCH_VERSION;
pub const END_QUORUM_EPOCH_VERSION: i16 = riffle_raft::driver::END_QUORUM_EPOCH_VERSION;
pub const FETCH_VERSION: i16 = riffle_raft::driver::FETCH_VERSION;
pub const FETCH_SNAPSHOT_VERSION: i16 = riffle_raft::driver::FETCH_SNAPSHOT_VERSION;
pub const DESCRIBE_QUORUM_VERSION: i16 = 2;

/// What a round trip found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecIssue {
    /// The message does not encode at the version at all.
    Encode { what: String, error: String },
    /// The encoded bytes do not decode.
    Decode { what: String, error: String },
    /// It decodes, but differs from what was sent: a field the version
    /// does not carry was set and silently dropped.
    Lossy { what: String },
    /// A field means something else than what the core puts in it (a
    /// Kafka peer would refuse or misread the message).
    Contract { what: String },
}

impl std::fmt::Display for CodecIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecIssue::Encode { what, error } => write!(f, "{what} does not encode: {error}"),
            CodecIssue::Decode { what, error } => {
                write!(f, "{what} does not decode after encoding: {error}")
            }
            CodecIssue::Lossy { what } => write!(
                f,
                "{what} changes in an encode/decode round trip (a field the version cannot carry is set)"
            ),
            CodecIssue::Contract { what } => write!(f, "{what}"),
        }
    }
}

impl CodecIssue {
    /// A stable name, for counting distinct issues.
    pub fn key(&self) -> String {
        match self {
            CodecIssue::Encode { what, .. } => format!("encode {what}"),
            CodecIssue::Decode { what, .. } => format!("decode {what}"),
            CodecIssue::Lossy { what } => format!("lossy {what}"),
            CodecIssue::Contract { what } => format!("contract {what}"),
        }
    }
}

/// Drops what a version legitimately does not carry before comparing.
trait Normalize: Sized {
    fn normalized(self) -> Self {
        self
    }
}

fn normalize<T: Normalize>(v: T) -> T {
    v.normalized()
}

impl Normalize for VoteRequest {}
impl Normalize for VoteResponse {}
impl Normalize for BeginQuorumEpochRequest {}
impl Normalize for BeginQuorumEpochResponse {}
impl Normalize for EndQuorumEpochRequest {}
impl Normalize for EndQuorumEpochResponse {}
impl Normalize for FetchSnapshotRequest {}
impl Normalize for FetchSnapshotResponse {}
impl Normalize for DescribeQuorumRequest {}
impl Normalize for DescribeQuorumResponse {}

/// Fetch v13+ names topics by id only; the core sets the name too and
/// accepts either, so the name is not compared.
impl Normalize for FetchRequest {
    fn normalized(mut self) -> Self {
        for t in &mut self.topics {
            t.topic = Default::default();
        }
        self
    }
}

impl Normalize for FetchResponse {
    fn normalized(mut self) -> Self {
        for t in &mut self.responses {
            t.topic = Default::default();
        }
        self
    }
}

/// The round trip of one message; returns what came out plus its size, or
/// the issue. `Lossy` issues also return the decoded value (what the peer
/// would see), so a lenient run can continue with it.
fn round_trip<T: Encodable + Decodable + PartialEq + Clone + Normalize>(
    value: &T,
    version: i16,
    what: &str,
) -> (Result<T, CodecIssue>, Option<CodecIssue>) {
    let what = format!("{what} v{version}");
    let mut buf = BytesMut::new();
    if let Err(e) = value.encode(&mut buf, version) {
        let issue = CodecIssue::Encode {
            what,
            error: e.to_string(),
        };
        return (Err(issue), None);
    }
    let mut bytes: Bytes = buf.freeze();
    let decoded = match T::decode(&mut bytes, version) {
        Ok(d) => d,
        Err(e) => {
            let issue = CodecIssue::Decode {
                what,
                error: e.to_string(),
            };
            return (Err(issue), None);
        }
    };
    if !bytes.is_empty() {
        let issue = CodecIssue::Decode {
            what,
            error: format!("{} bytes left over", bytes.len()),
        };
        return (Err(issue), None);
    }
    if normalize(decoded.clone()) != normalize(value.clone()) {
        return (Ok(decoded), Some(CodecIssue::Lossy { what }));
    }
    (Ok(decoded), None)
}

/// The result of sending a message over the simulated wire.
#[derive(Debug)]
pub struct Wire<T> {
    /// What the receiver decodes (None when it cannot be sent at all).
    pub delivered: Option<T>,
    /// What was wrong on the way, if anything.
    pub issue: Option<CodecIssue>,
}

fn wire<T, U>(
    r: (Result<T, CodecIssue>, Option<CodecIssue>),
    wrap: impl FnOnce(T) -> U,
) -> Wire<U> {
    match r {
        (Ok(v), issue) => Wire {
            delivered: Some(wrap(v)),
            issue,
        },
        (Err(issue), _) => Wire {
            delivered: None,
            issue: Some(issue),
        },
    }
}

pub fn request(r: &RaftRequest) -> Wire<RaftRequest> {
    match r {
        RaftRequest::Vote(m) => wire(
            round_trip::<VoteRequest>(m, VOTE_VERSION, "VoteRequest"),
            RaftRequest::Vote,
        ),
        RaftRequest::BeginQuorumEpoch(m) => wire(
            round_trip::<BeginQuorumEpochRequest>(
                m,
                BEGIN_QUORUM_EPOCH_VERSION,
                "BeginQuorumEpochRequest",
            ),
            RaftRequest::BeginQuorumEpoch,
        ),
        RaftRequest::EndQuorumEpoch(m) => wire(
            round_trip::<EndQuorumEpochRequest>(
                m,
                END_QUORUM_EPOCH_VERSION,
                "EndQuorumEpochRequest",
            ),
            RaftRequest::EndQuorumEpoch,
        ),
        RaftRequest::Fetch(m) => wire(
            round_trip::<FetchRequest>(m, FETCH_VERSION, "FetchRequest"),
            RaftRequest::Fetch,
        ),
        RaftRequest::FetchSnapshot(m) => wire(
            round_trip::<FetchSnapshotRequest>(m, FETCH_SNAPSHOT_VERSION, "FetchSnapshotRequest"),
            RaftRequest::FetchSnapshot,
        ),
        RaftRequest::DescribeQuorum(m) => wire(
            round_trip::<DescribeQuorumRequest>(
                m,
                DESCRIBE_QUORUM_VERSION,
                "DescribeQuorumRequest",
            ),
            RaftRequest::DescribeQuorum,
        ),
    }
}

pub fn response(r: &RaftResponse) -> Wire<RaftResponse> {
    match r {
        RaftResponse::Vote(m) => wire(
            round_trip::<VoteResponse>(m, VOTE_VERSION, "VoteResponse"),
            RaftResponse::Vote,
        ),
        RaftResponse::BeginQuorumEpoch(m) => wire(
            round_trip::<BeginQuorumEpochResponse>(
                m,
                BEGIN_QUORUM_EPOCH_VERSION,
                "BeginQuorumEpochResponse",
            ),
            RaftResponse::BeginQuorumEpoch,
        ),
        RaftResponse::EndQuorumEpoch(m) => wire(
            round_trip::<EndQuorumEpochResponse>(
                m,
                END_QUORUM_EPOCH_VERSION,
                "EndQuorumEpochResponse",
            ),
            RaftResponse::EndQuorumEpoch,
        ),
        RaftResponse::Fetch(m) => wire(
            round_trip::<FetchResponse>(m, FETCH_VERSION, "FetchResponse"),
            RaftResponse::Fetch,
        ),
        RaftResponse::FetchSnapshot(m) => wire(
            round_trip::<FetchSnapshotResponse>(m, FETCH_SNAPSHOT_VERSION, "FetchSnapshotResponse"),
            RaftResponse::FetchSnapshot,
        ),
        RaftResponse::DescribeQuorum(m) => wire(
            round_trip::<DescribeQuorumResponse>(
                m,
                DESCRIBE_QUORUM_VERSION,
                "DescribeQuorumResponse",
            ),
            RaftResponse::DescribeQuorum,
        ),
    }
}

/// What the receiver checks of a request's meaning that the codec cannot:
/// VoteRequest v1's `VoterId` names the voter the request is for, and a
/// Kafka voter refuses a vote meant for another (`INVALID_VOTER_KEY`).
pub fn contract(r: &RaftRequest, to: i32) -> Option<CodecIssue> {
    match r {
        RaftRequest::Vote(v)
            if VOTE_VERSION >= 1 && i32::from(v.voter_id) >= 0 && i32::from(v.voter_id) != to =>
        {
            Some(CodecIssue::Contract {
                what: "VoteRequest v1 VoterId is not the voter it is sent to".into(),
            })
        }
        _ => None,
    }
}

/// Known core codec bugs a lenient run repairs before encoding, so the
/// rest of the protocol can still be explored. Each is described in
/// `FINDINGS.md`; a repair that no longer triggers is harmless.
pub fn repair_request(r: &RaftRequest) -> Option<RaftRequest> {
    match r {
        // Fetch v15+ carries the replica in ReplicaState only; the
        // top-level ReplicaId must stay -1 or the request does not encode.
        RaftRequest::Fetch(m) if i32::from(m.replica_id) != -1 => {
            let mut m = m.clone();
            m.replica_id = (-1).into();
            Some(RaftRequest::Fetch(m))
        }
        _ => None,
    }
}
