//! The simulation loop: a virtual clock, one event queue ordered by
//! `(time, sequence)`, the nodes, the network and the invariants checked
//! after every event.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use kafka_protocol::messages::{describe_quorum_request, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use riffle_raft::types::METADATA_TOPIC;
use riffle_raft::{
    Action, NodeId, OffsetAndEpoch, RaftConfig, RaftCore, RaftRequest, RaftResponse, RequestId,
    RoleInfo, RoleKind,
};

use crate::codec::{self, CodecIssue, Wire};
use crate::disk::{Disk, Entry, SnapshotFile};
use crate::rng::{SimRng, TraceHash};
use crate::scenario::{Scenario, SimOptions};
use crate::state::{
    chain, decode_snapshot, encode_snapshot, SnapshotData, StateMachine, DIGEST_EMPTY,
};

/// The node id of the operator that sends DescribeQuorum.
const OPERATOR: NodeId = -1;
/// A run that processes this many events is stuck in a loop.
const MAX_EVENTS: u64 = 5_000_000;

type Res<T = ()> = Result<T, String>;

/// What a passing seed did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub voters: usize,
    pub observers: usize,
    /// Virtual time at the end (ms).
    pub end_ms: u64,
    /// When the cluster converged after the faults stopped (ms after).
    pub converged_after_ms: u64,
    pub events: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub leaders: usize,
    pub max_epoch: i32,
    pub committed: i64,
    pub proposals: u64,
    pub acknowledged: u64,
    pub crashes: u64,
    pub mid_action_crashes: u64,
    pub shutdowns: u64,
    pub partitions: u64,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    /// Restarts whose log needed the storage's recovery (an interrupted
    /// snapshot installation or `DeleteBefore`).
    pub log_recoveries: u64,
    /// Ticks where the core's next deadline did not move past `now`: a
    /// real driver would spin (see FINDINGS.md).
    pub spin_ticks: u64,
    /// Codec issues met in a lenient run, by kind, with counts.
    pub codec_issues: BTreeMap<String, u64>,
    /// FNV-1a of the whole event trace; equal runs have equal hashes.
    pub trace_hash: u64,
}

/// A broken invariant (or a run that did not converge).
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub time_ms: u64,
    pub event: String,
    pub message: String,
    pub scenario: String,
    pub trace_tail: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at {} ms during `{}`:",
            self.seed, self.time_ms, self.event
        )?;
        writeln!(f, "  {}", self.message)?;
        writeln!(f, "scenario: {}", self.scenario)?;
        writeln!(
            f,
            "replay: RIFFLE_SIM_SEED={} cargo test -p riffle-sim --test seeds -- replay_seed --nocapture",
            self.seed
        )?;
        writeln!(f, "last {} trace lines:", self.trace_tail.len())?;
        for line in &self.trace_tail {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SimFailure {}

#[derive(Debug)]
enum Body {
    Request {
        seq: u64,
        request: RaftRequest,
    },
    Response {
        seq: u64,
        response: RaftResponse,
        /// The incarnation of the requester; a restarted node never gets
        /// answers meant for its previous life (its connections closed).
        to_inc: u32,
    },
}

#[derive(Debug)]
struct Message {
    from: NodeId,
    from_inc: u32,
    to: NodeId,
    body: Body,
}

#[derive(Debug)]
enum Event {
    Tick {
        node: NodeId,
        inc: u32,
    },
    Deliver(Box<Message>),
    SendFailure {
        node: NodeId,
        inc: u32,
        to: NodeId,
        seq: u64,
    },
    Propose,
    Chaos,
    Restart {
        node: NodeId,
    },
    Crash {
        node: NodeId,
        inc: u32,
    },
    ShutdownGrace {
        node: NodeId,
        inc: u32,
    },
    Heal {
        generation: u64,
    },
    Audit,
    FaultsEnd,
    LivenessDeadline,
}

#[derive(Debug, Clone)]
struct Inbound {
    from: NodeId,
    from_inc: u32,
    seq: u64,
    api: &'static str,
    at: u64,
}

#[derive(Debug, Clone)]
struct Proposal {
    node: NodeId,
    inc: u32,
    epoch: i32,
    offset: i64,
    value: Bytes,
}

#[derive(Debug)]
struct Node {
    id: NodeId,
    config: RaftConfig,
    /// Bumped at every restart.
    inc: u32,
    core: Option<RaftCore>,
    disk: Disk,
    sm: StateMachine,
    inbound: BTreeMap<RequestId, Inbound>,
    timer_at: Option<u64>,
    /// The role as the last `RoleChanged` said.
    role: Option<RoleInfo>,
    /// The last published high watermark of this incarnation.
    hw: i64,
    /// The highest high watermark of any incarnation: the records below it
    /// were committed here and must stay.
    hw_max: i64,
    /// The highest epoch seen, across incarnations.
    max_epoch: i32,
    /// Records below this offset on this node's storage were checked
    /// against the committed log.
    verified_end: i64,
    shutting_down: bool,
    /// Crash in the middle of the next batch of actions (torn or not).
    crash_armed: Option<bool>,
}

impl Node {
    fn alive(&self) -> bool {
        self.core.is_some()
    }

    fn durable_end(&self) -> i64 {
        let snapshot = self.disk.latest_snapshot().map_or(0, |s| s.id.offset);
        self.disk.log.flushed_end.max(snapshot)
    }
}

#[derive(Debug, PartialEq)]
enum Phase {
    Faults,
    Liveness {
        since: u64,
        final_value: Option<Bytes>,
    },
    Done,
}

struct Sim<'o> {
    seed: u64,
    options: &'o SimOptions,
    sc: Scenario,
    rng: SimRng,
    now: u64,
    event_seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: BTreeMap<NodeId, Node>,
    voters: BTreeSet<NodeId>,
    partition: Option<BTreeMap<NodeId, u8>>,
    partition_generation: u64,
    phase: Phase,
    /// Every leader ever, by epoch.
    leaders: BTreeMap<i32, NodeId>,
    /// Catch-up progress at the last liveness deadline.
    liveness_progress: i64,
    /// Every vote granted on the wire: (voter, epoch) -> candidate.
    votes: BTreeMap<(NodeId, i32), NodeId>,
    /// The committed log: every record below the highest high watermark
    /// any node published, by offset.
    committed: Vec<Entry>,
    /// `committed_digest[k]`: the digest of the first `k` committed records.
    committed_digest: Vec<u64>,
    /// The epoch in which each committed record became committed (of the
    /// leader that first published a high watermark past it).
    committed_in: Vec<i32>,
    pending: Vec<Proposal>,
    acked: Vec<Proposal>,
    /// Every value the client proposed, and every value committed.
    proposed: BTreeSet<Bytes>,
    committed_values: BTreeSet<Bytes>,
    value_counter: u64,
    next_request_id: RequestId,
    trace: VecDeque<String>,
    hash: TraceHash,
    report: SimReport,
    current_event: String,
    /// Whether the current event is a tick of the node (spin detection).
    ticked: Option<NodeId>,
}

/// Runs one seed to the end: faults, then the liveness phase.
pub fn run_seed(seed: u64, options: &SimOptions) -> Result<SimReport, SimFailure> {
    let mut rng = SimRng::new(seed);
    let sc = Scenario::from_rng(&mut rng);
    let mut sim = Sim::new(seed, options, sc, rng);
    match sim.run() {
        Ok(()) => {
            sim.report.trace_hash = sim.hash.finish();
            Ok(sim.report)
        }
        Err(message) => Err(SimFailure {
            seed,
            time_ms: sim.now,
            event: sim.current_event.clone(),
            message,
            scenario: format!("{:?}", sim.sc),
            trace_tail: sim.trace.iter().cloned().collect(),
        }),
    }
}

fn summarize_request(r: &RaftRequest) -> String {
    match r {
        RaftRequest::Vote(v) => {
            let p = v.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "Vote(epoch {}, last {}@{})",
                    p.replica_epoch, p.last_offset, p.last_offset_epoch
                ),
                None => "Vote(?)".into(),
            }
        }
        RaftRequest::BeginQuorumEpoch(b) => {
            let p = b.topics.first().and_then(|t| t.partitions.first());
            format!(
                "BeginQuorumEpoch(epoch {})",
                p.map_or(-1, |p| p.leader_epoch)
            )
        }
        RaftRequest::EndQuorumEpoch(e) => {
            let p = e.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "EndQuorumEpoch(epoch {}, successors {:?})",
                    p.leader_epoch, p.preferred_successors
                ),
                None => "EndQuorumEpoch(?)".into(),
            }
        }
        RaftRequest::Fetch(f) => {
            let p = f.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "Fetch(epoch {}, offset {}, last epoch {})",
                    p.current_leader_epoch, p.fetch_offset, p.last_fetched_epoch
                ),
                None => "Fetch(?)".into(),
            }
        }
        RaftRequest::FetchSnapshot(f) => {
            let p = f.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "FetchSnapshot(epoch {}, {}@{} at {})",
                    p.current_leader_epoch,
                    p.snapshot_id.end_offset,
                    p.snapshot_id.epoch,
                    p.position
                ),
                None => "FetchSnapshot(?)".into(),
            }
        }
        RaftRequest::DescribeQuorum(_) => "DescribeQuorum".into(),
    }
}

fn summarize_response(r: &RaftResponse) -> String {
    match r {
        RaftResponse::Vote(v) => {
            let p = v.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "Vote(err {}/{}, epoch {}, leader {}, granted {})",
                    v.error_code,
                    p.error_code,
                    p.leader_epoch,
                    i32::from(p.leader_id),
                    p.vote_granted
                ),
                None => format!("Vote(err {})", v.error_code),
            }
        }
        RaftResponse::BeginQuorumEpoch(b) => {
            let p = b.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "BeginQuorumEpoch(err {}/{}, epoch {}, leader {})",
                    b.error_code,
                    p.error_code,
                    p.leader_epoch,
                    i32::from(p.leader_id)
                ),
                None => format!("BeginQuorumEpoch(err {})", b.error_code),
            }
        }
        RaftResponse::EndQuorumEpoch(e) => {
            let p = e.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "EndQuorumEpoch(err {}/{}, epoch {})",
                    e.error_code, p.error_code, p.leader_epoch
                ),
                None => format!("EndQuorumEpoch(err {})", e.error_code),
            }
        }
        RaftResponse::Fetch(f) => {
            let p = f.responses.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => {
                    let mut s = format!(
                        "Fetch(err {}/{}, leader {}@{}, hw {}",
                        f.error_code,
                        p.error_code,
                        i32::from(p.current_leader.leader_id),
                        p.current_leader.leader_epoch,
                        p.high_watermark
                    );
                    if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 {
                        s += &format!(
                            ", diverging {}@{}",
                            p.diverging_epoch.end_offset, p.diverging_epoch.epoch
                        );
                    }
                    if p.snapshot_id.end_offset >= 0 {
                        s += &format!(
                            ", snapshot {}@{}",
                            p.snapshot_id.end_offset, p.snapshot_id.epoch
                        );
                    }
                    if let Some(r) = &p.records {
                        s += &format!(", {} bytes", r.len());
                    }
                    s + ")"
                }
                None => format!("Fetch(err {})", f.error_code),
            }
        }
        RaftResponse::FetchSnapshot(f) => {
            let p = f.topics.first().and_then(|t| t.partitions.first());
            match p {
                Some(p) => format!(
                    "FetchSnapshot(err {}/{}, {}@{} at {} of {}, {} bytes)",
                    f.error_code,
                    p.error_code,
                    p.snapshot_id.end_offset,
                    p.snapshot_id.epoch,
                    p.position,
                    p.size,
                    p.unaligned_records.len()
                ),
                None => format!("FetchSnapshot(err {})", f.error_code),
            }
        }
        RaftResponse::DescribeQuorum(_) => "DescribeQuorum".into(),
    }
}

fn describe_entry(e: Option<&Entry>) -> String {
    match e {
        None => "nothing".into(),
        Some(Entry { epoch, value: None }) => format!("a control record of epoch {epoch}"),
        Some(Entry {
            epoch,
            value: Some(v),
        }) => format!("{:?} of epoch {epoch}", String::from_utf8_lossy(v)),
    }
}

impl<'o> Sim<'o> {
    fn new(seed: u64, options: &'o SimOptions, sc: Scenario, rng: SimRng) -> Sim<'o> {
        let voters: BTreeSet<NodeId> = (1..=sc.voters as NodeId).collect();
        let mut sim = Sim {
            seed,
            options,
            rng,
            now: 0,
            event_seq: 0,
            queue: BTreeMap::new(),
            nodes: BTreeMap::new(),
            voters: voters.clone(),
            partition: None,
            partition_generation: 0,
            phase: Phase::Faults,
            leaders: BTreeMap::new(),
            votes: BTreeMap::new(),
            liveness_progress: 0,
            committed: Vec::new(),
            committed_digest: vec![DIGEST_EMPTY],
            committed_in: Vec::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            proposed: BTreeSet::new(),
            committed_values: BTreeSet::new(),
            value_counter: 0,
            next_request_id: 1,
            trace: VecDeque::new(),
            hash: TraceHash::default(),
            report: SimReport {
                seed,
                voters: sc.voters,
                observers: sc.observers,
                ..SimReport::default()
            },
            current_event: "start".into(),
            ticked: None,
            sc,
        };
        let total = (sim.sc.voters + sim.sc.observers) as NodeId;
        for id in 1..=total {
            let mut config = RaftConfig::new(id, "sim-cluster", voters.clone());
            config.election_timeout_ms = sim.sc.election_timeout_ms;
            config.fetch_timeout_ms = sim.sc.fetch_timeout_ms;
            config.election_backoff_max_ms = sim.sc.election_timeout_ms;
            config.request_timeout_ms = sim.sc.request_timeout_ms;
            config.retry_backoff_ms = sim.sc.retry_backoff_ms;
            config.append_linger_ms = sim.sc.append_linger_ms;
            config.fetch_max_wait_ms = sim.sc.fetch_max_wait_ms;
            config.fetch_max_bytes = sim.sc.fetch_max_bytes;
            config.fetch_snapshot_max_bytes = sim.sc.fetch_snapshot_max_bytes;
            config.max_batch_bytes = sim.sc.max_batch_bytes;
            sim.nodes.insert(
                id,
                Node {
                    id,
                    config,
                    inc: 0,
                    core: None,
                    disk: Disk::default(),
                    sm: StateMachine::default(),
                    inbound: BTreeMap::new(),
                    timer_at: None,
                    role: None,
                    hw: 0,
                    hw_max: 0,
                    max_epoch: 0,
                    verified_end: 0,
                    shutting_down: false,
                    crash_armed: None,
                },
            );
        }
        sim
    }

    // ---- plumbing ------------------------------------------------------

    fn schedule(&mut self, at: u64, event: Event) {
        self.event_seq += 1;
        self.queue.insert((at, self.event_seq), event);
    }

    fn log(&mut self, line: String) {
        self.hash.u64(self.now);
        self.hash.bytes(line.as_bytes());
        if self.options.verbose {
            eprintln!("{:>7} {line}", self.now);
        }
        if self.trace.len() >= self.options.trace_tail.max(1) {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} {line}", self.now));
    }

    fn node(&self, id: NodeId) -> &Node {
        self.nodes
            .get(&id)
            .expect("node ids come from the node map")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .expect("node ids come from the node map")
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        if a == OPERATOR || b == OPERATOR {
            return true;
        }
        self.partition
            .as_ref()
            .is_none_or(|g| g.get(&a) == g.get(&b))
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn live_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.alive())
            .map(|n| n.id)
            .collect()
    }

    // ---- the loop ------------------------------------------------------

    fn run(&mut self) -> Res {
        self.log(format!("seed {} scenario {:?}", self.seed, self.sc));
        for id in self.node_ids() {
            self.current_event = format!("start n{id}");
            self.start_node(id)?;
        }
        self.check_all()?;
        self.schedule(0, Event::Propose);
        let first_chaos = self.rng.range(100, 1000);
        self.schedule(first_chaos, Event::Chaos);
        self.schedule(1000, Event::Audit);
        self.schedule(self.options.fault_ms, Event::FaultsEnd);
        while self.phase != Phase::Done {
            let Some(((at, _), event)) = self.queue.pop_first() else {
                return Err("the event queue ran dry".into());
            };
            debug_assert!(at >= self.now, "time never goes back");
            self.now = at;
            self.report.events += 1;
            if self.report.events > MAX_EVENTS {
                return Err(format!("more than {MAX_EVENTS} events: a livelock"));
            }
            self.ticked = None;
            self.handle(event)?;
            self.check_all()?;
            if matches!(self.phase, Phase::Liveness { .. }) {
                self.check_liveness()?;
            }
        }
        self.report.end_ms = self.now;
        self.report.leaders = self.leaders.len();
        self.report.max_epoch = self.leaders.keys().next_back().copied().unwrap_or(0);
        self.report.committed = self.committed.len() as i64;
        self.report.acknowledged = self.acked.len() as u64;
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Res {
        match event {
            Event::Tick { node, inc } => {
                let now = self.now;
                let n = self.node_mut(node);
                if n.inc != inc || !n.alive() || n.timer_at != Some(now) {
                    return Ok(());
                }
                n.timer_at = None;
                self.current_event = format!("tick n{node}");
                self.log(format!("n{node} tick"));
                self.ticked = Some(node);
                self.call(node, |core, now| core.tick(now))
            }
            Event::Deliver(m) => self.deliver(*m),
            Event::SendFailure { node, inc, to, seq } => {
                let n = self.node(node);
                if n.inc != inc || !n.alive() {
                    return Ok(());
                }
                self.current_event = format!("send failure n{node} -> n{to} seq {seq}");
                self.log(format!("n{node} send to n{to} seq {seq} failed"));
                self.call(node, |core, now| core.handle_send_failure(now, to, seq))
            }
            Event::Propose => self.propose(),
            Event::Chaos => self.chaos(),
            Event::Restart { node } => {
                if self.node(node).alive() {
                    return Ok(());
                }
                self.current_event = format!("restart n{node}");
                self.start_node(node)
            }
            Event::Crash { node, inc } => {
                let n = self.node(node);
                if n.inc != inc || !n.alive() || self.phase != Phase::Faults {
                    return Ok(());
                }
                self.current_event = format!("crash n{node} after a vote or epoch change");
                self.crash(node, true, "crash after persisting the election state")
            }
            Event::ShutdownGrace { node, inc } => {
                let n = self.node(node);
                if n.inc != inc || !n.alive() || !n.shutting_down {
                    return Ok(());
                }
                self.current_event = format!("shutdown grace of n{node} over");
                self.stop(node, true, "shutdown grace over")?;
                self.schedule_restart(node);
                Ok(())
            }
            Event::Heal { generation } => {
                if generation == self.partition_generation && self.partition.is_some() {
                    self.current_event = "heal".into();
                    self.log("partition healed".into());
                    self.partition = None;
                }
                Ok(())
            }
            Event::Audit => {
                self.current_event = "audit".into();
                self.audit()?;
                if self.phase != Phase::Done {
                    self.schedule(self.now + 1000, Event::Audit);
                }
                Ok(())
            }
            Event::FaultsEnd => {
                self.current_event = "faults end".into();
                self.faults_end()
            }
            Event::LivenessDeadline => {
                let Phase::Liveness { since, .. } = self.phase else {
                    return Ok(());
                };
                self.current_event = "liveness deadline".into();
                // A single leader must exist by the deadline. Catching up
                // may take longer when a node is far behind and the
                // settings are slow (one batch per Fetch): the deadline
                // moves on while the followers' logs and high watermarks
                // still grow, up to ten times the bound.
                let progress = self.catch_up_progress();
                let leaders = self.live_leaders();
                let moving = progress > self.liveness_progress;
                self.liveness_progress = progress;
                let cap = since + 10 * self.options.liveness_ms;
                if leaders.len() == 1 && moving && self.now < cap {
                    let at = (self.now + 5_000).min(cap);
                    self.schedule(at, Event::LivenessDeadline);
                    return Ok(());
                }
                Err(format!(
                    "liveness: no single caught-up leader {} ms after the faults stopped{}\n{}",
                    self.now - since,
                    if leaders.len() == 1 {
                        " (and no progress in the last 5 s)"
                    } else {
                        ""
                    },
                    self.dump()
                ))
            }
        }
    }

    /// Calls the core of a live node, then performs what it asks.
    fn call(&mut self, id: NodeId, f: impl FnOnce(&mut RaftCore, u64)) -> Res {
        let now = self.now;
        let Some(core) = self.node_mut(id).core.as_mut() else {
            return Ok(());
        };
        f(core, now);
        self.drain(id)
    }

    /// Performs the queued actions of `id`, in order, then any snapshot
    /// the state machine is due, and re-arms its timer.
    fn drain(&mut self, id: NodeId) -> Res {
        loop {
            let Some(core) = self.node_mut(id).core.as_mut() else {
                return Ok(());
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                if self.maybe_snapshot(id)? {
                    continue;
                }
                break;
            }
            let cut = match self.node(id).crash_armed {
                Some(torn) => Some((self.rng.below(actions.len() as u64) as usize, torn)),
                None => None,
            };
            for (i, action) in actions.into_iter().enumerate() {
                if let Some((k, torn)) = cut {
                    if i == k {
                        self.report.mid_action_crashes += 1;
                        // Installing a snapshot is two writes: the file,
                        // then the log's replacement. A crash may fall
                        // in between.
                        if let Action::InstallSnapshot { id: sid } = &action {
                            if self.rng.chance_ppm(500_000) {
                                self.install_snapshot(id, *sid, false)?;
                                self.crash(
                                    id,
                                    torn,
                                    "crash between the snapshot file and the log",
                                )?;
                                return Ok(());
                            }
                        }
                        self.crash(id, torn, &format!("crash before action {i}"))?;
                        return Ok(());
                    }
                }
                self.perform(id, action)?;
                if !self.node(id).alive() {
                    // A targeted crash inside the action.
                    return Ok(());
                }
            }
        }
        self.rearm(id);
        let n = self.node(id);
        let complete = n.shutting_down && n.core.as_ref().is_some_and(|c| c.shutdown_complete());
        if complete {
            self.stop(id, true, "shutdown complete")?;
            self.schedule_restart(id);
        }
        Ok(())
    }

    fn rearm(&mut self, id: NodeId) {
        let now = self.now;
        let spin = self.ticked == Some(id);
        let n = self.node_mut(id);
        let Some(core) = n.core.as_ref() else {
            return;
        };
        let deadline = core.next_deadline();
        let at = if deadline == u64::MAX {
            None
        } else if deadline <= now {
            // A deadline that a tick at `now` did not move: a real driver
            // would spin on it. Tick again 1 ms later.
            if spin {
                self.report.spin_ticks += 1;
                Some(now + 1)
            } else {
                Some(now)
            }
        } else {
            Some(deadline)
        };
        let n = self.node_mut(id);
        if at != n.timer_at {
            n.timer_at = at;
            let inc = n.inc;
            if let Some(t) = at {
                self.schedule(t, Event::Tick { node: id, inc });
            }
        }
    }

    // ---- actions -------------------------------------------------------

    fn perform(&mut self, id: NodeId, action: Action) -> Res {
        match action {
            Action::PersistElectionState(es) => {
                self.log(format!(
                    "n{id} persist epoch {} leader {:?} voted {:?}",
                    es.epoch, es.leader_id, es.voted_id
                ));
                let n = self.node_mut(id);
                if let Some(prev) = &n.disk.election {
                    if es.epoch < prev.epoch {
                        return Err(format!(
                            "n{id} persisted epoch {} after epoch {}: epochs never decrease",
                            es.epoch, prev.epoch
                        ));
                    }
                    if es.epoch == prev.epoch
                        && prev.voted_id.is_some()
                        && es.voted_id.is_some()
                        && es.voted_id != prev.voted_id
                    {
                        return Err(format!(
                            "n{id} voted for {:?} and then {:?} in epoch {}",
                            prev.voted_id, es.voted_id, es.epoch
                        ));
                    }
                }
                let leader = es.leader_id;
                let epoch = es.epoch;
                n.disk.election = Some(es);
                // The durable claim to lead comes before `RoleChanged`; a
                // crash between the two leaves a node that led the epoch.
                if leader == Some(id) {
                    match self.leaders.get(&epoch) {
                        Some(l) if *l != id => {
                            return Err(format!(
                                "two leaders in epoch {epoch}: n{l} and n{id} (persisted)"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.leaders.insert(epoch, id);
                            self.check_leader_completeness(id, epoch)?;
                        }
                    }
                }
                let n = self.node_mut(id);
                // Now and then the node dies right after: whatever it
                // promised must survive.
                let inc = n.inc;
                if self.phase == Phase::Faults
                    && self.rng.chance_ppm(self.sc.crash_after_persist_ppm)
                {
                    self.schedule(self.now, Event::Crash { node: id, inc });
                }
                Ok(())
            }
            Action::Append { batches } => {
                let added = self.node_mut(id).disk.log.append(&batches);
                let added = added.map_err(|e| format!("n{id}: {e}"))?;
                let first = added.first().map_or(-1, |a| a.0);
                let last = added.last().map_or(-1, |a| a.0);
                let epoch = added.first().map_or(-1, |a| a.1.epoch);
                self.log(format!("n{id} append {first}..={last} epoch {epoch}"));
                Ok(())
            }
            Action::Truncate { end_offset } => {
                self.log(format!("n{id} truncate to {end_offset}"));
                let n = self.node_mut(id);
                if end_offset < n.hw {
                    return Err(format!(
                        "n{id} truncates to {end_offset}, below its high watermark {}",
                        n.hw
                    ));
                }
                if end_offset < n.verified_end {
                    return Err(format!(
                        "n{id} truncates to {end_offset}, removing committed records up to {}",
                        n.verified_end
                    ));
                }
                n.disk
                    .log
                    .truncate(end_offset)
                    .map_err(|e| format!("n{id}: {e}"))
            }
            Action::Flush { end_offset } => {
                self.log(format!("n{id} flush to {end_offset}"));
                let n = self.node_mut(id);
                n.disk
                    .log
                    .flush(end_offset)
                    .map_err(|e| format!("n{id}: {e}"))
            }
            Action::Send { to, seq, request } => self.send_request(id, to, seq, request),
            Action::Respond { id: rid, response } => self.respond(id, rid, response),
            Action::RespondFetch {
                id: rid,
                mut response,
                read,
            } => {
                if let Some(read) = read {
                    let bytes = self
                        .node(id)
                        .disk
                        .log
                        .read(&read)
                        .map_err(|e| format!("n{id} RespondFetch: {e}"))?;
                    let part = response
                        .responses
                        .first_mut()
                        .and_then(|t| t.partitions.first_mut())
                        .ok_or_else(|| {
                            format!("n{id} RespondFetch with a read but no partition")
                        })?;
                    part.records = Some(bytes);
                }
                self.respond(id, rid, RaftResponse::Fetch(response))
            }
            Action::RespondFetchSnapshot {
                id: rid,
                mut response,
                read,
            } => {
                if let Some(read) = read {
                    let n = self.node(id);
                    let file = n
                        .disk
                        .snapshots
                        .get(&read.id.offset)
                        .filter(|f| f.id == read.id)
                        .ok_or_else(|| {
                            format!(
                                "n{id} RespondFetchSnapshot of {:?}, which it does not have",
                                read.id
                            )
                        })?;
                    let len = file.bytes.len() as u64;
                    let start = read.position.min(len) as usize;
                    let end =
                        (read.position.saturating_add(read.max_bytes as u64)).min(len) as usize;
                    let chunk = file.bytes.slice(start..end);
                    let part = response
                        .topics
                        .first_mut()
                        .and_then(|t| t.partitions.first_mut())
                        .ok_or_else(|| {
                            format!("n{id} RespondFetchSnapshot with a read but no partition")
                        })?;
                    if part.size != len as i64 {
                        return Err(format!(
                            "n{id} answers FetchSnapshot of {:?} with size {} but the file has {len} bytes",
                            read.id, part.size
                        ));
                    }
                    part.unaligned_records = chunk;
                    part.size = len as i64;
                }
                self.respond(id, rid, RaftResponse::FetchSnapshot(response))
            }
            Action::HighWatermark(hw) => self.high_watermark(id, hw),
            Action::RoleChanged(info) => self.role_changed(id, info),
            Action::WriteSnapshotChunk {
                id: sid,
                position,
                bytes,
            } => {
                self.log(format!(
                    "n{id} snapshot chunk {}@{} at {position}, {} bytes",
                    sid.offset,
                    sid.epoch,
                    bytes.len()
                ));
                let n = self.node_mut(id);
                match &mut n.disk.partial {
                    Some((pid, buf)) if *pid == sid && buf.len() as u64 == position => {
                        buf.extend_from_slice(&bytes);
                    }
                    _ if position == 0 => n.disk.partial = Some((sid, bytes.to_vec())),
                    other => {
                        let have = other.as_ref().map(|(p, b)| (*p, b.len()));
                        return Err(format!(
                            "n{id} writes a chunk of {sid:?} at {position} but holds {have:?}"
                        ));
                    }
                }
                Ok(())
            }
            Action::InstallSnapshot { id: sid } => {
                // Now and then the node dies while installing: after the
                // file, before the log is replaced.
                if self.phase == Phase::Faults && self.rng.chance_ppm(self.sc.crash_at_snapshot_ppm)
                {
                    self.install_snapshot(id, sid, false)?;
                    return self.crash(id, true, "crash between the snapshot file and the log");
                }
                self.install_snapshot(id, sid, true)
            }
            Action::DeleteBefore { offset } => {
                if self.phase == Phase::Faults && self.rng.chance_ppm(self.sc.crash_at_snapshot_ppm)
                {
                    return self.crash(id, true, "crash between a snapshot and DeleteBefore");
                }
                self.log(format!("n{id} delete before {offset}"));
                let n = self.node_mut(id);
                if n.disk.latest_snapshot().map(|s| s.id.offset) != Some(offset) {
                    return Err(format!(
                        "n{id} deletes the log before {offset} but its latest snapshot is {:?}",
                        n.disk.latest_snapshot().map(|s| s.id)
                    ));
                }
                n.disk
                    .log
                    .delete_before(offset)
                    .map_err(|e| format!("n{id}: {e}"))?;
                n.disk.snapshots.retain(|o, _| *o >= offset);
                Ok(())
            }
        }
    }

    fn high_watermark(&mut self, id: NodeId, hw: i64) -> Res {
        self.log(format!("n{id} high watermark {hw}"));
        let n = self.node_mut(id);
        if hw < n.hw {
            return Err(format!(
                "n{id} high watermark went from {} back to {hw}",
                n.hw
            ));
        }
        n.hw = hw;
        n.hw_max = n.hw_max.max(hw);
        // Apply the newly committed records to the state machine; they
        // join the committed log or must equal what it holds.
        let from = n.sm.applied_end();
        for offset in from..hw {
            let n = self.node(id);
            let entry = n.disk.log.entry(offset).cloned().ok_or_else(|| {
                format!(
                    "n{id} high watermark {hw} passes offset {offset}, which its log ({}..{}) does not hold",
                    n.disk.log.start_offset,
                    n.disk.log.end_offset()
                )
            })?;
            self.note_committed(id, offset, &entry)?;
            self.node_mut(id).sm.apply(entry);
        }
        // Acknowledge proposals of this leader's epoch that are now below
        // its high watermark.
        let role = self.node(id).role.clone();
        let inc = self.node(id).inc;
        if let Some(RoleInfo {
            kind: RoleKind::Leader,
            epoch,
            ..
        }) = role
        {
            let (done, rest): (Vec<Proposal>, Vec<Proposal>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| p.node == id && p.inc == inc && p.epoch == epoch && p.offset < hw);
            self.pending = rest;
            for p in done {
                let want = Entry {
                    epoch: p.epoch,
                    value: Some(p.value.clone()),
                };
                let got = self.committed.get(p.offset as usize);
                if got != Some(&want) {
                    return Err(format!(
                        "n{id} acknowledged {} at offset {} in epoch {} but the committed log holds {}",
                        String::from_utf8_lossy(&p.value),
                        p.offset,
                        p.epoch,
                        describe_entry(got)
                    ));
                }
                self.acked.push(p);
            }
        }
        Ok(())
    }

    /// A record `id` holds as committed at `offset`.
    fn note_committed(&mut self, id: NodeId, offset: i64, entry: &Entry) -> Res {
        let len = self.committed.len() as i64;
        if offset < len {
            let have = &self.committed[offset as usize];
            if have != entry {
                return Err(format!(
                    "committed record at offset {offset} is {} but n{id} commits {}",
                    describe_entry(Some(have)),
                    describe_entry(Some(entry))
                ));
            }
            Ok(())
        } else if offset == len {
            // Only what the client proposed is committed, and only once
            // (the client never retries).
            if let Some(v) = &entry.value {
                if !self.proposed.contains(v) {
                    return Err(format!(
                        "n{id} commits {} at offset {offset}, which nobody proposed",
                        describe_entry(Some(entry))
                    ));
                }
                if !self.committed_values.insert(v.clone()) {
                    return Err(format!(
                        "n{id} commits {} a second time, at offset {offset}",
                        describe_entry(Some(entry))
                    ));
                }
            }
            let digest = chain(self.committed_digest[len as usize], offset, entry);
            self.committed_digest.push(digest);
            self.committed.push(entry.clone());
            let epoch = self.node(id).max_epoch;
            self.committed_in.push(epoch);
            Ok(())
        } else {
            Err(format!(
                "n{id} commits offset {offset} but the committed log ends at {len}"
            ))
        }
    }

    fn role_changed(&mut self, id: NodeId, info: RoleInfo) -> Res {
        self.log(format!(
            "n{id} role {} epoch {} leader {:?}",
            info.kind.name(),
            info.epoch,
            info.leader_id
        ));
        let n = self.node_mut(id);
        if info.epoch < n.max_epoch {
            return Err(format!(
                "n{id} moved to epoch {} after epoch {}: epochs never decrease",
                info.epoch, n.max_epoch
            ));
        }
        n.max_epoch = info.epoch;
        n.role = Some(info.clone());
        let inc = n.inc;
        match info.kind {
            RoleKind::Leader | RoleKind::Resigned => {
                if info.kind == RoleKind::Leader {
                    self.report.leaders += 1;
                }
                match self.leaders.get(&info.epoch) {
                    Some(l) if *l != id => {
                        return Err(format!(
                            "two leaders in epoch {}: n{l} and n{id}",
                            info.epoch
                        ));
                    }
                    Some(_) => {}
                    None if info.kind == RoleKind::Leader => {
                        self.leaders.insert(info.epoch, id);
                        self.check_leader_completeness(id, info.epoch)?;
                    }
                    None => {
                        return Err(format!(
                            "n{id} resigned from epoch {}, which it never led",
                            info.epoch
                        ));
                    }
                }
            }
            RoleKind::Follower => {
                let leader = info.leader_id.unwrap_or(-1);
                if self.leaders.get(&info.epoch) != Some(&leader) {
                    return Err(format!(
                        "n{id} follows n{leader} in epoch {}, but that epoch's leader is {:?}",
                        info.epoch,
                        self.leaders.get(&info.epoch)
                    ));
                }
            }
            _ => {}
        }
        // Proposals of a leadership that ended are in doubt, not failed.
        self.pending.retain(|p| {
            p.node != id || (p.inc == inc && info.kind == RoleKind::Leader && info.epoch == p.epoch)
        });
        Ok(())
    }

    /// Raft's Leader Completeness: the leader of an epoch holds every
    /// record committed in an earlier epoch (checking the last one
    /// suffices, given log matching, which the per-node checks cover). A
    /// leader of an older epoch may be elected late, after a newer epoch
    /// committed records; it need not hold those.
    fn check_leader_completeness(&self, id: NodeId, epoch: i32) -> Res {
        let Some(last) = self.committed_in.iter().rposition(|e| *e < epoch) else {
            return Ok(());
        };
        let c = last as i64 + 1;
        let n = self.node(id);
        let want = &self.committed[(c - 1) as usize];
        let have = n.disk.log.entry(c - 1);
        let held = match have {
            Some(e) => e == want,
            None => n.disk.snapshot_holds(c - 1, want, |o| self.digest_at(o)),
        };
        if !held {
            return Err(format!(
                "n{id} leads epoch {epoch} without the committed record at offset {}: it holds {}, {} is committed",
                c - 1,
                describe_entry(have),
                describe_entry(Some(want))
            ));
        }
        Ok(())
    }

    /// The digest of the first `offset` committed records.
    fn digest_at(&self, offset: i64) -> Option<u64> {
        self.committed_digest
            .get(usize::try_from(offset).ok()?)
            .copied()
    }

    /// Makes the downloaded snapshot durable and (when `complete`)
    /// replaces the log by it.
    fn install_snapshot(&mut self, id: NodeId, sid: OffsetAndEpoch, complete: bool) -> Res {
        self.log(format!(
            "n{id} install snapshot {}@{}",
            sid.offset, sid.epoch
        ));
        let n = self.node_mut(id);
        let Some((pid, buf)) = n.disk.partial.take() else {
            return Err(format!("n{id} installs {sid:?} without downloading it"));
        };
        if pid != sid {
            return Err(format!("n{id} installs {sid:?} but downloaded {pid:?}"));
        }
        let data = decode_snapshot(&buf).map_err(|e| format!("n{id} installs {sid:?}: {e}"))?;
        self.check_snapshot(id, sid, &data)?;
        self.report.snapshots_installed += 1;
        let n = self.node_mut(id);
        n.disk.snapshots.insert(
            sid.offset,
            SnapshotFile {
                id: sid,
                bytes: Bytes::from(buf),
                data: data.clone(),
            },
        );
        if !complete {
            return Ok(());
        }
        n.disk.snapshots.retain(|o, _| *o >= sid.offset);
        n.disk.log.reset(sid.offset);
        n.sm = StateMachine::load(&data);
        n.verified_end = n.verified_end.min(sid.offset);
        Ok(())
    }

    /// A snapshot holds exactly the committed records below its offset:
    /// its digest is the committed prefix's and its tail records are the
    /// committed ones.
    fn check_snapshot(&self, id: NodeId, sid: OffsetAndEpoch, data: &SnapshotData) -> Res {
        if data.end != sid.offset || data.epoch != sid.epoch {
            return Err(format!(
                "n{id}: snapshot {sid:?} holds the records below {} of epoch {}",
                data.end, data.epoch
            ));
        }
        if sid.offset > self.committed.len() as i64 {
            return Err(format!(
                "n{id}: snapshot {sid:?} goes past the committed log end {}",
                self.committed.len()
            ));
        }
        if sid.offset > 0 && self.committed[(sid.offset - 1) as usize].epoch != sid.epoch {
            return Err(format!(
                "n{id}: snapshot {sid:?} but the committed record before it has epoch {}",
                self.committed[(sid.offset - 1) as usize].epoch
            ));
        }
        if self.digest_at(sid.offset) != Some(data.digest) {
            return Err(format!(
                "n{id}: snapshot {sid:?} does not hold the committed records below {}",
                sid.offset
            ));
        }
        for (i, e) in data.tail.iter().enumerate() {
            let offset = data.tail_start + i as i64;
            let want = self.committed.get(offset as usize);
            if Some(e) != want {
                return Err(format!(
                    "n{id}: snapshot {sid:?} holds {} at offset {offset} but {} is committed",
                    describe_entry(Some(e)),
                    describe_entry(want)
                ));
            }
        }
        Ok(())
    }

    /// Every `snapshot_every` applied offsets the state machine writes a
    /// snapshot and tells the core. Returns whether it called the core.
    fn maybe_snapshot(&mut self, id: NodeId) -> Res<bool> {
        let every = self.sc.snapshot_every;
        let now = self.now;
        let n = self.node(id);
        let Some(core) = n.core.as_ref() else {
            return Ok(false);
        };
        let applied = n.sm.applied_end();
        if every <= 0 || applied - n.sm.snapshot_end < every {
            return Ok(false);
        }
        let start = n.disk.log.start_offset;
        if applied <= start || applied > core.high_watermark() {
            self.node_mut(id).sm.snapshot_end = applied;
            return Ok(false);
        }
        // Mostly at the applied end (a batch boundary); sometimes at any
        // committed offset after the log start, inside a batch too, as a
        // state machine may snapshot whenever it likes.
        let lowest = (start + 1).max(n.sm.snapshot_end + 1).min(applied);
        let inside = self.sc.snapshot_inside_batches && self.options.snapshots_inside_batches;
        let offset = if inside && self.rng.chance_ppm(500_000) {
            self.rng.range(lowest as u64, applied as u64) as i64
        } else {
            applied
        };
        let n = self.node(id);
        let core = n.core.as_ref().expect("checked alive above");
        let Some(epoch) = core.epoch_of_offset(offset - 1) else {
            return Err(format!(
                "n{id}: epoch_of_offset({}) is None for a record in its log",
                offset - 1
            ));
        };
        let on_disk = n.disk.log.entry(offset - 1).map(|e| e.epoch);
        if on_disk != Some(epoch) {
            return Err(format!(
                "n{id}: epoch_of_offset({}) is {epoch} but the log holds {on_disk:?}",
                offset - 1
            ));
        }
        let sid = OffsetAndEpoch::new(offset, epoch);
        let Some(data) = n.sm.snapshot(offset) else {
            return Err(format!(
                "n{id}: the state machine cannot snapshot at {offset} (applied {}..{})",
                n.sm.base,
                n.sm.applied_end()
            ));
        };
        self.check_snapshot(id, sid, &data)?;
        let bytes = encode_snapshot(&data);
        let size = bytes.len() as u64;
        self.log(format!("n{id} snapshot {offset}@{epoch}, {size} bytes"));
        self.report.snapshots_taken += 1;
        let n = self.node_mut(id);
        n.sm.snapshot_end = applied;
        n.disk.snapshots.insert(
            offset,
            SnapshotFile {
                id: sid,
                bytes,
                data,
            },
        );
        let core = n.core.as_mut().expect("checked alive above");
        core.snapshot_created(now, sid, size);
        if core.log_state().latest_snapshot != Some(sid) {
            return Err(format!(
                "n{id}: the core ignored snapshot {sid:?} (log {:?}, hw {})",
                core.log_state(),
                core.high_watermark()
            ));
        }
        Ok(true)
    }

    // ---- network -------------------------------------------------------

    fn codec<T>(&mut self, wire: Wire<T>, repair: impl FnOnce() -> Option<Wire<T>>) -> Res<T> {
        let Some(issue) = wire.issue else {
            return wire
                .delivered
                .ok_or_else(|| "a message without an issue was not delivered".into());
        };
        *self.report.codec_issues.entry(issue.key()).or_default() += 1;
        if self.options.strict_codec {
            return Err(format!("codec: {issue}"));
        }
        if let Some(v) = wire.delivered {
            return Ok(v);
        }
        if matches!(issue, CodecIssue::Encode { .. }) {
            if let Some(repaired) = repair() {
                if let Some(i) = &repaired.issue {
                    *self.report.codec_issues.entry(i.key()).or_default() += 1;
                }
                if let Some(v) = repaired.delivered {
                    return Ok(v);
                }
            }
        }
        Err(format!("codec: {issue}"))
    }

    fn send_request(&mut self, id: NodeId, to: NodeId, seq: u64, request: RaftRequest) -> Res {
        if let Some(issue) = codec::contract(&request, to) {
            *self.report.codec_issues.entry(issue.key()).or_default() += 1;
            if self.options.strict_codec {
                return Err(format!("codec: {issue}"));
            }
        }
        let wire = codec::request(&request);
        let request = self.codec(wire, || {
            codec::repair_request(&request).map(|r| codec::request(&r))
        })?;
        self.log(format!(
            "n{id} -> n{to} seq {seq} {}",
            summarize_request(&request)
        ));
        let inc = self.node(id).inc;
        self.transmit(Message {
            from: id,
            from_inc: inc,
            to,
            body: Body::Request { seq, request },
        });
        Ok(())
    }

    fn respond(&mut self, id: NodeId, rid: RequestId, response: RaftResponse) -> Res {
        let Some(inbound) = self.node_mut(id).inbound.remove(&rid) else {
            return Err(format!(
                "n{id} answers request {rid}, which is unknown or already answered"
            ));
        };
        if let RaftResponse::Vote(v) = &response {
            let granted = v.topics.first().and_then(|t| t.partitions.first());
            if let Some(p) = granted.filter(|p| p.vote_granted) {
                let candidate = inbound.from;
                match self.votes.insert((id, p.leader_epoch), candidate) {
                    Some(other) if other != candidate => {
                        return Err(format!(
                            "n{id} granted its vote in epoch {} to n{other} and then to n{candidate}",
                            p.leader_epoch
                        ));
                    }
                    _ => {}
                }
                // Now and then the voter dies right after: its vote must
                // survive the restart.
                let inc = self.node(id).inc;
                if self.phase == Phase::Faults
                    && self.rng.chance_ppm(self.sc.crash_after_persist_ppm)
                {
                    self.schedule(self.now, Event::Crash { node: id, inc });
                }
            }
        }
        let wire = codec::response(&response);
        let response = self.codec(wire, || None)?;
        self.log(format!(
            "n{id} => n{} seq {} {}",
            inbound.from,
            inbound.seq,
            summarize_response(&response)
        ));
        self.transmit(Message {
            from: id,
            from_inc: self.node(id).inc,
            to: inbound.from,
            body: Body::Response {
                seq: inbound.seq,
                response,
                to_inc: inbound.from_inc,
            },
        });
        Ok(())
    }

    fn latency(&mut self) -> u64 {
        let mut t = self.rng.range(1, self.sc.latency_max_ms);
        if self.rng.chance_ppm(self.sc.delay_ppm) {
            t += self.rng.range(1, self.sc.delay_max_ms);
        }
        t
    }

    fn transmit(&mut self, m: Message) {
        self.report.messages += 1;
        if self.rng.chance_ppm(self.sc.drop_ppm) {
            self.report.dropped += 1;
            self.log(format!("   lost n{} -> n{}", m.from, m.to));
            return;
        }
        if self.rng.chance_ppm(self.sc.duplicate_ppm) {
            self.report.duplicated += 1;
            let copy = Message {
                from: m.from,
                from_inc: m.from_inc,
                to: m.to,
                body: match &m.body {
                    Body::Request { seq, request } => Body::Request {
                        seq: *seq,
                        request: request.clone(),
                    },
                    Body::Response {
                        seq,
                        response,
                        to_inc,
                    } => Body::Response {
                        seq: *seq,
                        response: response.clone(),
                        to_inc: *to_inc,
                    },
                },
            };
            let at = self.now + self.latency();
            self.schedule(at, Event::Deliver(Box::new(copy)));
        }
        let at = self.now + self.latency();
        self.schedule(at, Event::Deliver(Box::new(m)));
    }

    fn deliver(&mut self, m: Message) -> Res {
        let Message {
            from,
            from_inc,
            to,
            body,
        } = m;
        match body {
            Body::Request { seq, request } => {
                self.current_event = format!(
                    "deliver n{from} -> n{to} seq {seq} {}",
                    summarize_request(&request)
                );
                let up = self.node(to).alive();
                if !up || !self.reachable(from, to) {
                    self.log(format!(
                        "   n{from} -> n{to} seq {seq} undeliverable ({})",
                        if up { "partitioned" } else { "down" }
                    ));
                    if from != OPERATOR && self.rng.chance_ppm(self.sc.send_failure_ppm) {
                        let at = self.now + self.rng.range(1, self.sc.latency_max_ms);
                        self.schedule(
                            at,
                            Event::SendFailure {
                                node: from,
                                inc: from_inc,
                                to,
                                seq,
                            },
                        );
                    }
                    return Ok(());
                }
                let rid = self.next_request_id;
                self.next_request_id += 1;
                self.log(format!(
                    "n{to} <- n{from} seq {seq} req {rid} {}",
                    summarize_request(&request)
                ));
                let api = request.api_name();
                let now = self.now;
                self.node_mut(to).inbound.insert(
                    rid,
                    Inbound {
                        from,
                        from_inc,
                        seq,
                        api,
                        at: now,
                    },
                );
                self.call(to, |core, now| core.handle_request(now, rid, request))
            }
            Body::Response {
                seq,
                response,
                to_inc,
            } => {
                self.current_event = format!(
                    "deliver n{from} => n{to} seq {seq} {}",
                    summarize_response(&response)
                );
                if to == OPERATOR {
                    return Ok(());
                }
                let n = self.node(to);
                if !n.alive() || n.inc != to_inc || !self.reachable(from, to) {
                    self.log(format!("   n{from} => n{to} seq {seq} undeliverable"));
                    return Ok(());
                }
                self.log(format!(
                    "n{to} <= n{from} seq {seq} {}",
                    summarize_response(&response)
                ));
                self.call(to, |core, now| {
                    core.handle_response(now, from, seq, response)
                })
            }
        }
    }

    // ---- nodes ---------------------------------------------------------

    fn start_node(&mut self, id: NodeId) -> Res {
        let seed = self.rng.next_u64();
        let now = self.now;
        let n = self.node_mut(id);
        n.inc += 1;
        let mut config = n.config.clone();
        config.random_seed = seed;
        let recovered = n.disk.recover();
        let end = n
            .disk
            .log
            .end_offset()
            .max(n.disk.latest_snapshot().map_or(0, |s| s.id.offset));
        if end < n.verified_end {
            return Err(format!(
                "n{id}: opening the log drops committed records: it keeps up to {end}, held {} committed",
                n.verified_end
            ));
        }
        let log_state = n.disk.log_state();
        let snapshot = n.disk.latest_snapshot();
        let snapshot_size = snapshot.map_or(0, |s| s.bytes.len() as u64);
        n.sm = snapshot.map_or_else(StateMachine::default, |s| StateMachine::load(&s.data));
        n.hw = 0;
        n.role = None;
        n.timer_at = None;
        n.shutting_down = false;
        n.crash_armed = None;
        n.inbound.clear();
        let persisted = n.disk.election.clone();
        let inc = n.inc;
        n.core = Some(RaftCore::new(
            config,
            persisted.clone(),
            log_state.clone(),
            snapshot_size,
            now,
        ));
        if let Some(what) = recovered {
            self.report.log_recoveries += 1;
            self.log(format!("n{id} recovers its log: {what}"));
        }
        self.log(format!(
            "n{id} starts (incarnation {inc}): election {persisted:?}, log {log_state:?}"
        ));
        self.drain(id)
    }

    /// Loses everything not on stable storage. A graceful stop closes the
    /// log, which flushes it.
    fn stop(&mut self, id: NodeId, graceful: bool, why: &str) -> Res {
        self.log(format!("n{id} stops: {why}"));
        let n = self.node_mut(id);
        n.core = None;
        n.timer_at = None;
        n.role = None;
        n.inbound.clear();
        n.shutting_down = false;
        n.crash_armed = None;
        n.sm = StateMachine::default();
        if graceful {
            n.disk.log.flushed_end = n.disk.log.end_offset();
            n.disk.partial = None;
        }
        self.pending.retain(|p| p.node != id);
        Ok(())
    }

    fn crash(&mut self, id: NodeId, torn: bool, why: &str) -> Res {
        self.report.crashes += 1;
        self.stop(id, false, why)?;
        let mut rng = self.rng.fork();
        let torn = torn && self.sc.torn_writes;
        let n = self.node_mut(id);
        let before = n.disk.log.end_offset();
        n.disk.crash(&mut rng, torn);
        let after = n.disk.log.end_offset();
        let durable = n.durable_end();
        if durable < n.verified_end {
            return Err(format!(
                "n{id} lost committed records in a crash: it keeps {durable} but held {} committed",
                n.verified_end
            ));
        }
        self.log(format!("n{id} crashed: log end {before} -> {after}"));
        self.schedule_restart(id);
        Ok(())
    }

    fn schedule_restart(&mut self, id: NodeId) {
        if self.phase == Phase::Faults {
            // Sometimes at once: a vote or an epoch must survive a restart
            // within the same election.
            let at = if self.rng.chance_ppm(300_000) {
                self.now + self.rng.range(1, 100)
            } else {
                self.now + self.rng.range(100, 3000)
            };
            self.schedule(at, Event::Restart { node: id });
        } else {
            self.schedule(self.now, Event::Restart { node: id });
        }
    }

    // ---- the client and the faults --------------------------------------

    fn propose(&mut self) -> Res {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        self.current_event = "propose".into();
        let leaders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.core.as_ref().is_some_and(|c| c.is_leader()))
            .map(|n| n.id)
            .collect();
        if !leaders.is_empty() {
            let id = *self.rng.pick(&leaders);
            let count = self.rng.range(1, 3) as usize;
            self.propose_at(id, count)?;
        }
        let at = self.now
            + self
                .rng
                .range(self.sc.propose_min_ms, self.sc.propose_max_ms);
        self.schedule(at, Event::Propose);
        Ok(())
    }

    /// Proposes `count` new values at `id`; returns the last one.
    fn propose_at(&mut self, id: NodeId, count: usize) -> Res<Option<Bytes>> {
        let values: Vec<Bytes> = (0..count)
            .map(|_| {
                self.value_counter += 1;
                let mut v = format!("n{id}-{}", self.value_counter);
                // Padding varies batch sizes; a value larger than
                // `max_batch_bytes` is refused (TooLarge), which is fine.
                let pad = self.rng.below(self.sc.value_pad_max + 1) as usize;
                v.extend(std::iter::repeat_n('.', pad));
                Bytes::from(v)
            })
            .collect();
        self.proposed.extend(values.iter().cloned());
        self.report.proposals += 1;
        let now = self.now;
        let inc = self.node(id).inc;
        let core = self
            .node_mut(id)
            .core
            .as_mut()
            .expect("proposals go to live nodes");
        let result = core.propose(now, values.clone());
        match result {
            Ok((last, epoch)) => {
                self.log(format!(
                    "client proposes {} values at n{id}: last offset {last}, epoch {epoch}",
                    values.len()
                ));
                let first = last - values.len() as i64 + 1;
                for (i, value) in values.iter().enumerate() {
                    self.pending.push(Proposal {
                        node: id,
                        inc,
                        epoch,
                        offset: first + i as i64,
                        value: value.clone(),
                    });
                }
            }
            Err(e) => self.log(format!("client proposal at n{id} refused: {e}")),
        }
        self.drain(id)?;
        Ok(values.last().cloned())
    }

    fn chaos(&mut self) -> Res {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        self.current_event = "chaos".into();
        let sc = self.sc.clone();
        let arm_weight = if sc.mid_action_crashes {
            sc.crash_weight
        } else {
            0
        };
        let total = sc.crash_weight + arm_weight + sc.partition_weight * 2 + sc.shutdown_weight + 1;
        let mut roll = self.rng.below(total);
        let live = self.live_ids();
        if roll < sc.crash_weight {
            if !live.is_empty() {
                let id = *self.rng.pick(&live);
                let torn = self.rng.chance_ppm(500_000);
                self.current_event = format!("crash n{id}");
                self.crash(id, torn, "crash")?;
            }
            return self.next_chaos();
        }
        roll -= sc.crash_weight;
        if roll < arm_weight {
            if !live.is_empty() {
                let id = *self.rng.pick(&live);
                let torn = self.rng.chance_ppm(500_000);
                self.log(format!("n{id} will crash during its next actions"));
                self.node_mut(id).crash_armed = Some(torn);
            }
            return self.next_chaos();
        }
        roll -= arm_weight;
        if roll < sc.partition_weight * 2 {
            if roll < sc.partition_weight {
                self.partition_random();
            } else if self.partition.is_some() {
                self.log("partition healed".into());
                self.partition = None;
            }
            return self.next_chaos();
        }
        roll -= sc.partition_weight * 2;
        if roll < sc.shutdown_weight {
            // Mostly the leader: that is where a graceful shutdown matters.
            let leader = live
                .iter()
                .copied()
                .find(|id| self.node(*id).core.as_ref().is_some_and(|c| c.is_leader()));
            let target = match leader {
                Some(l) if self.rng.chance_ppm(800_000) => Some(l),
                _ if !live.is_empty() => Some(*self.rng.pick(&live)),
                _ => None,
            };
            if let Some(id) = target {
                if !self.node(id).shutting_down {
                    self.current_event = format!("shutdown n{id}");
                    self.report.shutdowns += 1;
                    self.log(format!("n{id} shuts down gracefully"));
                    let grace = self.rng.range(100, 2000);
                    let n = self.node_mut(id);
                    n.shutting_down = true;
                    let inc = n.inc;
                    self.schedule(self.now + grace, Event::ShutdownGrace { node: id, inc });
                    self.call(id, |core, now| core.shutdown(now))?;
                }
            }
        }
        self.next_chaos()
    }

    fn next_chaos(&mut self) -> Res {
        let at = self.now + self.rng.range(self.sc.chaos_min_ms, self.sc.chaos_max_ms);
        self.schedule(at, Event::Chaos);
        Ok(())
    }

    fn partition_random(&mut self) {
        let ids = self.node_ids();
        let mut groups: BTreeMap<NodeId, u8> = BTreeMap::new();
        if self.rng.chance_ppm(500_000) {
            // Isolate one node.
            let lone = *self.rng.pick(&ids);
            for id in &ids {
                groups.insert(*id, u8::from(*id == lone));
            }
        } else {
            for id in &ids {
                groups.insert(*id, self.rng.below(2) as u8);
            }
        }
        self.report.partitions += 1;
        self.partition_generation += 1;
        let generation = self.partition_generation;
        self.log(format!("partition {groups:?}"));
        self.partition = Some(groups);
        let at = self.now + self.rng.range(200, 5000);
        self.schedule(at, Event::Heal { generation });
    }

    fn faults_end(&mut self) -> Res {
        self.log("faults end: heal, restart, no more loss".into());
        self.phase = Phase::Liveness {
            since: self.now,
            final_value: None,
        };
        self.partition = None;
        self.sc.drop_ppm = 0;
        self.sc.duplicate_ppm = 0;
        self.sc.delay_ppm = 0;
        for id in self.node_ids() {
            let n = self.node_mut(id);
            n.crash_armed = None;
            if n.shutting_down {
                self.stop(id, true, "faults end")?;
            }
            if !self.node(id).alive() {
                self.start_node(id)?;
            }
        }
        self.liveness_progress = self.catch_up_progress();
        let at = self.now + self.options.liveness_ms;
        self.schedule(at, Event::LivenessDeadline);
        Ok(())
    }

    // ---- invariants ----------------------------------------------------

    fn check_all(&mut self) -> Res {
        for id in self.node_ids() {
            self.check_node(id)?;
        }
        // Every committed record is on stable storage of a majority of
        // voters (it is enough to look at the last one: the records
        // before it were checked when they were last).
        let c = self.committed.len() as i64;
        if c > 0 {
            let last = &self.committed[(c - 1) as usize];
            let holders: Vec<NodeId> = self
                .voters
                .iter()
                .copied()
                .filter(|v| {
                    self.node(*v)
                        .disk
                        .durably_holds(c - 1, last, |o| self.digest_at(o))
                })
                .collect();
            if holders.len() < self.majority() {
                return Err(format!(
                    "the committed record at offset {} ({}) is on stable storage of only {holders:?}, not a majority of {:?}",
                    c - 1,
                    describe_entry(Some(last)),
                    self.voters
                ));
            }
        }
        Ok(())
    }

    fn check_node(&mut self, id: NodeId) -> Res {
        let committed_len = self.committed.len() as i64;
        let n = self.node(id);
        if let Some(core) = &n.core {
            if core.epoch() < n.max_epoch {
                return Err(format!(
                    "n{id} is in epoch {} after epoch {}: epochs never decrease",
                    core.epoch(),
                    n.max_epoch
                ));
            }
            if core.high_watermark() != n.hw {
                return Err(format!(
                    "n{id}: the core's high watermark is {} but it last published {}",
                    core.high_watermark(),
                    n.hw
                ));
            }
            if core.is_leader() && self.leaders.get(&core.epoch()) != Some(&id) {
                return Err(format!(
                    "n{id} leads epoch {} whose leader is {:?}",
                    core.epoch(),
                    self.leaders.get(&core.epoch())
                ));
            }
            let disk = n.disk.log_state();
            if *core.log_state() != disk {
                return Err(format!(
                    "n{id}: the core believes the log is {:?} but the disk holds {disk:?}",
                    core.log_state()
                ));
            }
            if n.hw > n.durable_end() {
                return Err(format!(
                    "n{id}: high watermark {} is past its stable storage (log flushed to {}, snapshot {:?})",
                    n.hw,
                    n.disk.log.flushed_end,
                    n.disk.latest_snapshot().map(|s| s.id)
                ));
            }
        }
        // Records this node committed stay, unchanged.
        let limit = n.hw_max.min(committed_len);
        let mut verified = n.verified_end;
        while verified < limit {
            let log = &n.disk.log;
            if verified < log.start_offset {
                let covered = n.disk.latest_snapshot().map_or(0, |s| s.id.offset);
                if covered < log.start_offset {
                    return Err(format!(
                        "n{id} lost committed records: its log starts at {} and its snapshot ends at {covered}",
                        log.start_offset
                    ));
                }
                verified = log.start_offset;
                continue;
            }
            let have = log.entry(verified);
            let want = &self.committed[verified as usize];
            if have != Some(want) {
                return Err(format!(
                    "n{id} holds {} at committed offset {verified}, where {} is committed",
                    describe_entry(have),
                    describe_entry(Some(want))
                ));
            }
            verified += 1;
        }
        self.node_mut(id).verified_end = verified;
        Ok(())
    }

    /// The whole committed log, not only its last record, is on stable
    /// storage of a majority of voters: in the flushed log record by
    /// record, below the log start in the snapshot (by its digest).
    fn check_committed_prefix_on_majority(&self) -> Res {
        let c = self.committed.len() as i64;
        let mut holders = Vec::new();
        for v in &self.voters {
            let disk = &self.node(*v).disk;
            let snapshot = disk.latest_snapshot();
            let covered = snapshot
                .filter(|s| self.digest_at(s.id.offset) == Some(s.data.digest))
                .map_or(0, |s| s.id.offset);
            let from = disk.log.start_offset.max(covered.min(c));
            if covered < disk.log.start_offset.min(c) {
                continue;
            }
            let held = (from..c).all(|o| {
                o < disk.log.flushed_end && disk.log.entry(o) == Some(&self.committed[o as usize])
            });
            if held {
                holders.push(*v);
            }
        }
        if holders.len() < self.majority() {
            return Err(format!(
                "the committed log (0..{c}) is on stable storage of only {holders:?}, not a majority of {:?}",
                self.voters
            ));
        }
        Ok(())
    }

    /// Once a second: no request waits for an answer longer than a parked
    /// Fetch may, and an operator asks a node to describe the quorum.
    fn audit(&mut self) -> Res {
        self.check_committed_prefix_on_majority()?;
        let limit = self.sc.fetch_max_wait_ms + 1;
        for n in self.nodes.values() {
            if let Some((rid, r)) = n.inbound.iter().find(|(_, r)| self.now - r.at > limit) {
                return Err(format!(
                    "n{} never answered {} request {rid} from n{} received at {} ms",
                    n.id, r.api, r.from, r.at
                ));
            }
        }
        let live = self.live_ids();
        if !live.is_empty() && self.rng.chance_ppm(300_000) {
            let to = *self.rng.pick(&live);
            let request = DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0)
                    ]),
            ]);
            let request = RaftRequest::DescribeQuorum(request);
            let wire = codec::request(&request);
            let request = self.codec(wire, || None)?;
            self.transmit(Message {
                from: OPERATOR,
                from_inc: 0,
                to,
                body: Body::Request { seq: 0, request },
            });
        }
        Ok(())
    }

    fn live_leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.core.as_ref().is_some_and(|c| c.is_leader()))
            .map(|n| n.id)
            .collect()
    }

    /// The sum of every live node's log end, high watermark and bytes of
    /// snapshot downloaded: it grows while the cluster catches up.
    fn catch_up_progress(&self) -> i64 {
        self.nodes
            .values()
            .filter_map(|n| {
                let c = n.core.as_ref()?;
                let partial = n.disk.partial.as_ref().map_or(0, |p| p.1.len() as i64);
                Some(c.log_state().end_offset + c.high_watermark() + partial)
            })
            .sum()
    }

    fn check_liveness(&mut self) -> Res {
        let Phase::Liveness { since, final_value } = &self.phase else {
            return Ok(());
        };
        let since = *since;
        let final_value = final_value.clone();
        let leaders = self.live_leaders();
        let [leader] = leaders.as_slice() else {
            return Ok(());
        };
        let leader = *leader;
        let l = self.node(leader).core.as_ref().expect("leaders are alive");
        let epoch = l.epoch();
        let end = l.log_state().end_offset;
        let converged = self.nodes.values().all(|n| {
            n.core.as_ref().is_some_and(|c| {
                c.epoch() == epoch
                    && c.leader_id() == Some(leader)
                    && c.log_state().end_offset == end
                    && c.high_watermark() == end
            })
        });
        if !converged {
            return Ok(());
        }
        match final_value {
            // One more proposal must commit: the quorum works, not only
            // agrees.
            None => {
                let value = self.propose_at(leader, 1)?;
                self.phase = Phase::Liveness {
                    since,
                    final_value: value,
                };
            }
            Some(v) => {
                let acked = self.acked.iter().any(|p| p.value == v);
                let pending = self.pending.iter().any(|p| p.value == v);
                if acked {
                    self.report.converged_after_ms = self.now - since;
                    self.log(format!(
                        "converged: leader n{leader} epoch {epoch}, end {end}"
                    ));
                    self.final_checks()?;
                    self.phase = Phase::Done;
                } else if !pending {
                    let value = self.propose_at(leader, 1)?;
                    self.phase = Phase::Liveness {
                        since,
                        final_value: value,
                    };
                }
            }
        }
        Ok(())
    }

    /// At the end every node applied the whole committed log, which holds
    /// every acknowledged proposal.
    fn final_checks(&self) -> Res {
        for p in &self.acked {
            let want = Entry {
                epoch: p.epoch,
                value: Some(p.value.clone()),
            };
            if self.committed.get(p.offset as usize) != Some(&want) {
                return Err(format!(
                    "{} was acknowledged at offset {} but is not committed there",
                    String::from_utf8_lossy(&p.value),
                    p.offset
                ));
            }
        }
        for n in self.nodes.values() {
            // The digest covers every record, acknowledged ones included.
            let applied = n.sm.applied_end();
            if applied < self.committed.len() as i64
                || n.sm.digest_at(applied) != self.digest_at(applied)
            {
                return Err(format!(
                    "n{} applied {applied} records that differ from the {} committed",
                    n.id,
                    self.committed.len()
                ));
            }
        }
        Ok(())
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for n in self.nodes.values() {
            let line = match &n.core {
                Some(c) => format!(
                    "n{}: {} epoch {} leader {:?} log {}..{} (flushed {}) hw {} snapshot {:?}{}",
                    n.id,
                    c.role_info().kind.name(),
                    c.epoch(),
                    c.leader_id(),
                    n.disk.log.start_offset,
                    n.disk.log.end_offset(),
                    n.disk.log.flushed_end,
                    c.high_watermark(),
                    n.disk.latest_snapshot().map(|s| s.id),
                    if self.voters.contains(&n.id) {
                        ""
                    } else {
                        " (observer)"
                    }
                ),
                None => format!("n{}: down", n.id),
            };
            s += &line;
            s.push('\n');
        }
        s
    }
}
