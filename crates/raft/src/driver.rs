//! The thin driver: runs a [`RaftCore`] on its own thread, performs its
//! actions against a [`RaftStorage`], and carries its RPCs over TCP to the
//! other voters' controller listeners.
//!
//! The core runs on a dedicated OS thread because its actions include
//! fsyncs; the network lives on the tokio runtime. Commands reach the
//! thread over a channel; responses go back over oneshot channels.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::messages::{
    BeginQuorumEpochResponse, EndQuorumEpochResponse, FetchResponse, FetchSnapshotResponse,
    VoteResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::core::{Action, ProposeError, RaftCore, RaftRequest, RaftResponse};
use crate::role::{RoleInfo, RoleKind};
use crate::types::{ElectionState, LogState, NodeId, OffsetAndEpoch, RaftConfig};

/// What the driver needs from the disk. Every method is synchronous and
/// called from the raft thread; a failure stops the node (Kafka halts on
/// a metadata log I/O error).
pub trait RaftStorage: Send + 'static {
    fn persist_election(&mut self, state: &ElectionState) -> Result<(), String>;
    fn append(&mut self, batches: &[u8]) -> Result<(), String>;
    fn truncate(&mut self, end_offset: i64) -> Result<(), String>;
    fn flush(&mut self, end_offset: i64) -> Result<(), String>;
    /// Whole batches from the one holding `from`, below `end`, at most
    /// `max_bytes` but at least one batch.
    fn read(&mut self, from: i64, end: i64, max_bytes: usize) -> Result<Bytes, String>;
    fn write_snapshot_chunk(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        bytes: &[u8],
    ) -> Result<(), String>;
    fn install_snapshot(&mut self, id: OffsetAndEpoch) -> Result<(), String>;
    fn delete_before(&mut self, offset: i64) -> Result<(), String>;
    /// A chunk of snapshot `id` and the snapshot's whole size.
    fn read_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        max_bytes: usize,
    ) -> Result<(Bytes, u64), String>;
    /// Writes snapshot `id` holding `values` (the state machine's records
    /// at `id.offset`); returns its size in bytes.
    fn write_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        timestamp: i64,
        values: &[Bytes],
    ) -> Result<u64, String>;
}

/// The wire versions the driver speaks to other Riffle controllers.
pub const VOTE_VERSION: i16 = 0;
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = 0;
pub const END_QUORUM_EPOCH_VERSION: i16 = 0;
pub const FETCH_VERSION: i16 = 16;
pub const FETCH_SNAPSHOT_VERSION: i16 = 0;

/// Why a driver call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("this node is not the quorum leader (epoch {epoch}, leader {leader:?})")]
    NotLeader { epoch: i32, leader: Option<NodeId> },
    #[error("leadership was lost before the records were committed")]
    LeadershipLost,
    #[error("the records are too large for one batch ({0} bytes)")]
    TooLarge(usize),
    #[error("the quorum is stopped: {0}")]
    Stopped(String),
    #[error("snapshot refused: {0}")]
    Snapshot(String),
}

enum Command {
    Request {
        request: RaftRequest,
        reply: oneshot::Sender<RaftResponse>,
    },
    Response {
        from: NodeId,
        seq: u64,
        response: RaftResponse,
    },
    SendFailed {
        to: NodeId,
        seq: u64,
    },
    Propose {
        values: Vec<Bytes>,
        reply: oneshot::Sender<Result<i64, DriverError>>,
    },
    Snapshot {
        end_offset: i64,
        values: Vec<Bytes>,
        reply: oneshot::Sender<Result<OffsetAndEpoch, DriverError>>,
    },
    Shutdown,
}

/// A running quorum member.
#[derive(Debug)]
pub struct RaftHandle {
    commands: std_mpsc::Sender<Command>,
    high_watermark: watch::Receiver<i64>,
    role: watch::Receiver<RoleInfo>,
    leadership: watch::Receiver<Option<(i32, i64)>>,
    stopped: watch::Receiver<Option<String>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Request { .. } => "Request",
            Command::Response { .. } => "Response",
            Command::SendFailed { .. } => "SendFailed",
            Command::Propose { .. } => "Propose",
            Command::Snapshot { .. } => "Snapshot",
            Command::Shutdown => "Shutdown",
        })
    }
}

/// Milliseconds on a clock that starts at the wall clock and then only
/// moves forward.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    start_ms: u64,
}

impl Clock {
    fn new() -> Clock {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            start_ms,
        }
    }
    fn now(&self) -> u64 {
        self.start_ms + self.start.elapsed().as_millis() as u64
    }
}

impl RaftHandle {
    /// Starts the node: the core on a thread of its own, one connection
    /// task per other voter on `runtime`. `peers` maps voter ids to their
    /// controller listener `host:port`.
    pub fn start(
        config: RaftConfig,
        peers: BTreeMap<NodeId, String>,
        storage: Arc<Mutex<dyn RaftStorage>>,
        persisted: Option<ElectionState>,
        log: LogState,
        snapshot_size: u64,
        runtime: tokio::runtime::Handle,
    ) -> RaftHandle {
        let clock = Clock::new();
        let (commands, rx) = std_mpsc::channel();
        let core = RaftCore::new(config.clone(), persisted, log, snapshot_size, clock.now());
        let (hw_tx, high_watermark) = watch::channel(core.high_watermark());
        let (role_tx, role) = watch::channel(core.role_info());
        let (leadership_tx, leadership) =
            watch::channel(core.epoch_start_offset().map(|s| (core.epoch(), s)));
        let (stopped_tx, stopped) = watch::channel(None);
        let mut senders = BTreeMap::new();
        for (id, address) in peers {
            if id == config.node_id {
                continue;
            }
            let (tx, prx) = mpsc::unbounded_channel();
            senders.insert(id, tx);
            runtime.spawn(peer_task(
                config.node_id,
                id,
                address,
                Duration::from_millis(config.request_timeout_ms.max(1)),
                prx,
                commands.clone(),
            ));
        }
        let thread = std::thread::Builder::new()
            .name(format!("raft-{}", config.node_id))
            .spawn(move || {
                let mut driver = Driver {
                    core,
                    clock,
                    storage,
                    senders,
                    pending: BTreeMap::new(),
                    next_request_id: 1,
                    proposals: Vec::new(),
                    hw_tx,
                    role_tx,
                    leadership_tx,
                    failed_sends: Vec::new(),
                };
                let outcome = driver.run(rx);
                if let Err(e) = &outcome {
                    error!("the metadata quorum stopped: {e}");
                }
                stopped_tx.send_replace(Some(outcome.err().unwrap_or_else(|| "shut down".into())));
            })
            .expect("spawning the raft thread");
        RaftHandle {
            commands,
            high_watermark,
            role,
            leadership,
            stopped,
            thread: Mutex::new(Some(thread)),
        }
    }

    fn send(&self, command: Command) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .map_err(|_| DriverError::Stopped(self.stop_reason()))
    }

    fn stop_reason(&self) -> String {
        self.stopped
            .borrow()
            .clone()
            .unwrap_or_else(|| "stopped".into())
    }

    /// Handles a KRaft request from another node or an operator.
    pub async fn request(&self, request: RaftRequest) -> Result<RaftResponse, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request { request, reply })?;
        rx.await
            .map_err(|_| DriverError::Stopped(self.stop_reason()))
    }

    /// Appends `values` as one batch through the leader and waits until
    /// they are committed. Returns the offset of the last one.
    pub async fn propose(&self, values: Vec<Bytes>) -> Result<i64, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Propose { values, reply })?;
        rx.await
            .map_err(|_| DriverError::Stopped(self.stop_reason()))?
    }

    /// Writes a snapshot of the state machine at `end_offset` (every
    /// committed record below it applied), then lets the log start move
    /// past it.
    pub async fn snapshot(
        &self,
        end_offset: i64,
        values: Vec<Bytes>,
    ) -> Result<OffsetAndEpoch, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Snapshot {
            end_offset,
            values,
            reply,
        })?;
        rx.await
            .map_err(|_| DriverError::Stopped(self.stop_reason()))?
    }

    /// The exclusive end of the committed records.
    pub fn high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.clone()
    }

    pub fn role(&self) -> watch::Receiver<RoleInfo> {
        self.role.clone()
    }

    /// `Some((epoch, epoch start offset))` while this node is leader: the
    /// offset of the LeaderChange record that opened its epoch. Once the
    /// high watermark passes it, every record of earlier epochs is
    /// committed too.
    pub fn leadership(&self) -> watch::Receiver<Option<(i32, i64)>> {
        self.leadership.clone()
    }

    /// Some(reason) once the raft thread has stopped.
    pub fn stopped(&self) -> watch::Receiver<Option<String>> {
        self.stopped.clone()
    }

    /// Graceful shutdown: a leader resigns and tells the voters (for at
    /// most the request timeout), then the thread stops.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for RaftHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// A proposal waiting for commit: its last offset, its epoch, the reply.
type Proposal = (i64, i32, oneshot::Sender<Result<i64, DriverError>>);

struct Driver {
    core: RaftCore,
    clock: Clock,
    storage: Arc<Mutex<dyn RaftStorage>>,
    senders: BTreeMap<NodeId, mpsc::UnboundedSender<(u64, RaftRequest)>>,
    pending: BTreeMap<u64, oneshot::Sender<RaftResponse>>,
    next_request_id: u64,
    /// Proposals waiting for commit: (last offset, epoch, reply).
    proposals: Vec<Proposal>,
    hw_tx: watch::Sender<i64>,
    role_tx: watch::Sender<RoleInfo>,
    leadership_tx: watch::Sender<Option<(i32, i64)>>,
    failed_sends: Vec<(NodeId, u64)>,
}

impl Driver {
    fn run(&mut self, rx: std_mpsc::Receiver<Command>) -> Result<(), String> {
        let mut shutdown_deadline: Option<u64> = None;
        self.perform()?;
        loop {
            let now = self.clock.now();
            if let Some(d) = shutdown_deadline {
                if self.core.shutdown_complete() || now >= d {
                    info!("metadata quorum member stopped");
                    return Ok(());
                }
            }
            let deadline = self
                .core
                .next_deadline()
                .min(shutdown_deadline.unwrap_or(u64::MAX));
            let wait = deadline.saturating_sub(now).clamp(1, 1000);
            match rx.recv_timeout(Duration::from_millis(wait)) {
                Ok(command) => {
                    if matches!(command, Command::Shutdown) && shutdown_deadline.is_none() {
                        let now = self.clock.now();
                        shutdown_deadline = Some(now + self.core.config().request_timeout_ms);
                    }
                    self.handle(command);
                    // Take whatever else is queued before acting.
                    while let Ok(command) = rx.try_recv() {
                        if matches!(command, Command::Shutdown) && shutdown_deadline.is_none() {
                            shutdown_deadline =
                                Some(self.clock.now() + self.core.config().request_timeout_ms);
                        }
                        self.handle(command);
                        self.perform()?;
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            for (to, seq) in std::mem::take(&mut self.failed_sends) {
                self.core.handle_send_failure(self.clock.now(), to, seq);
            }
            self.core.tick(self.clock.now());
            self.perform()?;
        }
    }

    fn handle(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Request { request, reply } => {
                let id = self.next_request_id;
                self.next_request_id += 1;
                self.pending.insert(id, reply);
                self.core.handle_request(now, id, request);
            }
            Command::Response {
                from,
                seq,
                response,
            } => self.core.handle_response(now, from, seq, response),
            Command::SendFailed { to, seq } => self.core.handle_send_failure(now, to, seq),
            Command::Propose { values, reply } => match self.core.propose(now, values) {
                Ok((offset, epoch)) => self.proposals.push((offset, epoch, reply)),
                Err(ProposeError::NotLeader { epoch, leader }) => {
                    let _ = reply.send(Err(DriverError::NotLeader { epoch, leader }));
                }
                Err(ProposeError::TooLarge { bytes }) => {
                    let _ = reply.send(Err(DriverError::TooLarge(bytes)));
                }
            },
            Command::Snapshot {
                end_offset,
                values,
                reply,
            } => {
                let _ = reply.send(self.snapshot(now, end_offset, &values));
            }
            Command::Shutdown => self.core.shutdown(now),
        }
    }

    fn snapshot(
        &mut self,
        now: u64,
        end_offset: i64,
        values: &[Bytes],
    ) -> Result<OffsetAndEpoch, DriverError> {
        if end_offset > self.core.high_watermark() {
            return Err(DriverError::Snapshot(format!(
                "offset {end_offset} is beyond the high watermark {}",
                self.core.high_watermark()
            )));
        }
        if end_offset <= self.core.log_state().start_offset {
            return Err(DriverError::Snapshot(format!(
                "offset {end_offset} is not past the log start {}",
                self.core.log_state().start_offset
            )));
        }
        let epoch = self.core.epoch_of_offset(end_offset - 1).ok_or_else(|| {
            DriverError::Snapshot(format!("no epoch known for offset {}", end_offset - 1))
        })?;
        let id = OffsetAndEpoch::new(end_offset, epoch);
        let size = self
            .storage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_snapshot(id, now as i64, values)
            .map_err(DriverError::Snapshot)?;
        self.core.snapshot_created(now, id, size);
        info!(?id, size, "metadata snapshot written");
        Ok(id)
    }

    /// Performs the queued actions in order.
    fn perform(&mut self) -> Result<(), String> {
        let actions = self.core.take_actions();
        if actions.is_empty() {
            return Ok(());
        }
        let storage = self.storage.clone();
        let mut storage = storage.lock().unwrap_or_else(|p| p.into_inner());
        for action in actions {
            match action {
                Action::PersistElectionState(s) => storage.persist_election(&s)?,
                Action::Append { batches } => storage.append(&batches)?,
                Action::Truncate { end_offset } => storage.truncate(end_offset)?,
                Action::Flush { end_offset } => storage.flush(end_offset)?,
                Action::Send { to, seq, request } => match self.senders.get(&to) {
                    Some(tx) if tx.send((seq, request)).is_ok() => {}
                    _ => self.failed_sends.push((to, seq)),
                },
                Action::Respond { id, response } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(response);
                    }
                }
                Action::RespondFetch {
                    id,
                    mut response,
                    read,
                } => {
                    if let Some(r) = read {
                        let bytes = storage.read(r.from, r.end, r.max_bytes)?;
                        if let Some(p) = response
                            .responses
                            .first_mut()
                            .and_then(|t| t.partitions.first_mut())
                        {
                            p.records = Some(bytes);
                        }
                    }
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(RaftResponse::Fetch(response));
                    }
                }
                Action::RespondFetchSnapshot {
                    id,
                    mut response,
                    read,
                } => {
                    if let Some(r) = read {
                        let (bytes, size) = storage.read_snapshot(r.id, r.position, r.max_bytes)?;
                        if let Some(p) = response
                            .topics
                            .first_mut()
                            .and_then(|t| t.partitions.first_mut())
                        {
                            p.unaligned_records = bytes;
                            p.size = size as i64;
                        }
                    }
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(RaftResponse::FetchSnapshot(response));
                    }
                }
                Action::HighWatermark(hw) => {
                    self.hw_tx.send_replace(hw);
                }
                Action::RoleChanged(info) => {
                    debug!(?info, "role changed");
                    self.role_tx.send_replace(info);
                    self.leadership_tx.send_replace(
                        self.core
                            .epoch_start_offset()
                            .map(|s| (self.core.epoch(), s)),
                    );
                }
                Action::WriteSnapshotChunk {
                    id,
                    position,
                    bytes,
                } => storage.write_snapshot_chunk(id, position, &bytes)?,
                Action::InstallSnapshot { id } => storage.install_snapshot(id)?,
                Action::DeleteBefore { offset } => storage.delete_before(offset)?,
            }
        }
        drop(storage);
        self.settle_proposals();
        Ok(())
    }

    /// Answers proposals that are committed (leader of their epoch, high
    /// watermark past them) or can no longer be (leadership changed).
    fn settle_proposals(&mut self) {
        let hw = self.core.high_watermark();
        let leading = if self.core.is_leader() {
            Some(self.core.epoch())
        } else {
            None
        };
        let mut waiting = Vec::new();
        for (offset, epoch, reply) in std::mem::take(&mut self.proposals) {
            if leading == Some(epoch) {
                if offset < hw {
                    let _ = reply.send(Ok(offset));
                } else {
                    waiting.push((offset, epoch, reply));
                }
            } else {
                let _ = reply.send(Err(DriverError::LeadershipLost));
            }
        }
        self.proposals = waiting;
    }
}

fn api_of(request: &RaftRequest) -> (ApiKey, i16) {
    match request {
        RaftRequest::Vote(_) => (ApiKey::Vote, VOTE_VERSION),
        RaftRequest::BeginQuorumEpoch(_) => (ApiKey::BeginQuorumEpoch, BEGIN_QUORUM_EPOCH_VERSION),
        RaftRequest::EndQuorumEpoch(_) => (ApiKey::EndQuorumEpoch, END_QUORUM_EPOCH_VERSION),
        RaftRequest::Fetch(_) => (ApiKey::Fetch, FETCH_VERSION),
        RaftRequest::FetchSnapshot(_) => (ApiKey::FetchSnapshot, FETCH_SNAPSHOT_VERSION),
        RaftRequest::DescribeQuorum(_) => (ApiKey::DescribeQuorum, 0),
    }
}

/// Encodes a request frame (size prefix, header, body).
pub fn encode_request(
    request: &RaftRequest,
    correlation_id: i32,
    client_id: &str,
) -> anyhow::Result<Bytes> {
    let (key, version) = api_of(request);
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut body, key.request_header_version(version))?;
    match request {
        RaftRequest::Vote(r) => r.encode(&mut body, version)?,
        RaftRequest::BeginQuorumEpoch(r) => r.encode(&mut body, version)?,
        RaftRequest::EndQuorumEpoch(r) => r.encode(&mut body, version)?,
        RaftRequest::Fetch(r) => r.encode(&mut body, version)?,
        RaftRequest::FetchSnapshot(r) => r.encode(&mut body, version)?,
        RaftRequest::DescribeQuorum(r) => r.encode(&mut body, version)?,
    }
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame.freeze())
}

/// Decodes the response frame (without its size prefix) to `request`.
pub fn decode_response(
    request: &RaftRequest,
    mut frame: Bytes,
) -> anyhow::Result<(i32, RaftResponse)> {
    let (key, version) = api_of(request);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    let response = match request {
        RaftRequest::Vote(_) => RaftResponse::Vote(VoteResponse::decode(&mut frame, version)?),
        RaftRequest::BeginQuorumEpoch(_) => {
            RaftResponse::BeginQuorumEpoch(BeginQuorumEpochResponse::decode(&mut frame, version)?)
        }
        RaftRequest::EndQuorumEpoch(_) => {
            RaftResponse::EndQuorumEpoch(EndQuorumEpochResponse::decode(&mut frame, version)?)
        }
        RaftRequest::Fetch(_) => RaftResponse::Fetch(FetchResponse::decode(&mut frame, version)?),
        RaftRequest::FetchSnapshot(_) => {
            RaftResponse::FetchSnapshot(FetchSnapshotResponse::decode(&mut frame, version)?)
        }
        RaftRequest::DescribeQuorum(_) => RaftResponse::DescribeQuorum(
            kafka_protocol::messages::DescribeQuorumResponse::decode(&mut frame, version)?,
        ),
    };
    Ok((header.correlation_id, response))
}

/// Largest response frame accepted from a peer.
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// One connection to one voter: requests strictly one at a time (the
/// core never has two outstanding to the same node).
async fn peer_task(
    local: NodeId,
    id: NodeId,
    address: String,
    timeout: Duration,
    mut requests: mpsc::UnboundedReceiver<(u64, RaftRequest)>,
    commands: std_mpsc::Sender<Command>,
) {
    let client_id = format!("raft-client-{local}");
    let mut conn: Option<TcpStream> = None;
    let mut logged_down = false;
    while let Some((seq, request)) = requests.recv().await {
        let result = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                let stream = TcpStream::connect(&address).await?;
                stream.set_nodelay(true)?;
                conn = Some(stream);
            }
            let stream = conn
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no connection"))?;
            let frame = encode_request(&request, seq as i32, &client_id)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            stream.write_all(&frame).await?;
            let reply = riffle_protocol::read_frame(stream, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .ok_or_else(|| std::io::Error::other("connection closed"))?;
            let (correlation, response) = decode_response(&request, reply.freeze())
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            if correlation != seq as i32 {
                return Err(std::io::Error::other(format!(
                    "correlation id {correlation}, expected {seq}"
                )));
            }
            Ok::<RaftResponse, std::io::Error>(response)
        })
        .await;
        let command = match result {
            Ok(Ok(response)) => {
                if logged_down {
                    info!(peer = id, %address, "controller reachable again");
                    logged_down = false;
                }
                Command::Response {
                    from: id,
                    seq,
                    response,
                }
            }
            Ok(Err(e)) => {
                if !logged_down {
                    warn!(peer = id, %address, "{} to controller failed: {e}", request.api_name());
                    logged_down = true;
                }
                conn = None;
                Command::SendFailed { to: id, seq }
            }
            Err(_) => {
                debug!(peer = id, %address, "{} timed out", request.api_name());
                conn = None;
                Command::SendFailed { to: id, seq }
            }
        };
        if commands.send(command).is_err() {
            return;
        }
    }
}

/// Whether `info` is the leader role.
pub fn is_leader(info: &RoleInfo) -> bool {
    info.kind == RoleKind::Leader
}
