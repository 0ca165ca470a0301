//! Scenario scripts for the sans-IO KRaft core.
//!
//! Each `tests/scenarios/*.scn` file drives one [`RaftCore`] through a
//! sequence of inputs and checks every action it queues, in order. The
//! files in `tests/scenarios/pending/` show known bugs of the core: the
//! runner skips them (`cargo test --test scenario -- --ignored` runs them
//! and expects each to fail). `SCENARIO=<part of a file name>` runs only
//! the matching files; `SCENARIO_TRACE=1` prints every step and action.
//! Every request and response the core produces is also encoded at the
//! driver's wire versions (`messages_encode_at_the_driver_versions`).
//!
//! # The language
//!
//! One step per line; `#` starts a comment. Every file starts with a
//! `# rule: <quote>` line quoting one of [`RULES`]. Values are written as
//! in the examples: node ids and offsets are integers, `E@O` is epoch `E`
//! and offset `O` (a log position, a snapshot id, an epoch's start), `-1`
//! is "no node", `-` is "none", lists are comma-separated, errors use
//! Kafka's names (`FENCED_LEADER_EPOCH`).
//!
//! Setup, before the first other step (which starts the node):
//!
//! ```text
//! node 1 voters=1,2,3 [cluster=<id>]       # the node under test (not in voters: observer)
//! config election_timeout_ms=1000 ...      # any RaftConfig field, by its Rust name
//! log start=0 end=12 epochs=1@0,3@10 [snapshot=3@5 snapshot-size=100]  # snapshot= moves start
//! persisted epoch=4 [voted=2] [leader=3]   # the quorum-state file found at start
//! ```
//!
//! Time: `at <ms>` sets the clock (never backwards) without ticking;
//! `tick [<ms>]` advances the clock by `ms` (default 0) and calls `tick`.
//!
//! Inputs (each calls the core once; every action queued by the previous
//! input must have been expected or skipped first):
//!
//! ```text
//! recv vote from=2 epoch=4 [last=3@11]                  # a request from a peer
//! recv begin-epoch from=2 epoch=4 [leader=2]
//! recv end-epoch from=2 epoch=4 [leader=2] [successors=3,1]
//! recv fetch from=2 epoch=4 [offset=0] [last-epoch=0] [max-wait=500]
//! recv fetch-snapshot from=2 epoch=4 snapshot=3@5 [position=0] [max-bytes=1048576]
//! recv describe-quorum
//!     (all recv: [id=<request id>] [cluster=<id>|-]; ids count up from 1)
//! reply vote from=2 granted=true [epoch=] [leader=-1] [error=] [top-error=]
//! reply begin-epoch from=2 [epoch=] [leader=] [error=] [top-error=]
//! reply end-epoch from=2 [epoch=] [leader=] [error=] [top-error=]
//! reply fetch from=1 [epoch=] [leader=1] [hw=0] [log-start=0] [records=lc:2@5,2@6+3]
//!                    [diverging=1@4] [snapshot=2@9] [error=] [top-error=]
//! reply fetch-snapshot from=1 size=100 [bytes=<chunk length>] [position=] [snapshot=]
//!     (all reply: answers the last request sent to that node, whose api
//!      must match; [seq=<n>] answers an earlier one; epoch, and for
//!      fetch-snapshot snapshot and position, default to the request's; records: `E@O+N` is a batch of N data records, `lc:E@O`
//!      a LeaderChange batch)
//! fail to=2 [seq=<n>]                # the last send to node 2 failed
//! propose 3 [size=8] [result=2@13|not-leader|too-large]
//! shutdown
//! snapshot-created 2@10 [size=100]
//! restart                            # crash: queued actions are lost; a new
//!                                    # RaftCore starts from the last persisted
//!                                    # election state and the flushed log
//! ```
//!
//! Actions, checked in the order the core queued them:
//!
//! ```text
//! expect <kind> [<main field>] [field=value ...]   # the next action; given fields must match
//! expect-none                                      # nothing queued
//! skip <kind> ...                                  # drop queued actions of these kinds
//! drain                                            # drop all queued actions
//! ignore <kind> ... / unignore <kind> ...          # drop these kinds as soon as queued
//! ```
//!
//! Kinds and their fields (the main field, which may be written without a
//! name, first):
//!
//! ```text
//! persist          epoch voted leader voters
//! append           offset end records epoch batches kinds(lc|data|ctl,...)
//! truncate         end
//! flush            end
//! send             api to seq cluster + per api:
//!                    vote: epoch candidate last   begin-epoch: epoch leader
//!                    end-epoch: epoch leader successors
//!                    fetch: epoch offset last-epoch replica max-wait
//!                    fetch-snapshot: epoch snapshot position replica
//! respond          api id top-error + error epoch leader (when a partition is present) and
//!                    vote: granted   describe-quorum: hw voters observers (id:end,...)
//!                    fetch: hw log-start diverging snapshot read(from..end|-) read-max
//!                    fetch-snapshot: snapshot position size read(position|-) read-max read-snapshot
//! hw               offset
//! role             role epoch leader
//! write-chunk      snapshot position bytes
//! install-snapshot snapshot
//! delete-before    offset
//! ```
//!
//! A number may be matched by an inclusive range `a..b` (either end open),
//! and any value by alternatives `x|y`.
//!
//! Queries of the core's state:
//!
//! ```text
//! expect-role leader [epoch=2] [leader=1]
//! expect-hw 5
//! expect-deadline 1000..1999        # next_deadline() minus now; `never` for none
//! expect-log [start=] [end=] [epochs=1@0,3@10] [snapshot=3@5|-]
//! expect-persisted [epoch=] [voted=] [leader=]   # the core's election state
//! expect-progress 2 [end=] [last-fetch=] [caught-up=]   # the leader's view (-: unknown)
//! expect-shutdown-complete true
//! ```

#[path = "scenarios/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use riffle_raft::{
    Action, ElectionState, LogState, NodeId, OffsetAndEpoch, ProposeError, RaftConfig, RaftCore,
    RaftRequest, RaftResponse,
};

use support::*;

/// The rules the scenarios check; each file quotes one in its first line.
const RULES: [&str; 11] = [
    "pull-based replication: followers and observers Fetch from the leader; the leader never pushes records",
    "a new leader appends a LeaderChangeMessage control record; the high watermark is the offset a majority of voters have replicated, never counts observers, and only advances once an entry of the current epoch is committed; it never goes backwards",
    "the leader sends BeginQuorumEpoch to each voter until that voter fetches in the new epoch",
    "on graceful shutdown the leader sends EndQuorumEpoch to all voters with the preferred successors sorted by replicated offset; the first becomes a candidate at once, the others wait an exponential backoff",
    "candidates: randomized election timeout, binary exponential backoff bounded by controller.quorum.election.backoff.max.ms after a failed election; a vote is granted only to a candidate whose log is at least as up to date (last epoch, end offset)",
    "quorum-state written and fsynced before a vote or epoch change takes effect (a PersistElectionState action precedes the response/sends); a voter adopts a higher epoch even when it rejects the vote; after restart it never votes twice in an epoch (construct a new RaftCore from the persisted state)",
    "a leader that has not received a Fetch from a majority of voters within controller.quorum.fetch.timeout.ms resigns (check-quorum)",
    "followers find divergence through DivergingEpoch, truncate, and continue; observers do the same",
    "the log fsyncs before an append counts toward the high watermark (Flush precedes the Fetch that reports the offset / precedes the HighWatermark); appends batch within controller.quorum.append.linger.ms",
    "every RPC checks the cluster id (INCONSISTENT_CLUSTER_ID); stale epochs get FENCED_LEADER_EPOCH; a non-leader answers NOT_LEADER_OR_FOLLOWER with the leader it knows",
    "snapshots: a follower behind the log start gets SnapshotId in the Fetch response, fetches it with FetchSnapshot chunk by chunk, installs it and resumes fetching",
];

// ---- arguments --------------------------------------------------------------

/// The `key=value` arguments of a step, consumed by name; leftovers are an
/// error so that a typo never passes silently.
struct Args {
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

impl Args {
    fn parse(tokens: &[&str]) -> Result<Args, String> {
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    if named.iter().any(|(n, _): &(String, String)| n == k) {
                        return Err(format!("`{k}` given twice"));
                    }
                    named.push((k.to_string(), v.to_string()));
                }
                _ => {
                    if !named.is_empty() {
                        return Err(format!("`{t}` must come before the key=value arguments"));
                    }
                    positional.push(t.to_string());
                }
            }
        }
        Ok(Args { positional, named })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.named.iter().position(|(k, _)| k == key)?;
        Some(self.named.remove(i).1)
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("`{key}={v}`: not a valid value")),
        }
    }

    fn num<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        Ok(self.take_parsed(key)?.unwrap_or(default))
    }

    fn required<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, String> {
        self.take_parsed(key)?
            .ok_or_else(|| format!("`{key}=` is required here"))
    }

    fn error(&mut self, key: &str) -> Result<i16, String> {
        self.take(key).map_or(Ok(0), |n| error_code(&n))
    }

    fn eo(&mut self, key: &str) -> Result<Option<OffsetAndEpoch>, String> {
        self.take(key).map(|v| parse_eo(&v)).transpose()
    }

    fn positional_count(&self, n: usize, usage: &str) -> Result<(), String> {
        if self.positional.len() != n {
            return Err(format!("usage: {usage}"));
        }
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        if let Some((k, _)) = self.named.first() {
            return Err(format!("unknown argument `{k}` for this step"));
        }
        Ok(())
    }
}

fn parse_ids(s: &str) -> Result<Vec<NodeId>, String> {
    if s == "-" || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| p.parse().map_err(|_| format!("bad node id `{p}` in `{s}`")))
        .collect()
}

fn parse_epochs(s: &str) -> Result<Vec<(i32, i64)>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| parse_eo(p).map(|x| (x.epoch, x.offset)))
        .collect()
}

fn render_epochs(epochs: &[(i32, i64)]) -> String {
    if epochs.is_empty() {
        return "-".into();
    }
    epochs
        .iter()
        .map(|(e, o)| eo(*e, *o))
        .collect::<Vec<_>>()
        .join(",")
}

/// `[lc:]E@O[+N]`, comma separated, as record batch bytes.
fn build_records(spec: &str, leader: NodeId, voters: &[NodeId]) -> Result<Bytes, String> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (lc, rest) = match part.strip_prefix("lc:") {
            Some(r) => (true, r),
            None => (false, part),
        };
        let (pos, n) = match rest.split_once('+') {
            Some((p, n)) => (
                p,
                n.parse::<usize>()
                    .map_err(|_| format!("bad count in `{part}`"))?,
            ),
            None => (rest, 1),
        };
        let at = parse_eo(pos)?;
        let batch = if lc {
            riffle_raft::batch::leader_change_batch(
                at.offset,
                at.epoch,
                0,
                leader,
                voters,
                &[leader],
            )
        } else {
            let values: Vec<Bytes> = (0..n)
                .map(|i| Bytes::from(format!("r{}", at.offset + i as i64)))
                .collect();
            riffle_raft::batch::data_batch(at.offset, at.epoch, 0, &values)
        };
        out.extend_from_slice(&batch);
    }
    Ok(Bytes::from(out))
}

// ---- the runner ---------------------------------------------------------------

struct Setup {
    config: RaftConfig,
    log: LogState,
    snapshot_size: u64,
    persisted: Option<ElectionState>,
}

struct Runner {
    setup: Option<Setup>,
    core: Option<RaftCore>,
    now: u64,
    queue: VecDeque<Action>,
    ignored: BTreeSet<String>,
    next_request_id: u64,
    /// The last request performed (sent) to each node, with its seq.
    sent: BTreeMap<NodeId, (u64, RaftRequest)>,
    /// Every request performed, by seq: `reply ... seq=` may answer an
    /// older one.
    sent_by_seq: BTreeMap<u64, (NodeId, RaftRequest)>,
    /// What the driver has made durable: the last persisted election
    /// state and the flushed log end.
    durable_state: Option<ElectionState>,
    durable_end: i64,
    snapshot_size: u64,
    /// Sends and responses that do not encode at the driver's wire
    /// versions (checked by `messages_encode_at_the_driver_versions`).
    wire_errors: Vec<String>,
    /// Recent inputs and actions, for failure reports.
    history: VecDeque<String>,
    trace: bool,
}

const HISTORY: usize = 16;

impl Runner {
    fn new() -> Runner {
        Runner {
            setup: None,
            core: None,
            now: 0,
            queue: VecDeque::new(),
            ignored: BTreeSet::new(),
            next_request_id: 1,
            sent: BTreeMap::new(),
            sent_by_seq: BTreeMap::new(),
            durable_state: None,
            durable_end: 0,
            snapshot_size: 0,
            wire_errors: Vec::new(),
            history: VecDeque::new(),
            trace: std::env::var_os("SCENARIO_TRACE").is_some(),
        }
    }

    fn note(&mut self, s: String) {
        if self.trace {
            eprintln!("    {s}");
        }
        self.history.push_back(s);
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    fn setup_mut(&mut self) -> Result<&mut Setup, String> {
        if self.core.is_some() {
            return Err("setup steps must come before the node starts".into());
        }
        self.setup
            .as_mut()
            .ok_or_else(|| "`node <id> voters=...` must come first".to_string())
    }

    fn config(&self) -> &RaftConfig {
        match (&self.core, &self.setup) {
            (Some(c), _) => c.config(),
            (None, Some(s)) => &s.config,
            (None, None) => unreachable!("checked by core_mut"),
        }
    }

    /// The core, started on first use.
    fn core_mut(&mut self) -> Result<&mut RaftCore, String> {
        if self.core.is_none() {
            let s = self
                .setup
                .as_ref()
                .ok_or_else(|| "`node <id> voters=...` must come first".to_string())?;
            self.durable_state = s.persisted.clone();
            self.durable_end = s.log.end_offset;
            self.snapshot_size = s.snapshot_size;
            let core = RaftCore::new(
                s.config.clone(),
                s.persisted.clone(),
                s.log.clone(),
                s.snapshot_size,
                self.now,
            );
            self.core = Some(core);
            self.note(format!("start at {}", self.now));
            self.collect();
        }
        Ok(self.core.as_mut().expect("started above"))
    }

    /// Moves the core's new actions to the queue.
    fn collect(&mut self) {
        let actions = self
            .core
            .as_mut()
            .map(|c| c.take_actions())
            .unwrap_or_default();
        self.queue.extend(actions);
        self.perform_ignored();
    }

    /// Performs the queued actions of ignored kinds at once: nothing
    /// checks their order, and later steps may depend on them (a `reply`
    /// needs the send performed).
    fn perform_ignored(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        for a in queue {
            if self.ignored.contains(render_action(&a).kind) {
                self.perform(&a, "ignored");
            } else {
                self.queue.push_back(a);
            }
        }
    }

    /// What a driver does with an action, as far as later steps depend on it.
    fn perform(&mut self, action: &Action, how: &str) {
        if let Some(e) = wire_error(action) {
            self.wire_errors.push(e);
        }
        match action {
            Action::Send { to, seq, request } => {
                self.sent.insert(*to, (*seq, request.clone()));
                self.sent_by_seq.insert(*seq, (*to, request.clone()));
            }
            Action::PersistElectionState(e) => self.durable_state = Some(e.clone()),
            Action::Flush { end_offset } => self.durable_end = *end_offset,
            Action::Truncate { end_offset } => self.durable_end = self.durable_end.min(*end_offset),
            Action::WriteSnapshotChunk {
                position, bytes, ..
            } => self.snapshot_size = position + bytes.len() as u64,
            Action::InstallSnapshot { id } => self.durable_end = id.offset,
            _ => {}
        }
        self.note(format!("  {how} {}", render_action(action)));
    }

    /// Pops the next action that is not ignored, performing ignored ones.
    fn next_action(&mut self) -> Option<Action> {
        while let Some(a) = self.queue.pop_front() {
            let r = render_action(&a);
            if self.ignored.contains(r.kind) {
                self.perform(&a, "ignored");
                continue;
            }
            return Some(a);
        }
        None
    }

    /// Before an input: every action of the last one must be accounted for.
    fn check_queue_empty(&mut self) -> Result<(), String> {
        match self.next_action() {
            None => Ok(()),
            Some(a) => {
                let n = self.queue.len() + 1;
                let text = render_action(&a);
                self.queue.push_front(a);
                Err(format!(
                    "{n} action(s) still queued, first: `{text}`; expect, skip or drain them first"
                ))
            }
        }
    }

    fn step(&mut self, line: &str) -> Result<(), String> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let (cmd, rest) = tokens.split_first().expect("blank lines are skipped");
        let mut args = Args::parse(rest)?;
        match *cmd {
            "node" => self.cmd_node(args),
            "config" => self.cmd_config(args),
            "log" => self.cmd_log(args),
            "persisted" => self.cmd_persisted(args),
            "at" => {
                args.positional_count(1, "at <ms>")?;
                let t: u64 = args.positional[0]
                    .parse()
                    .map_err(|_| "at <ms>: not a number".to_string())?;
                if t < self.now {
                    return Err(format!("time goes forward only (now {})", self.now));
                }
                self.now = t;
                args.finish()
            }
            "tick" => {
                let ms: u64 = match args.positional.first() {
                    None => 0,
                    Some(v) => v
                        .parse()
                        .map_err(|_| "tick [<ms>]: not a number".to_string())?,
                };
                args.finish()?;
                self.core_mut()?;
                self.check_queue_empty()?;
                self.now += ms;
                self.input(|core, now| core.tick(now))
            }
            "recv" => self.cmd_recv(args),
            "reply" => self.cmd_reply(args),
            "fail" => {
                let to: NodeId = args.required("to")?;
                let seq = match args.take_parsed("seq")? {
                    Some(s) => s,
                    None => self.last_sent(to)?.0,
                };
                args.finish()?;
                self.input(|core, now| core.handle_send_failure(now, to, seq))
            }
            "propose" => self.cmd_propose(args),
            "shutdown" => {
                args.finish()?;
                self.input(|core, now| core.shutdown(now))
            }
            "snapshot-created" => {
                args.positional_count(1, "snapshot-created <epoch>@<offset> [size=<n>]")?;
                let id = parse_eo(&args.positional[0])?;
                let size: u64 = args.num("size", 100)?;
                args.finish()?;
                self.snapshot_size = size;
                self.input(|core, now| core.snapshot_created(now, id, size))
            }
            "restart" => {
                args.finish()?;
                self.restart()
            }
            "expect" => self.cmd_expect(args),
            "expect-none" => {
                args.finish()?;
                self.core_mut()?;
                self.check_queue_empty()
                    .map_err(|e| format!("expected no action: {e}"))
            }
            "skip" => {
                if args.positional.is_empty() {
                    return Err("usage: skip <kind> ...".into());
                }
                for k in &args.positional {
                    check_kind(k)?;
                }
                self.core_mut()?;
                let queue = std::mem::take(&mut self.queue);
                for a in queue {
                    if args.positional.iter().any(|k| k == render_action(&a).kind) {
                        self.perform(&a, "skipped");
                    } else {
                        self.queue.push_back(a);
                    }
                }
                args.finish()
            }
            "drain" => {
                args.finish()?;
                self.core_mut()?;
                while let Some(a) = self.queue.pop_front() {
                    self.perform(&a, "drained");
                }
                Ok(())
            }
            "ignore" | "unignore" => {
                if args.positional.is_empty() {
                    return Err(format!("usage: {cmd} <kind> ..."));
                }
                for k in &args.positional {
                    check_kind(k)?;
                    if *cmd == "ignore" {
                        self.ignored.insert(k.clone());
                    } else {
                        self.ignored.remove(k);
                    }
                }
                self.perform_ignored();
                args.finish()
            }
            "expect-role" => {
                args.positional_count(1, "expect-role <role> [epoch=] [leader=]")?;
                for alternative in args.positional[0].split('|') {
                    role_kind(alternative)?;
                }
                let info = self.core_mut()?.role_info();
                let actual = vec![
                    ("role", role_name(info.kind).to_string()),
                    ("epoch", info.epoch.to_string()),
                    ("leader", info.leader_id.unwrap_or(-1).to_string()),
                ];
                let role = args.positional[0].clone();
                check_fields("role", &actual, Some(("role", role)), args)
            }
            "expect-hw" => {
                args.positional_count(1, "expect-hw <offset>")?;
                let hw = self.core_mut()?.high_watermark().to_string();
                let want = args.positional[0].clone();
                check_fields(
                    "high watermark",
                    &[("offset", hw)],
                    Some(("offset", want)),
                    args,
                )
            }
            "expect-deadline" => {
                args.positional_count(1, "expect-deadline <ms from now | a..b | never>")?;
                let now = self.now;
                let d = self.core_mut()?.next_deadline();
                let actual = if d == u64::MAX {
                    "never".to_string()
                } else {
                    (i128::from(d) - i128::from(now)).to_string()
                };
                let want = args.positional[0].clone();
                check_fields(
                    "next deadline (ms from now)",
                    &[("in", actual)],
                    Some(("in", want)),
                    args,
                )
            }
            "expect-log" => {
                let log = self.core_mut()?.log_state().clone();
                let actual = vec![
                    ("start", log.start_offset.to_string()),
                    ("end", log.end_offset.to_string()),
                    ("epochs", render_epochs(&log.epochs)),
                    (
                        "snapshot",
                        log.latest_snapshot
                            .map_or("-".to_string(), |s| eo(s.epoch, s.offset)),
                    ),
                ];
                check_fields("log", &actual, None, args)
            }
            "expect-persisted" => {
                let e = self.core_mut()?.election_state().clone();
                let actual = vec![
                    ("epoch", e.epoch.to_string()),
                    ("voted", e.voted_id.unwrap_or(-1).to_string()),
                    ("leader", e.leader_id.unwrap_or(-1).to_string()),
                ];
                check_fields("election state", &actual, None, args)
            }
            "expect-progress" => {
                args.positional_count(
                    1,
                    "expect-progress <node> [end=] [last-fetch=] [caught-up=]",
                )?;
                let id: NodeId = args.positional[0]
                    .parse()
                    .map_err(|_| "expect-progress <node>: not a node id".to_string())?;
                let p = self
                    .core_mut()?
                    .replica_progress(id)
                    .ok_or_else(|| format!("the core reports no progress for node {id} (not leader, or never heard of it)"))?;
                let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                let actual = vec![
                    ("end", opt(p.end_offset)),
                    ("last-fetch", opt(p.last_fetch_ms.map(|v| v as i64))),
                    ("caught-up", opt(p.last_caught_up_ms.map(|v| v as i64))),
                ];
                args.positional.clear();
                check_fields("replica progress", &actual, None, args)
            }
            "expect-shutdown-complete" => {
                args.positional_count(1, "expect-shutdown-complete <true|false>")?;
                let done = self.core_mut()?.shutdown_complete().to_string();
                let want = args.positional[0].clone();
                check_fields(
                    "shutdown_complete()",
                    &[("value", done)],
                    Some(("value", want)),
                    args,
                )
            }
            other => Err(format!("unknown step `{other}`")),
        }
    }

    /// Runs one input against the core and queues its actions.
    fn input(&mut self, f: impl FnOnce(&mut RaftCore, u64)) -> Result<(), String> {
        self.core_mut()?;
        self.check_queue_empty()?;
        let now = self.now;
        f(self.core.as_mut().expect("started"), now);
        self.collect();
        Ok(())
    }

    fn last_sent(&self, to: NodeId) -> Result<(u64, RaftRequest), String> {
        self.sent.get(&to).cloned().ok_or_else(|| {
            format!("no request was sent to node {to} (expect or skip the send first)")
        })
    }

    fn cmd_node(&mut self, mut args: Args) -> Result<(), String> {
        if self.setup.is_some() {
            return Err("only one `node` per scenario".into());
        }
        args.positional_count(1, "node <id> voters=<ids> [cluster=<id>]")?;
        let id: NodeId = args.positional[0]
            .parse()
            .map_err(|_| "node <id>: not a node id".to_string())?;
        let voters: BTreeSet<NodeId> =
            parse_ids(&args.take("voters").ok_or("`voters=` is required")?)?
                .into_iter()
                .collect();
        let cluster = args.take("cluster").unwrap_or_else(|| CLUSTER.to_string());
        args.finish()?;
        self.setup = Some(Setup {
            config: RaftConfig::new(id, cluster, voters),
            log: LogState::default(),
            snapshot_size: 0,
            persisted: None,
        });
        Ok(())
    }

    fn cmd_config(&mut self, args: Args) -> Result<(), String> {
        if !args.positional.is_empty() {
            return Err("usage: config <field>=<value> ...".into());
        }
        let s = self.setup_mut()?;
        for (k, v) in &args.named {
            let bad = || format!("`{k}={v}`: not a number");
            let n: u64 = v.parse().map_err(|_| bad())?;
            let c = &mut s.config;
            match k.as_str() {
                "election_timeout_ms" => c.election_timeout_ms = n,
                "fetch_timeout_ms" => c.fetch_timeout_ms = n,
                "election_backoff_max_ms" => c.election_backoff_max_ms = n,
                "append_linger_ms" => c.append_linger_ms = n,
                "request_timeout_ms" => c.request_timeout_ms = n,
                "retry_backoff_ms" => c.retry_backoff_ms = n,
                "fetch_max_wait_ms" => c.fetch_max_wait_ms = n,
                "fetch_max_bytes" => c.fetch_max_bytes = n as usize,
                "fetch_snapshot_max_bytes" => c.fetch_snapshot_max_bytes = n as usize,
                "max_batch_bytes" => c.max_batch_bytes = n as usize,
                "random_seed" => c.random_seed = n,
                _ => return Err(format!("unknown config field `{k}`")),
            }
        }
        Ok(())
    }

    fn cmd_log(&mut self, mut args: Args) -> Result<(), String> {
        let s = self.setup_mut()?;
        if let Some(e) = args.take("epochs") {
            s.log.epochs = parse_epochs(&e)?;
        }
        if let Some(snap) = args.eo("snapshot")? {
            s.log.latest_snapshot = Some(snap);
            s.log.start_offset = snap.offset;
            s.log.end_offset = s.log.end_offset.max(snap.offset);
        }
        s.log.start_offset = args.num("start", s.log.start_offset)?;
        s.log.end_offset = args.num("end", s.log.end_offset.max(s.log.start_offset))?;
        s.snapshot_size = args.num("snapshot-size", s.snapshot_size)?;
        if !args.positional.is_empty() {
            return Err(
                "usage: log [start=] [end=] [epochs=E@O,...] [snapshot=E@O] [snapshot-size=]"
                    .into(),
            );
        }
        args.finish()
    }

    fn cmd_persisted(&mut self, mut args: Args) -> Result<(), String> {
        let s = self.setup_mut()?;
        let epoch = args.required("epoch")?;
        let voted: NodeId = args.num("voted", -1)?;
        let leader: NodeId = args.num("leader", -1)?;
        let voters = s.config.voters.clone();
        args.finish()?;
        s.persisted = Some(ElectionState {
            epoch,
            leader_id: (leader >= 0).then_some(leader),
            voted_id: (voted >= 0).then_some(voted),
            voters,
        });
        Ok(())
    }

    fn cmd_recv(&mut self, mut args: Args) -> Result<(), String> {
        args.positional_count(1, "recv <api> ...")?;
        let api = args.positional[0].clone();
        self.core_mut()?;
        let id = args.num("id", self.next_request_id)?;
        self.next_request_id = self.next_request_id.max(id) + 1;
        let cluster = match args.take("cluster") {
            Some(c) if c == "-" => None,
            Some(c) => Some(c),
            None => Some(self.config().cluster_id.clone()),
        };
        let request = match api.as_str() {
            "vote" => {
                let from = args.required("from")?;
                let epoch = args.required("epoch")?;
                let last = args.eo("last")?.unwrap_or(OffsetAndEpoch::new(0, 0));
                RaftRequest::Vote(vote_request(cluster, from, epoch, last))
            }
            "begin-epoch" => {
                let from: NodeId = args.required("from")?;
                let epoch = args.required("epoch")?;
                let leader = args.num("leader", from)?;
                RaftRequest::BeginQuorumEpoch(begin_epoch_request(cluster, leader, epoch))
            }
            "end-epoch" => {
                let from: NodeId = args.required("from")?;
                let epoch = args.required("epoch")?;
                let leader = args.num("leader", from)?;
                let successors = parse_ids(&args.take("successors").unwrap_or_default())?;
                RaftRequest::EndQuorumEpoch(end_epoch_request(cluster, leader, epoch, successors))
            }
            "fetch" => {
                let from = args.required("from")?;
                let epoch = args.required("epoch")?;
                let offset = args.num("offset", 0)?;
                let last_epoch = args.num("last-epoch", 0)?;
                let max_wait = args.num("max-wait", 500)?;
                RaftRequest::Fetch(fetch_request(cluster, from, epoch, offset, last_epoch, max_wait))
            }
            "fetch-snapshot" => {
                let from = args.required("from")?;
                let epoch = args.required("epoch")?;
                let snapshot = args.eo("snapshot")?.ok_or("`snapshot=E@O` is required")?;
                let position = args.num("position", 0)?;
                let max_bytes = args.num("max-bytes", 1 << 20)?;
                RaftRequest::FetchSnapshot(fetch_snapshot_request(
                    cluster, from, epoch, snapshot, position, max_bytes,
                ))
            }
            "describe-quorum" => RaftRequest::DescribeQuorum(describe_quorum_request()),
            other => return Err(format!("unknown api `{other}` (vote, begin-epoch, end-epoch, fetch, fetch-snapshot, describe-quorum)")),
        };
        args.finish()?;
        self.input(|core, now| core.handle_request(now, id, request))
    }

    fn cmd_reply(&mut self, mut args: Args) -> Result<(), String> {
        args.positional_count(1, "reply <api> from=<node> ...")?;
        let api = args.positional[0].clone();
        let from: NodeId = args.required("from")?;
        self.core_mut()?;
        let (seq, request) = match args.take_parsed::<u64>("seq")? {
            None => self.last_sent(from)?,
            Some(seq) => match self.sent_by_seq.get(&seq) {
                Some((to, request)) if *to == from => (seq, request.clone()),
                Some((to, _)) => return Err(format!("request seq={seq} went to node {to}")),
                None => return Err(format!("no request with seq={seq} was sent")),
            },
        };
        if request_api(&request) != api {
            return Err(format!(
                "the request answered (seq={seq} to node {from}) is {}, not {api}",
                request_api(&request)
            ));
        }
        let top = args.error("top-error")?;
        let error = args.error("error")?;
        let response = match &request {
            RaftRequest::Vote(v) => {
                let p = &v.topics[0].partitions[0];
                let granted: bool = args.required("granted")?;
                let epoch = args.num("epoch", p.replica_epoch)?;
                let leader = args.num("leader", -1)?;
                RaftResponse::Vote(vote_response(top, error, epoch, leader, granted))
            }
            RaftRequest::BeginQuorumEpoch(b) => {
                let p = &b.topics[0].partitions[0];
                let epoch = args.num("epoch", p.leader_epoch)?;
                let leader = args.num("leader", i32::from(p.leader_id))?;
                RaftResponse::BeginQuorumEpoch(begin_epoch_response(top, error, epoch, leader))
            }
            RaftRequest::EndQuorumEpoch(e) => {
                let p = &e.topics[0].partitions[0];
                let epoch = args.num("epoch", p.leader_epoch)?;
                let leader = args.num("leader", i32::from(p.leader_id))?;
                RaftResponse::EndQuorumEpoch(end_epoch_response(top, error, epoch, leader))
            }
            RaftRequest::Fetch(f) => {
                let p = &f.topics[0].partitions[0];
                let epoch = args.num("epoch", p.current_leader_epoch)?;
                let leader = args.num("leader", from)?;
                let voters: Vec<NodeId> = self.config().voters.iter().copied().collect();
                let records = args
                    .take("records")
                    .map(|s| build_records(&s, leader, &voters))
                    .transpose()?;
                let answer = FetchAnswer {
                    top_error: top,
                    error,
                    epoch,
                    leader,
                    high_watermark: args.num("hw", 0)?,
                    log_start: args.num("log-start", 0)?,
                    diverging: args.eo("diverging")?,
                    snapshot: args.eo("snapshot")?,
                    records,
                };
                RaftResponse::Fetch(fetch_response(&answer))
            }
            RaftRequest::FetchSnapshot(f) => {
                let p = &f.topics[0].partitions[0];
                let epoch = args.num("epoch", p.current_leader_epoch)?;
                let leader = args.num("leader", from)?;
                let id = args.eo("snapshot")?.unwrap_or(OffsetAndEpoch::new(
                    p.snapshot_id.end_offset,
                    p.snapshot_id.epoch,
                ));
                let position: i64 = args.num("position", p.position)?;
                let size: i64 = args.required("size")?;
                let len: i64 = args.num("bytes", (size - position).max(0))?;
                let chunk = Bytes::from(vec![b's'; len.max(0) as usize]);
                RaftResponse::FetchSnapshot(fetch_snapshot_response(
                    top, error, epoch, leader, id, position, size, chunk,
                ))
            }
            RaftRequest::DescribeQuorum(_) => {
                return Err("the core never sends DescribeQuorum".into());
            }
        };
        args.finish()?;
        self.input(|core, now| core.handle_response(now, from, seq, response))
    }

    fn cmd_propose(&mut self, mut args: Args) -> Result<(), String> {
        args.positional_count(
            1,
            "propose <count> [size=<bytes>] [result=E@O|not-leader|too-large]",
        )?;
        let n: usize = args.positional[0]
            .parse()
            .map_err(|_| "propose <count>: not a number".to_string())?;
        let size: usize = args.num("size", 8)?;
        let want = args.take("result");
        args.finish()?;
        let values: Vec<Bytes> = (0..n).map(|_| Bytes::from(vec![b'v'; size])).collect();
        let mut result = None;
        self.input(|core, now| result = Some(core.propose(now, values)))?;
        let got = match result.expect("input ran") {
            Ok((offset, epoch)) => eo(epoch, offset),
            Err(ProposeError::NotLeader { .. }) => "not-leader".into(),
            Err(ProposeError::TooLarge { .. }) => "too-large".into(),
        };
        self.note(format!("propose {n} -> {got}"));
        match want {
            Some(w) if !value_matches(&w, &got) => {
                Err(format!("propose: expected result={w}, got result={got}"))
            }
            _ => Ok(()),
        }
    }

    fn cmd_expect(&mut self, args: Args) -> Result<(), String> {
        let Some(kind) = args.positional.first().cloned() else {
            return Err("usage: expect <kind> [<main field>] [field=value ...]".into());
        };
        check_kind(&kind)?;
        let mut args = args;
        args.positional.remove(0);
        let main = match (positional_field(&kind), args.positional.len()) {
            (_, 0) => None,
            (Some(f), 1) => Some((f, args.positional.remove(0))),
            _ => return Err(format!("`expect {kind}` takes key=value fields only")),
        };
        self.core_mut()?;
        let Some(action) = self.next_action() else {
            return Err("no action is queued".to_string());
        };
        let r = render_action(&action);
        let result = if r.kind != kind {
            Err(format!("expected a `{kind}` action, got `{r}`"))
        } else {
            check_fields(r.kind, &r.fields, main, args).map_err(|e| format!("{e}\n  actual: {r}"))
        };
        match result {
            Ok(()) => {
                self.perform(&action, "expected");
                Ok(())
            }
            Err(e) => {
                self.queue.push_front(action);
                Err(e)
            }
        }
    }

    fn restart(&mut self) -> Result<(), String> {
        self.core_mut()?;
        let core = self.core.take().expect("started");
        let mut log = core.log_state().clone();
        if log.end_offset > self.durable_end {
            log.end_offset = self.durable_end.max(log.start_offset);
            log.epochs.retain(|e| e.1 < log.end_offset);
        }
        let config = core.config().clone();
        let lost = self.queue.len();
        self.queue.clear();
        self.sent.clear();
        self.sent_by_seq.clear();
        self.note(format!(
            "restart: {lost} queued action(s) lost; log end {}, election state {:?}",
            log.end_offset, self.durable_state
        ));
        self.core = Some(RaftCore::new(
            config,
            self.durable_state.clone(),
            log,
            self.snapshot_size,
            self.now,
        ));
        self.collect();
        Ok(())
    }
}

/// Why `action`'s request or response would not encode at the version the
/// driver speaks to other controllers (`riffle_raft::driver::*_VERSION`).
fn wire_error(action: &Action) -> Option<String> {
    use kafka_protocol::protocol::Encodable;
    use riffle_raft::driver::{
        encode_request, BEGIN_QUORUM_EPOCH_VERSION, END_QUORUM_EPOCH_VERSION,
        FETCH_SNAPSHOT_VERSION, FETCH_VERSION, VOTE_VERSION,
    };
    fn encode<M: Encodable>(m: &M, version: i16) -> Option<String> {
        m.encode(&mut bytes::BytesMut::new(), version)
            .err()
            .map(|e| format!("v{version}: {e}"))
    }
    let (what, error) = match action {
        Action::Send { request, .. } => (
            format!("{} request", request_api(request)),
            encode_request(request, 0, "scenario")
                .err()
                .map(|e| format!("{e:#}")),
        ),
        Action::Respond { response, .. } => {
            let error = match response {
                RaftResponse::Vote(r) => encode(r, VOTE_VERSION),
                RaftResponse::BeginQuorumEpoch(r) => encode(r, BEGIN_QUORUM_EPOCH_VERSION),
                RaftResponse::EndQuorumEpoch(r) => encode(r, END_QUORUM_EPOCH_VERSION),
                RaftResponse::DescribeQuorum(r) => encode(r, 0),
                RaftResponse::Fetch(r) => encode(r, FETCH_VERSION),
                RaftResponse::FetchSnapshot(r) => encode(r, FETCH_SNAPSHOT_VERSION),
            };
            ("response".to_string(), error)
        }
        Action::RespondFetch { response, .. } => (
            "fetch response".to_string(),
            encode(response, FETCH_VERSION),
        ),
        Action::RespondFetchSnapshot { response, .. } => (
            "fetch-snapshot response".to_string(),
            encode(response, FETCH_SNAPSHOT_VERSION),
        ),
        _ => return None,
    };
    error.map(|e| format!("{what} does not encode ({e}): {}", render_action(action)))
}

fn check_kind(kind: &str) -> Result<(), String> {
    if ACTION_KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(format!(
            "unknown action kind `{kind}` (one of {})",
            ACTION_KINDS.join(", ")
        ))
    }
}

/// Checks the expected fields (the main one and the named ones) against
/// `actual`; every mismatch is reported.
fn check_fields(
    what: &str,
    actual: &[(&str, String)],
    main: Option<(&str, String)>,
    args: Args,
) -> Result<(), String> {
    let mut wanted: Vec<(String, String)> =
        main.map(|(k, v)| (k.to_string(), v)).into_iter().collect();
    wanted.extend(args.named);
    let mut errors = Vec::new();
    for (k, want) in &wanted {
        match actual.iter().find(|(n, _)| n == k) {
            None => {
                let known: Vec<&str> = actual.iter().map(|(n, _)| *n).collect();
                errors.push(format!(
                    "{what} has no field `{k}` (it has: {})",
                    known.join(", ")
                ));
            }
            Some((_, got)) if !value_matches(want, got) => {
                errors.push(format!("{k}: expected {want}, got {got}"));
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

// ---- files ------------------------------------------------------------------

/// Lines of a file with their numbers, without comments and blanks.
fn steps(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split('#').next().unwrap_or("").trim();
        (!l.is_empty()).then_some((i + 1, l))
    })
}

/// Whether `quote` is taken from `rule`: its pieces between `...` appear
/// in the rule in order.
fn quotes(rule: &str, quote: &str) -> bool {
    let mut rest = rule;
    for piece in quote.split("...").map(str::trim).filter(|p| !p.is_empty()) {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The rule a file quotes in its first line.
fn rule_of(path: &Path, text: &str) -> Result<&'static str, String> {
    let first = text.lines().next().unwrap_or("");
    let quote = first
        .strip_prefix("# rule:")
        .map(str::trim)
        .ok_or_else(|| {
            format!(
                "{}:1: the first line must be `# rule: <quote>`",
                path.display()
            )
        })?;
    if quote.len() < 20 {
        return Err(format!("{}:1: quote more of the rule", path.display()));
    }
    RULES
        .iter()
        .find(|r| quotes(r, quote))
        .copied()
        .ok_or_else(|| {
            format!(
                "{}:1: `{quote}` is not quoted from any rule in scenario.rs RULES",
                path.display()
            )
        })
}

/// Runs one scenario file; on success returns the wire errors seen.
fn run_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rule_of(path, &text)?;
    let name = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string();
    let mut runner = Runner::new();
    if runner.trace {
        eprintln!("== {name}");
    }
    for (n, line) in steps(&text) {
        runner.note(format!("{n}: {line}"));
        if let Err(e) = runner.step(line) {
            let mut report = format!("{name}:{n}: `{line}`\n  {e}\n");
            if !runner.queue.is_empty() {
                let _ = writeln!(report, "  still queued:");
                for a in runner.queue.iter().take(8) {
                    let _ = writeln!(report, "    {}", render_action(a));
                }
            }
            let _ = writeln!(report, "  recent steps and actions (oldest first):");
            for h in &runner.history {
                let _ = writeln!(report, "    {h}");
            }
            return Err(report);
        }
    }
    if runner.core.is_none() {
        return Err(format!("{name}: the scenario never starts the node"));
    }
    if let Some(a) = runner.next_action() {
        return Err(format!(
            "{name}: at the end, {} action(s) were never checked, first: `{}` (end with expect, skip or drain)",
            runner.queue.len() + 1,
            render_action(&a)
        ));
    }
    Ok(runner
        .wire_errors
        .into_iter()
        .map(|e| format!("{name}: {e}"))
        .collect())
}

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let filter = std::env::var("SCENARIO").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .filter(|p| {
            filter
                .as_ref()
                .is_none_or(|f| p.to_string_lossy().contains(f.as_str()))
        })
        .collect();
    files.sort();
    files
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

#[test]
fn scenarios() {
    let files = scenario_files(&scenarios_dir());
    assert!(
        !files.is_empty() || std::env::var_os("SCENARIO").is_some(),
        "no scenario files found"
    );
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Every request and response the core produced in the scenarios encodes
/// at the wire version the driver uses. Ignored while the core's Fetch
/// request does not encode at v16 (FINDINGS.md, 7).
#[test]
fn messages_encode_at_the_driver_versions() {
    let mut errors = BTreeSet::new();
    for f in scenario_files(&scenarios_dir()) {
        if let Ok(wire) = run_file(&f) {
            errors.extend(wire);
        }
    }
    let errors: Vec<String> = errors.into_iter().collect();
    assert!(
        errors.is_empty(),
        "{} message(s) do not encode:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// Every rule has at least one scenario; prints the count per rule.
#[test]
fn every_rule_has_scenarios() {
    // (scenarios, pending scenarios) per rule.
    let mut counts: BTreeMap<&str, (usize, usize)> = RULES.iter().map(|r| (*r, (0, 0))).collect();
    let dir = scenarios_dir();
    let pending = dir.join("pending");
    let mut files: Vec<(PathBuf, bool)> = scenario_files(&dir)
        .into_iter()
        .map(|f| (f, false))
        .collect();
    if pending.is_dir() {
        files.extend(scenario_files(&pending).into_iter().map(|f| (f, true)));
    }
    for (f, is_pending) in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let rule = rule_of(f, &text).unwrap_or_else(|e| panic!("{e}"));
        let c = counts.get_mut(rule).expect("rule from RULES");
        if *is_pending {
            c.1 += 1;
        } else {
            c.0 += 1;
        }
    }
    println!("scenarios + pending, per rule:");
    for (i, r) in RULES.iter().enumerate() {
        let short: String = r.chars().take(70).collect();
        let (n, p) = counts[r];
        println!("{n:>3} + {p}  rule {:>2}: {short}...", i + 1);
    }
    if std::env::var_os("SCENARIO").is_none() {
        let missing: Vec<&&str> = RULES.iter().filter(|r| counts[*r].0 == 0).collect();
        assert!(
            missing.is_empty(),
            "rules without a passing scenario: {missing:#?}"
        );
    }
}

/// The scenarios in `pending/` show bugs of the core; each must still
/// fail. When one passes, the bug is fixed: move it up to `scenarios/`.
#[test]
#[ignore = "known core bugs; see tests/scenarios/FINDINGS.md"]
fn pending_scenarios_still_fail() {
    let dir = scenarios_dir().join("pending");
    if !dir.is_dir() {
        return;
    }
    let mut passing = Vec::new();
    for f in scenario_files(&dir) {
        match run_file(&f) {
            Ok(_) => passing.push(f.display().to_string()),
            Err(e) => println!("still failing, as expected:\n{e}"),
        }
    }
    assert!(
        passing.is_empty(),
        "these pending scenarios pass now; move them to tests/scenarios/: {passing:?}"
    );
}
