//! Scenario and property tests of the classic group coordinator
//! (`riffle_broker::group::state`) through its public API.
//!
//! The rules are Apache Kafka's classic coordinator (`GroupCoordinator.scala`,
//! `GroupMetadata.scala`, `MemberMetadata.scala`); each test names the rule
//! it checks. The coordinator is sans-IO, so the harness below plays the
//! driver: it owns the clock, hands out reply ids, delivers the parked
//! JoinGroup/SyncGroup answers (failing the test if one is answered twice),
//! calls `tick` at every deadline the coordinator reports, and stores
//! appended records in a [`MemLog`] that can be told to fail.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use proptest::prelude::*;
use riffle_broker::group::records::{self, GroupMetadataValue, GroupRecord, LogEntry, OffsetKey};
use riffle_broker::group::state::{
    CommitPartition, CommitRequest, Committed, CoordinatorConfig, GroupCoordinator, GroupLog,
    GroupState, JoinRequest, JoinResult, Output, ReplyId, SyncRequest, SyncResult,
    TxnCommitRequest, NEW_MEMBER_JOIN_TIMEOUT_MS,
};

const GROUP: &str = "group";
const SESSION_MS: i32 = 500;
const REBALANCE_MS: i32 = 1000;
const DELAY_MS: i32 = 50;
const RETENTION_MS: i64 = 10_000;

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        num_partitions: 4,
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 600_000,
        initial_rebalance_delay_ms: DELAY_MS,
        max_size: i32::MAX,
        offset_metadata_max_bytes: 4096,
        offsets_retention_ms: RETENTION_MS,
    }
}

// ---- The fake log ----------------------------------------------------------

/// An in-memory `__consumer_offsets`: every appended record in order, each
/// partition's log as the loader reads it (records at consecutive offsets,
/// transactional ones with their producer, and transaction markers), and
/// an error to fail the next append with.
#[derive(Default)]
struct MemLog {
    records: Vec<(i32, Bytes, Option<Bytes>)>,
    logs: HashMap<i32, Vec<LogEntry>>,
    /// (partition, producer id, producer epoch, record count) of every
    /// transactional append.
    transactional: Vec<(i32, i64, i16, usize)>,
    fail_next: Option<ResponseError>,
    appends: usize,
}

impl MemLog {
    fn store(
        &mut self,
        partition: i32,
        producer_id: Option<i64>,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError> {
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        self.appends += 1;
        let log = self.logs.entry(partition).or_default();
        let first_offset = log.len() as i64;
        for (k, v) in records {
            let record = records::decode(&k, v.as_deref()).expect("a record we wrote decodes");
            log.push(LogEntry::Record {
                offset: log.len() as i64,
                producer_id,
                record,
            });
            self.records.push((partition, k, v));
        }
        Ok(first_offset)
    }

    /// Writes a transaction marker, as the replica manager does before it
    /// tells the coordinator.
    fn marker(&mut self, partition: i32, producer_id: i64, commit: bool) {
        let log = self.logs.entry(partition).or_default();
        log.push(LogEntry::Marker {
            offset: log.len() as i64,
            producer_id,
            commit,
        });
    }

    /// What the loader reads from `partition`.
    fn entries_on(&self, partition: i32) -> Vec<LogEntry> {
        self.logs.get(&partition).cloned().unwrap_or_default()
    }
}

impl GroupLog for MemLog {
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError> {
        self.store(partition, None, records)
    }

    fn append_transactional(
        &mut self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError> {
        let n = records.len();
        let first = self.store(partition, Some(producer_id), records)?;
        self.transactional
            .push((partition, producer_id, producer_epoch, n));
        Ok(first)
    }
}

impl MemLog {
    fn decoded(&self) -> Vec<GroupRecord> {
        self.records
            .iter()
            .map(|(_, k, v)| records::decode(k, v.as_deref()).expect("a record we wrote decodes"))
            .collect()
    }

    /// Every GroupMetadata record (or tombstone) of `group`, in order.
    fn group_values(&self, group: &str) -> Vec<Option<GroupMetadataValue>> {
        self.decoded()
            .into_iter()
            .filter_map(|r| match r {
                GroupRecord::Group { group: g, value } if g == group => Some(value),
                _ => None,
            })
            .collect()
    }

    fn last_group_value(&self, group: &str) -> GroupMetadataValue {
        self.group_values(group)
            .pop()
            .expect("a group record")
            .expect("not a tombstone")
    }

    /// The offset tombstones of `group`, as (topic, partition).
    fn offset_tombstones(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.decoded()
            .into_iter()
            .filter_map(|r| match r {
                GroupRecord::Offset { key, value: None } if key.group == group => {
                    Some((key.topic, key.partition))
                }
                _ => None,
            })
            .collect()
    }
}

// ---- Requests --------------------------------------------------------------

fn meta(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A JoinGroup of a dynamic consumer at v4+ (a first join asks for a
/// member id).
fn join_req(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), meta("range-meta"))],
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn static_req(instance: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_string()),
        require_known_member_id: false,
        ..join_req(member_id)
    }
}

fn with_protocols(mut req: JoinRequest, protocols: &[(&str, &str)]) -> JoinRequest {
    req.protocols = protocols
        .iter()
        .map(|(n, m)| (n.to_string(), meta(m)))
        .collect();
    req
}

fn sync_req(member_id: &str, generation: i32) -> SyncRequest {
    SyncRequest {
        group_id: GROUP.to_string(),
        member_id: member_id.to_string(),
        generation_id: generation,
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: Vec::new(),
    }
}

fn commit_req(member_id: &str, generation: i32, partitions: &[(&str, i32, i64)]) -> CommitRequest {
    CommitRequest {
        group_id: GROUP.to_string(),
        member_id: member_id.to_string(),
        generation_id: generation,
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: partitions
            .iter()
            .map(|(t, p, o)| CommitPartition {
                topic: t.to_string(),
                partition: *p,
                offset: *o,
                leader_epoch: -1,
                metadata: None,
            })
            .collect(),
    }
}

fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

/// A ConsumerProtocolSubscription as the Java consumer writes it: an int16
/// version, then the struct at that version.
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        )
        .encode(&mut buf, 1)
        .expect("encodes");
    buf.freeze()
}

/// A group name that lands on another `__consumer_offsets` partition than
/// [`GROUP`].
fn group_on_other_partition(coord: &GroupCoordinator) -> String {
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|g| coord.partition_for(g) != coord.partition_for(GROUP))
        .expect("some name hashes elsewhere")
}

// ---- The driver ------------------------------------------------------------

struct Harness {
    coord: GroupCoordinator,
    log: MemLog,
    now: i64,
    next_reply: ReplyId,
    joins: HashMap<ReplyId, JoinResult>,
    syncs: HashMap<ReplyId, SyncResult>,
    sent: HashSet<ReplyId>,
    answered: HashSet<ReplyId>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    /// A coordinator that leads and has loaded every partition.
    fn with_config(config: CoordinatorConfig) -> Harness {
        let mut h = Harness::unloaded(config);
        for p in 0..h.coord.config().num_partitions {
            h.coord.load_partition(p, Vec::new(), 0);
        }
        h
    }

    /// A coordinator that leads no partition yet.
    fn unloaded(config: CoordinatorConfig) -> Harness {
        Harness {
            coord: GroupCoordinator::new(config),
            log: MemLog::default(),
            now: 0,
            next_reply: 1,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            sent: HashSet::new(),
            answered: HashSet::new(),
        }
    }

    fn deliver(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            let id = match &o {
                Output::Join(id, _) | Output::Sync(id, _) => *id,
            };
            assert!(self.sent.contains(&id), "reply {id} was never asked for");
            assert!(self.answered.insert(id), "reply {id} answered twice");
            match o {
                Output::Join(id, r) => {
                    self.joins.insert(id, r);
                }
                Output::Sync(id, r) => {
                    self.syncs.insert(id, r);
                }
            }
        }
    }

    fn reply_id(&mut self) -> ReplyId {
        let id = self.next_reply;
        self.next_reply += 1;
        self.sent.insert(id);
        id
    }

    fn join(&mut self, req: JoinRequest) -> ReplyId {
        let id = self.reply_id();
        let out = self.coord.join(req, id, self.now, &mut self.log);
        self.deliver(out);
        id
    }

    /// A join that must be answered at once.
    fn join_now(&mut self, req: JoinRequest) -> JoinResult {
        let id = self.join(req);
        self.join_answer(id)
    }

    fn parked(&self, id: ReplyId) -> bool {
        !self.answered.contains(&id)
    }

    fn join_answer(&mut self, id: ReplyId) -> JoinResult {
        self.joins
            .remove(&id)
            .unwrap_or_else(|| panic!("join {id} is not answered"))
    }

    fn sync(&mut self, req: SyncRequest) -> ReplyId {
        let id = self.reply_id();
        let out = self.coord.sync(req, id, self.now, &mut self.log);
        self.deliver(out);
        id
    }

    fn sync_now(&mut self, req: SyncRequest) -> SyncResult {
        let id = self.sync(req);
        self.sync_answer(id)
    }

    fn sync_answer(&mut self, id: ReplyId) -> SyncResult {
        self.syncs
            .remove(&id)
            .unwrap_or_else(|| panic!("sync {id} is not answered"))
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> Result<(), ResponseError> {
        self.coord
            .heartbeat(GROUP, member_id, &None, generation, self.now)
    }

    fn static_heartbeat(
        &mut self,
        instance: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.coord.heartbeat(
            GROUP,
            member_id,
            &Some(instance.to_string()),
            generation,
            self.now,
        )
    }

    fn leave(&mut self, members: &[(&str, Option<&str>)]) -> Vec<Option<ResponseError>> {
        let members: Vec<(String, Option<String>)> = members
            .iter()
            .map(|(m, i)| (m.to_string(), i.map(str::to_string)))
            .collect();
        let (results, out) = self
            .coord
            .leave(GROUP, &members, self.now, &mut self.log)
            .expect("no group-level error");
        self.deliver(out);
        results
    }

    fn commit(&mut self, req: &CommitRequest) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.coord.commit_offsets(req, self.now, &mut self.log)
    }

    fn fetch(&self, topic: &str, partition: i32) -> Option<Committed> {
        self.coord
            .fetch_offsets(GROUP, Some(&[(topic.to_string(), partition)]))
            .expect("coordinator")
            .pop()
            .expect("one answer per partition asked")
            .1
    }

    fn tick(&mut self) {
        let out = self.coord.tick(self.now, &mut self.log);
        self.deliver(out);
        if let Some(next) = self.coord.next_deadline() {
            assert!(
                next > self.now,
                "tick at {} left work due at {next}",
                self.now
            );
        }
    }

    /// Moves the clock forward by `ms`, ticking at every deadline the
    /// coordinator reports on the way, as the driver does.
    fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        while let Some(next) = self.coord.next_deadline().filter(|&t| t <= target) {
            self.now = self.now.max(next);
            self.tick();
        }
        self.now = target;
        self.tick();
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.coord
            .describe(group)
            .expect("coordinator")
            .map(|d| d.state)
    }

    fn member_ids(&self, group: &str) -> BTreeSet<String> {
        self.coord
            .describe(group)
            .expect("coordinator")
            .map(|d| d.members.into_iter().map(|m| m.member_id).collect())
            .unwrap_or_default()
    }

    /// KIP-394: a dynamic member's first join is answered with
    /// MEMBER_ID_REQUIRED and the id to join with; the second join parks.
    fn new_member(&mut self, req: JoinRequest) -> (String, ReplyId) {
        assert!(req.member_id.is_empty() && req.require_known_member_id);
        let first = self.join_now(req.clone());
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        assert!(!first.member_id.is_empty());
        let id = first.member_id.clone();
        let reply = self.join(JoinRequest {
            member_id: id.clone(),
            ..req
        });
        (id, reply)
    }

    /// Joins every request into an empty group at the same instant and
    /// lets the initial delay (extended once by the later joiners) run
    /// out; returns the join answers in order.
    fn form_group(&mut self, reqs: Vec<JoinRequest>) -> Vec<JoinResult> {
        let replies: Vec<ReplyId> = reqs
            .into_iter()
            .map(|r| {
                if r.member_id.is_empty() && r.require_known_member_id {
                    self.new_member(r).1
                } else {
                    self.join(r)
                }
            })
            .collect();
        // Members joining during the first delay extend it once more.
        self.advance(DELAY_MS as i64);
        if replies.iter().any(|r| self.parked(*r)) {
            self.advance(DELAY_MS as i64);
        }
        replies
            .into_iter()
            .map(|id| {
                let r = self.join_answer(id);
                assert_eq!(r.error, None, "join answered {r:?}");
                r
            })
            .collect()
    }

    /// Followers sync first (and park), then the leader with an assignment
    /// for every member; the group is Stable after.
    fn stabilize(&mut self, joined: &[JoinResult]) {
        let leader = joined
            .iter()
            .find(|r| r.leader == r.member_id)
            .expect("a leader");
        let assignments: Vec<(String, Bytes)> = leader
            .members
            .iter()
            .map(|m| (m.member_id.clone(), assignment_for(&m.member_id)))
            .collect();
        let leader_id = leader.member_id.clone();
        let generation = leader.generation_id;
        let protocol_type = leader.protocol_type.clone();
        let request = |member_id: &str| SyncRequest {
            protocol_type: protocol_type.clone(),
            ..sync_req(member_id, generation)
        };
        let mut replies = Vec::new();
        for r in joined.iter().filter(|r| r.member_id != leader_id) {
            replies.push((r.member_id.clone(), self.sync(request(&r.member_id))));
        }
        for (_, id) in &replies {
            assert!(self.parked(*id), "a follower's sync waits for the leader");
        }
        let mut req = request(&leader_id);
        req.assignments = assignments;
        replies.push((leader_id, self.sync(req)));
        for (member, id) in replies {
            let r = self.sync_answer(id);
            assert_eq!(r.error, None);
            assert_eq!(r.assignment, assignment_for(&member));
        }
        assert_eq!(self.state(GROUP), Some(GroupState::Stable));
    }

    /// A Stable group of `n` dynamic members; the join answers, leader
    /// first.
    fn stable_group(&mut self, n: usize) -> Vec<JoinResult> {
        let mut joined = self.form_group((0..n).map(|_| join_req("")).collect());
        self.stabilize(&joined);
        joined.sort_by_key(|r| r.leader != r.member_id);
        joined
    }

    /// A Stable group of static members with these instance ids.
    fn stable_static_group(&mut self, instances: &[&str]) -> Vec<JoinResult> {
        let joined = self.form_group(instances.iter().map(|i| static_req(i, "")).collect());
        self.stabilize(&joined);
        joined
    }
}

fn leader_of(joined: &[JoinResult]) -> &JoinResult {
    joined
        .iter()
        .find(|r| r.leader == r.member_id)
        .expect("a leader")
}

fn follower_of(joined: &[JoinResult]) -> &JoinResult {
    joined
        .iter()
        .find(|r| r.leader != r.member_id)
        .expect("a follower")
}

// ---- JoinGroup: member ids ----------------------------------------------------

#[test]
fn kip394_first_dynamic_join_at_v4_is_answered_member_id_required_then_joins_with_that_id() {
    let mut h = Harness::new();
    let first = h.join_now(join_req(""));
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(
        first.member_id.starts_with("client-"),
        "{}",
        first.member_id
    );
    // A pending member is not a member: the group has not started to
    // rebalance.
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    assert!(h.member_ids(GROUP).is_empty());

    let reply = h.join(join_req(&first.member_id));
    assert!(h.parked(reply), "the join waits out the initial delay");
    h.advance(DELAY_MS as i64);
    let r = h.join_answer(reply);
    assert_eq!(r.error, None);
    assert_eq!(r.member_id, first.member_id);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, first.member_id);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
}

#[test]
fn join_below_v4_gets_a_member_id_without_a_second_round_trip() {
    let mut h = Harness::new();
    let reply = h.join(JoinRequest {
        require_known_member_id: false,
        ..join_req("")
    });
    h.advance(DELAY_MS as i64);
    let r = h.join_answer(reply);
    assert_eq!(r.error, None);
    assert!(!r.member_id.is_empty());
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.generation_id, 1);
}

#[test]
fn join_with_a_member_id_into_an_unknown_group_is_unknown_member_id() {
    let mut h = Harness::new();
    let r = h.join_now(join_req("nobody"));
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
    assert_eq!(h.state(GROUP), None, "the group is not created");
}

#[test]
fn pending_member_that_never_rejoins_expires_after_its_session_timeout() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let leader = &joined[0];

    let pending = h.join_now(JoinRequest {
        session_timeout_ms: 300,
        ..join_req("")
    });
    assert_eq!(pending.error, Some(ResponseError::MemberIdRequired));
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));

    for _ in 0..3 {
        h.advance(150);
        assert_eq!(h.heartbeat(&leader.member_id, 1), Ok(()));
    }
    // 450 ms > 300 ms: the pending id is forgotten.
    let late = h.join_now(join_req(&pending.member_id));
    assert_eq!(late.error, Some(ResponseError::UnknownMemberId));
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
    assert_eq!(
        h.member_ids(GROUP),
        BTreeSet::from([leader.member_id.clone()])
    );
}

#[test]
fn pending_member_joining_completes_a_rebalance_everyone_else_has_rejoined() {
    // Kafka's handleJoinGroup checks whether the join can complete after
    // every join, including the one that turns a pending member into a
    // member.
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let pending = h.join_now(join_req(""));
    assert_eq!(pending.error, Some(ResponseError::MemberIdRequired));
    let a = h.join(join_req(&joined[0].member_id));
    let b = h.join(join_req(&joined[1].member_id));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    assert!(h.parked(a) && h.parked(b), "the pending member is awaited");

    let c = h.join(join_req(&pending.member_id));
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    for id in [a, b, c] {
        let r = h.join_answer(id);
        assert_eq!(r.error, None);
        assert_eq!(r.generation_id, 2);
    }
    assert_eq!(h.member_ids(GROUP).len(), 3);
}

#[test]
fn pending_member_leaving_completes_a_rebalance_everyone_else_has_rejoined() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let pending = h.join_now(join_req(""));
    let a = h.join(join_req(&joined[0].member_id));
    let b = h.join(join_req(&joined[1].member_id));
    assert!(h.parked(a) && h.parked(b));

    assert_eq!(h.leave(&[(&pending.member_id, None)]), vec![None]);
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    assert_eq!(h.join_answer(a).generation_id, 2);
    assert_eq!(h.join_answer(b).generation_id, 2);
}

#[test]
fn new_member_join_is_dropped_after_the_new_member_join_timeout() {
    // Kafka's NewMemberJoinTimeoutMs: a new member's parked join cannot
    // hold a rebalance (of a long rebalance timeout) forever.
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let leader = joined[0].member_id.clone();
    let (newcomer, reply) = h.new_member(JoinRequest {
        rebalance_timeout_ms: 2 * NEW_MEMBER_JOIN_TIMEOUT_MS as i32,
        ..join_req("")
    });
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    // The old member keeps its session but does not rejoin.
    while h.now < NEW_MEMBER_JOIN_TIMEOUT_MS - 200 {
        h.advance(200);
        assert_eq!(
            h.heartbeat(&leader, 1),
            Err(ResponseError::RebalanceInProgress)
        );
    }
    assert!(h.parked(reply));
    h.advance(400);
    let r = h.join_answer(reply);
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
    assert!(!h.member_ids(GROUP).contains(&newcomer));
}

// ---- JoinGroup: the initial rebalance delay -------------------------------

#[test]
fn initial_rebalance_delay_gathers_members_joining_an_empty_group_into_one_generation() {
    let mut h = Harness::new();
    let a = h.new_member(join_req("")).1;
    h.advance(10);
    let b = h.new_member(join_req("")).1;
    h.advance(10);
    let c = h.new_member(join_req("")).1;
    // The first delay ends at 50, but members came: it runs again to 100.
    h.advance(79 - h.now);
    assert!(h.parked(a) && h.parked(b) && h.parked(c));
    h.advance(100 - h.now);
    let answers: Vec<JoinResult> = [a, b, c].into_iter().map(|r| h.join_answer(r)).collect();
    assert!(answers
        .iter()
        .all(|r| r.error.is_none() && r.generation_id == 1));
    let leaders: BTreeSet<&str> = answers.iter().map(|r| r.leader.as_str()).collect();
    assert_eq!(leaders.len(), 1, "one leader for the generation");
    assert_eq!(
        answers[0].leader, answers[0].member_id,
        "the first member leads"
    );
}

#[test]
fn initial_rebalance_delay_extends_while_members_keep_coming_but_not_past_the_rebalance_timeout() {
    let mut h = Harness::new();
    let req = || JoinRequest {
        rebalance_timeout_ms: 120,
        ..join_req("")
    };
    let mut replies = vec![h.new_member(req()).1];
    for t in [40, 80, 110] {
        h.advance(t - h.now);
        replies.push(h.new_member(req()).1);
    }
    h.advance(119 - h.now);
    assert!(replies.iter().all(|r| h.parked(*r)));
    h.advance(1);
    for r in replies {
        let r = h.join_answer(r);
        assert_eq!(r.error, None);
        assert_eq!(r.generation_id, 1);
    }
}

#[test]
fn initial_rebalance_delay_of_zero_completes_the_join_on_the_next_tick() {
    let mut h = Harness::with_config(CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..config()
    });
    let (_, reply) = h.new_member(join_req(""));
    assert!(
        h.parked(reply),
        "the join completes from the timer, not inline"
    );
    h.advance(0);
    assert_eq!(h.join_answer(reply).generation_id, 1);
}

// ---- JoinGroup: protocols --------------------------------------------------

#[test]
fn protocol_is_the_most_voted_among_those_every_member_supports() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![
        with_protocols(
            join_req(""),
            &[("range", "a-range"), ("roundrobin", "a-rr")],
        ),
        with_protocols(
            join_req(""),
            &[("roundrobin", "b-rr"), ("range", "b-range")],
        ),
        with_protocols(
            join_req(""),
            &[("roundrobin", "c-rr"), ("range", "c-range")],
        ),
    ]);
    assert!(joined
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("roundrobin")));
    let leader = leader_of(&joined);
    let metadata: BTreeSet<Bytes> = leader.members.iter().map(|m| m.metadata.clone()).collect();
    assert_eq!(
        metadata,
        BTreeSet::from([meta("a-rr"), meta("b-rr"), meta("c-rr")]),
        "the leader gets each member's metadata for the chosen protocol"
    );
}

#[test]
fn protocol_a_member_lacks_is_not_chosen_even_with_more_votes() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![
        with_protocols(
            join_req(""),
            &[("sticky", "m"), ("range", "m"), ("roundrobin", "m")],
        ),
        with_protocols(join_req(""), &[("sticky", "m"), ("roundrobin", "m")]),
        with_protocols(join_req(""), &[("range", "m"), ("roundrobin", "m")]),
    ]);
    assert!(joined
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("roundrobin")));
}

#[test]
fn join_with_another_protocol_type_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    h.stable_group(1);
    let r = h.join_now(JoinRequest {
        protocol_type: "connect".to_string(),
        require_known_member_id: false,
        ..join_req("")
    });
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    assert_eq!(r.protocol_type, None, "no protocol type with an error");
}

#[test]
fn join_without_a_protocol_in_common_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    h.stable_group(1);
    let r = h.join_now(with_protocols(
        JoinRequest {
            require_known_member_id: false,
            ..join_req("")
        },
        &[("roundrobin", "m")],
    ));
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn join_of_an_empty_group_without_protocol_type_or_protocols_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    let r = h.join_now(JoinRequest {
        protocol_type: String::new(),
        ..join_req("")
    });
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    let r = h.join_now(with_protocols(join_req(""), &[]));
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn leader_gets_the_member_list_and_followers_an_empty_one() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req(""), join_req("")]);
    let leader = leader_of(&joined);
    let ids: BTreeSet<String> = joined.iter().map(|r| r.member_id.clone()).collect();
    let listed: BTreeSet<String> = leader.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(listed, ids);
    for r in joined.iter().filter(|r| r.member_id != leader.member_id) {
        assert!(r.members.is_empty());
        assert_eq!(r.leader, leader.member_id);
    }
}

#[test]
fn unchanged_follower_rejoining_a_stable_group_gets_the_generation_without_a_rebalance() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let follower = follower_of(&joined).clone();
    let r = h.join_now(join_req(&follower.member_id));
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert!(r.members.is_empty());
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn leader_rejoining_a_stable_group_starts_a_rebalance() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let reply = h.join(join_req(&joined[0].member_id));
    assert!(h.parked(reply));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
}

// ---- SyncGroup ---------------------------------------------------------------

#[test]
fn leader_assignment_is_stored_as_group_metadata_and_handed_to_parked_followers() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req(""), join_req("")]);
    let leader = leader_of(&joined).clone();
    let followers: Vec<&JoinResult> = joined
        .iter()
        .filter(|r| r.member_id != leader.member_id)
        .collect();
    let f0 = h.sync(sync_req(&followers[0].member_id, 1));
    let f1 = h.sync(sync_req(&followers[1].member_id, 1));
    assert!(h.parked(f0) && h.parked(f1));
    let appends = h.log.appends;

    // The leader leaves one member out (it gets an empty assignment) and
    // names one that is not in the group (ignored).
    let mut req = sync_req(&leader.member_id, 1);
    req.assignments = vec![
        (leader.member_id.clone(), assignment_for(&leader.member_id)),
        (
            followers[0].member_id.clone(),
            assignment_for(&followers[0].member_id),
        ),
        ("stranger".to_string(), meta("x")),
    ];
    let l = h.sync_now(req);
    assert_eq!(l.error, None);
    assert_eq!(l.assignment, assignment_for(&leader.member_id));
    assert_eq!(l.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(l.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        h.sync_answer(f0).assignment,
        assignment_for(&followers[0].member_id)
    );
    assert_eq!(h.sync_answer(f1).assignment, Bytes::new());
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));

    assert_eq!(h.log.appends, appends + 1);
    let stored = h.log.last_group_value(GROUP);
    assert_eq!(stored.generation, 1);
    assert_eq!(stored.protocol_type, "consumer");
    assert_eq!(stored.protocol.as_deref(), Some("range"));
    assert_eq!(stored.leader.as_deref(), Some(leader.member_id.as_str()));
    assert_eq!(stored.members.len(), 3);
    for m in &stored.members {
        let expected = if m.member_id == followers[1].member_id {
            Bytes::new()
        } else {
            assignment_for(&m.member_id)
        };
        assert_eq!(m.assignment, expected, "{}", m.member_id);
        assert_eq!(m.subscription, meta("range-meta"));
        assert_eq!(m.session_timeout, SESSION_MS);
        assert_eq!(m.rebalance_timeout, REBALANCE_MS);
        assert_eq!(m.client_id, "client");
    }
}

#[test]
fn sync_in_a_stable_group_returns_the_stored_assignment() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let f = follower_of(&joined).member_id.clone();
    let r = h.sync_now(sync_req(&f, 1));
    assert_eq!(r.error, None);
    assert_eq!(r.assignment, assignment_for(&f));
}

#[test]
fn sync_with_another_generation_is_illegal_generation() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    let r = h.sync_now(sync_req(&joined[1].member_id, 2));
    assert_eq!(r.error, Some(ResponseError::IllegalGeneration));
    let r = h.sync_now(sync_req(&joined[1].member_id, 0));
    assert_eq!(r.error, Some(ResponseError::IllegalGeneration));
}

#[test]
fn sync_from_an_unknown_member_or_group_is_unknown_member_id() {
    let mut h = Harness::new();
    h.form_group(vec![join_req("")]);
    let r = h.sync_now(sync_req("stranger", 1));
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
    let r = h.sync_now(SyncRequest {
        group_id: "no-such-group".to_string(),
        ..sync_req("stranger", 1)
    });
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn sync_during_preparing_rebalance_is_rebalance_in_progress() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    h.join(join_req(&joined[0].member_id));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    let r = h.sync_now(sync_req(&joined[1].member_id, 1));
    assert_eq!(r.error, Some(ResponseError::RebalanceInProgress));
}

#[test]
fn sync_with_another_protocol_type_or_name_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let id = joined[0].member_id.clone();
    let r = h.sync_now(SyncRequest {
        protocol_type: Some("connect".to_string()),
        ..sync_req(&id, 1)
    });
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    let r = h.sync_now(SyncRequest {
        protocol_name: Some("roundrobin".to_string()),
        ..sync_req(&id, 1)
    });
    assert_eq!(r.error, Some(ResponseError::InconsistentGroupProtocol));
    // SyncGroup below v5 names neither: nothing to check.
    let r = h.sync_now(SyncRequest {
        protocol_type: None,
        protocol_name: None,
        ..sync_req(&id, 1)
    });
    assert_eq!(r.error, None);
}

#[test]
fn failed_assignment_append_answers_with_kafkas_mapping_and_the_group_rebalances() {
    // Kafka 4.0's CoordinatorOperationExceptionHelper: storage errors
    // become errors the group clients know how to handle.
    let cases = [
        (
            ResponseError::NotEnoughReplicas,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::UnknownTopicOrPartition,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::RequestTimedOut,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::NotLeaderOrFollower,
            ResponseError::NotCoordinator,
        ),
        (
            ResponseError::KafkaStorageError,
            ResponseError::NotCoordinator,
        ),
        (
            ResponseError::MessageTooLarge,
            ResponseError::UnknownServerError,
        ),
    ];
    for (stored, answered) in cases {
        let mut h = Harness::new();
        let joined = h.form_group(vec![join_req(""), join_req("")]);
        let leader = leader_of(&joined).member_id.clone();
        let follower = follower_of(&joined).member_id.clone();
        let f = h.sync(sync_req(&follower, 1));
        h.log.fail_next = Some(stored);
        let mut req = sync_req(&leader, 1);
        req.assignments = vec![(leader.clone(), assignment_for(&leader))];
        let l = h.sync_now(req);
        assert_eq!(l.error, Some(answered), "{stored:?}");
        assert_eq!(h.sync_answer(f).error, Some(answered), "{stored:?}");
        assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
        assert_eq!(
            h.heartbeat(&follower, 1),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(h.log.group_values(GROUP).is_empty());
    }
}

// ---- Heartbeat ---------------------------------------------------------------

#[test]
fn heartbeat_is_none_in_stable_and_completing_rebalance() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat(&joined[1].member_id, 1), Ok(()));
    h.stabilize(&joined);
    assert_eq!(h.heartbeat(&joined[1].member_id, 1), Ok(()));
}

#[test]
fn heartbeat_during_preparing_rebalance_is_rebalance_in_progress() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    h.join(join_req(&joined[0].member_id));
    assert_eq!(
        h.heartbeat(&joined[1].member_id, 1),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn heartbeat_with_another_generation_is_illegal_generation() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    assert_eq!(
        h.heartbeat(&joined[0].member_id, 2),
        Err(ResponseError::IllegalGeneration)
    );
}

#[test]
fn heartbeat_from_an_unknown_member_or_group_is_unknown_member_id() {
    let mut h = Harness::new();
    h.stable_group(1);
    assert_eq!(
        h.heartbeat("stranger", 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.coord.heartbeat("no-such-group", "m", &None, 1, h.now),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn session_timeout_removes_a_silent_member_and_the_others_are_told_to_rejoin() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let (a, b) = (joined[0].member_id.clone(), joined[1].member_id.clone());
    for _ in 0..3 {
        h.advance(200);
        if h.state(GROUP) == Some(GroupState::Stable) {
            assert_eq!(h.heartbeat(&a, 1), Ok(()));
        }
    }
    // b was silent for 600 ms > 500 ms.
    assert_eq!(h.member_ids(GROUP), BTreeSet::from([a.clone()]));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&a, 1), Err(ResponseError::RebalanceInProgress));
    assert_eq!(h.heartbeat(&b, 1), Err(ResponseError::UnknownMemberId));

    let r = h.join_now(join_req(&a));
    assert_eq!(
        r.error, None,
        "the only member rejoined: the join completes"
    );
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn heartbeats_keep_a_member_alive() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    for _ in 0..50 {
        h.advance(SESSION_MS as i64 - 1);
        for m in &joined {
            assert_eq!(h.heartbeat(&m.member_id, 1), Ok(()));
        }
    }
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
    assert_eq!(h.member_ids(GROUP).len(), 2);
}

#[test]
fn heartbeats_during_completing_rebalance_keep_members_alive() {
    // Kafka's handleHeartbeat: a heartbeat in CompletingRebalance
    // schedules the next session expiration, as in Stable.
    let mut h = Harness::new();
    let joined = h.form_group(vec![
        JoinRequest {
            rebalance_timeout_ms: 5000,
            ..join_req("")
        },
        JoinRequest {
            rebalance_timeout_ms: 5000,
            ..join_req("")
        },
    ]);
    for _ in 0..10 {
        h.advance(400);
        for m in &joined {
            assert_eq!(h.heartbeat(&m.member_id, 1), Ok(()));
        }
    }
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    h.stabilize(&joined);
}

#[test]
fn commit_keeps_a_member_alive() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let id = joined[0].member_id.clone();
    for i in 0..5 {
        h.advance(400);
        assert_eq!(
            h.commit(&commit_req(&id, 1, &[("t", 0, i)])),
            Ok(vec![None])
        );
    }
    assert_eq!(h.heartbeat(&id, 1), Ok(()));
}

#[test]
fn heartbeat_while_the_partition_loads_is_answered_none() {
    // Kafka answers a heartbeat blindly while the group loads: the member
    // learns the truth at its next heartbeat.
    let mut h = Harness::unloaded(config());
    let p = h.coord.partition_for(GROUP);
    h.coord.begin_load(p);
    assert_eq!(h.heartbeat("m", 1), Ok(()));
}

// ---- Rebalance timeouts ------------------------------------------------------

#[test]
fn member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed_when_the_join_completes() {
    let mut h = Harness::new();
    let long_session = |r: JoinRequest| JoinRequest {
        session_timeout_ms: 10_000,
        ..r
    };
    let joined = h.form_group(vec![long_session(join_req("")), long_session(join_req(""))]);
    h.stabilize(&joined);
    let leader = leader_of(&joined).member_id.clone();
    let follower = follower_of(&joined).member_id.clone();
    let reply = h.join(long_session(join_req(&leader)));
    h.advance(REBALANCE_MS as i64 - 1);
    assert!(h.parked(reply));
    assert_eq!(
        h.heartbeat(&follower, 1),
        Err(ResponseError::RebalanceInProgress),
        "a heartbeat is not a rejoin"
    );
    h.advance(1);
    let r = h.join_answer(reply);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        h.heartbeat(&follower, 1),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn leader_that_does_not_rejoin_hands_leadership_to_a_member_that_did() {
    let mut h = Harness::new();
    let long_session = |r: JoinRequest| JoinRequest {
        session_timeout_ms: 10_000,
        ..r
    };
    let joined = h.form_group(vec![long_session(join_req("")), long_session(join_req(""))]);
    h.stabilize(&joined);
    let leader = leader_of(&joined).member_id.clone();
    let follower = follower_of(&joined).member_id.clone();
    // The follower changes its metadata, which starts a rebalance.
    let reply = h.join(with_protocols(
        long_session(join_req(&follower)),
        &[("range", "new-meta")],
    ));
    h.advance(REBALANCE_MS as i64);
    let r = h.join_answer(reply);
    assert_eq!(r.error, None);
    assert_eq!(r.leader, follower);
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, meta("new-meta"));
    assert!(!h.member_ids(GROUP).contains(&leader));
}

#[test]
fn static_member_that_does_not_rejoin_within_the_rebalance_timeout_keeps_its_place() {
    // KIP-345: a static member is only removed by its session timeout.
    let mut h = Harness::new();
    let long_session = |r: JoinRequest| JoinRequest {
        session_timeout_ms: 2 * REBALANCE_MS,
        ..r
    };
    let joined = h.form_group(vec![
        long_session(static_req("leader", "")),
        long_session(static_req("follower", "")),
    ]);
    h.stabilize(&joined);
    let leader = leader_of(&joined).member_id.clone();
    let newcomer = h.join(long_session(static_req("newcomer", "")));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    let rejoin = h.join(long_session(static_req("leader", &leader)));
    h.advance(REBALANCE_MS as i64);
    let l = h.join_answer(rejoin);
    assert_eq!(l.generation_id, 2);
    assert_eq!(l.leader, leader);
    assert_eq!(l.members.len(), 3, "the silent follower stays");
    let n = h.join_answer(newcomer);
    assert_eq!(n.error, None);
    assert_eq!(n.leader, leader);
}

#[test]
fn members_that_do_not_sync_within_the_rebalance_timeout_are_removed() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req(""), join_req("")]);
    let leader = leader_of(&joined).member_id.clone();
    let mut req = sync_req(&leader, 1);
    req.assignments = joined
        .iter()
        .map(|r| (r.member_id.clone(), assignment_for(&r.member_id)))
        .collect();
    assert_eq!(h.sync_now(req).error, None);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
    // The followers heartbeat but never fetch their assignment.
    let start = h.now;
    while h.now + 200 < start + REBALANCE_MS as i64 {
        h.advance(200);
        for r in &joined {
            assert_eq!(h.heartbeat(&r.member_id, 1), Ok(()));
        }
    }
    h.advance(start + REBALANCE_MS as i64 - h.now);
    assert_eq!(h.member_ids(GROUP), BTreeSet::from([leader.clone()]));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat(&leader, 1),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn leader_that_does_not_sync_within_the_rebalance_timeout_is_removed_and_parked_followers_rejoin() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    let leader = leader_of(&joined).member_id.clone();
    let follower = follower_of(&joined).member_id.clone();
    let f = h.sync(sync_req(&follower, 1));
    h.advance(400);
    assert_eq!(h.heartbeat(&leader, 1), Ok(()));
    h.advance(REBALANCE_MS as i64 - 400);
    assert_eq!(
        h.sync_answer(f).error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(h.member_ids(GROUP), BTreeSet::from([follower]));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
}

// ---- LeaveGroup ----------------------------------------------------------------

#[test]
fn batched_leave_answers_each_member_and_unknown_ones_unknown_member_id() {
    let mut h = Harness::new();
    let joined = h.stable_group(3);
    let ids: Vec<String> = joined.iter().map(|r| r.member_id.clone()).collect();
    let results = h.leave(&[(&ids[0], None), ("stranger", None), (&ids[1], None)]);
    assert_eq!(
        results,
        vec![None, Some(ResponseError::UnknownMemberId), None]
    );
    assert_eq!(h.member_ids(GROUP), BTreeSet::from([ids[2].clone()]));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    let r = h.join_now(join_req(&ids[2]));
    assert_eq!(r.generation_id, 2);
    assert_eq!(
        r.leader, ids[2],
        "leadership passed to the remaining member"
    );
}

#[test]
fn leave_of_an_unknown_group_answers_unknown_member_id_per_member() {
    let mut h = Harness::new();
    let (results, out) = h
        .coord
        .leave(
            "no-such-group",
            &[("a".to_string(), None), ("b".to_string(), None)],
            h.now,
            &mut h.log,
        )
        .expect("no group-level error");
    assert!(out.is_empty());
    assert_eq!(results, vec![Some(ResponseError::UnknownMemberId); 2]);
}

#[test]
fn static_member_leaves_by_instance_id() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let b = joined
        .iter()
        .find(|r| r.member_id.starts_with("b-"))
        .expect("b")
        .member_id
        .clone();
    // An admin removes it without knowing its member id (KIP-345).
    assert_eq!(h.leave(&[("", Some("b"))]), vec![None]);
    assert!(!h.member_ids(GROUP).contains(&b));
    assert_eq!(
        h.leave(&[("", Some("b")), ("", Some("zzz"))]),
        vec![
            Some(ResponseError::UnknownMemberId),
            Some(ResponseError::UnknownMemberId)
        ]
    );
}

#[test]
fn static_member_leave_with_another_member_id_is_fenced_instance_id() {
    let mut h = Harness::new();
    h.stable_static_group(&["a", "b"]);
    assert_eq!(
        h.leave(&[("not-b", Some("b"))]),
        vec![Some(ResponseError::FencedInstanceId)]
    );
    assert_eq!(h.member_ids(GROUP).len(), 2);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn last_member_leaving_empties_the_group_and_stores_the_empty_generation() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    assert_eq!(h.leave(&[(&joined[0].member_id, None)]), vec![None]);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    let stored = h.log.last_group_value(GROUP);
    assert_eq!(stored.generation, 2);
    assert!(stored.members.is_empty());
    assert_eq!(stored.protocol, None);
    assert_eq!(stored.leader, None);
    assert_eq!(stored.protocol_type, "consumer");
}

// ---- Static membership (KIP-345) -----------------------------------------------

fn static_id<'a>(joined: &'a [JoinResult], instance: &str) -> &'a str {
    &joined
        .iter()
        .find(|r| r.member_id.starts_with(&format!("{instance}-")))
        .expect("the instance joined")
        .member_id
}

#[test]
fn static_member_rejoining_a_stable_group_gets_a_new_id_and_its_assignment_without_a_rebalance() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_b = static_id(&joined, "b").to_string();
    let leader = leader_of(&joined).member_id.clone();
    let records_before = h.log.group_values(GROUP).len();

    let r = h.join_now(static_req("b", ""));
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, old_b);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert_eq!(r.leader, leader);
    assert!(r.members.is_empty());
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));

    // The new id is stored with the old assignment.
    assert_eq!(h.log.group_values(GROUP).len(), records_before + 1);
    let stored = h.log.last_group_value(GROUP);
    assert_eq!(stored.generation, 1);
    let b = stored
        .members
        .iter()
        .find(|m| m.group_instance_id.as_deref() == Some("b"))
        .expect("b stored");
    assert_eq!(b.member_id, r.member_id);
    assert_eq!(b.assignment, assignment_for(&old_b));

    let s = h.sync_now(SyncRequest {
        group_instance_id: Some("b".to_string()),
        ..sync_req(&r.member_id, 1)
    });
    assert_eq!(s.error, None);
    assert_eq!(s.assignment, assignment_for(&old_b));
    assert_eq!(h.static_heartbeat("a", &leader, 1), Ok(()), "no rebalance");
}

#[test]
fn replaced_static_member_id_is_fenced() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_b = static_id(&joined, "b").to_string();
    let new_b = h.join_now(static_req("b", "")).member_id;

    assert_eq!(
        h.static_heartbeat("b", &old_b, 1),
        Err(ResponseError::FencedInstanceId)
    );
    let s = h.sync_now(SyncRequest {
        group_instance_id: Some("b".to_string()),
        ..sync_req(&old_b, 1)
    });
    assert_eq!(s.error, Some(ResponseError::FencedInstanceId));
    let c = h.commit(&CommitRequest {
        group_instance_id: Some("b".to_string()),
        ..commit_req(&old_b, 1, &[("t", 0, 1)])
    });
    assert_eq!(c, Err(ResponseError::FencedInstanceId));
    let j = h.join_now(static_req("b", &old_b));
    assert_eq!(j.error, Some(ResponseError::FencedInstanceId));
    // Without its instance id the old id is simply unknown.
    assert_eq!(h.heartbeat(&old_b, 1), Err(ResponseError::UnknownMemberId));
    assert_eq!(h.static_heartbeat("b", &new_b, 1), Ok(()));
}

#[test]
fn static_member_replaced_while_parked_has_its_old_join_fenced() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_b = static_id(&joined, "b").to_string();
    let leader = leader_of(&joined).member_id.clone();
    let old_join = h.join(with_protocols(static_req("b", &old_b), &[("range", "v2")]));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    let new_join = h.join(static_req("b", ""));
    assert_eq!(
        h.join_answer(old_join).error,
        Some(ResponseError::FencedInstanceId)
    );
    let a = h.join(static_req("a", &leader));
    let r = h.join_answer(new_join);
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 2);
    assert_eq!(h.join_answer(a).members.len(), 2);
}

#[test]
fn static_member_away_past_its_session_timeout_is_removed() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let a = static_id(&joined, "a").to_string();
    let b = static_id(&joined, "b").to_string();
    for _ in 0..3 {
        h.advance(200);
        let _ = h.static_heartbeat("a", &a, 1);
    }
    assert_eq!(h.member_ids(GROUP), BTreeSet::from([a.clone()]));
    assert_eq!(
        h.static_heartbeat("b", &b, 1),
        Err(ResponseError::UnknownMemberId)
    );
    // Back again it is a new member.
    let reply = h.join(static_req("b", ""));
    let ra = h.join_now(static_req("a", &a));
    assert_eq!(ra.generation_id, 2);
    let rb = h.join_answer(reply);
    assert_eq!(rb.error, None);
    assert_ne!(rb.member_id, b);
}

#[test]
fn kip814_replaced_static_leader_that_supports_skip_assignment_leads_without_assigning() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_leader = leader_of(&joined).member_id.clone();
    let instance = if old_leader.starts_with("a-") {
        "a"
    } else {
        "b"
    };
    let r = h.join_now(JoinRequest {
        supports_skip_assignment: true,
        ..static_req(instance, "")
    });
    assert_eq!(r.error, None);
    assert_eq!(r.leader, r.member_id, "it is told it leads");
    assert!(r.skip_assignment);
    assert_eq!(r.members.len(), 2);
    assert_eq!(r.generation_id, 1);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn replaced_static_leader_without_skip_assignment_is_told_the_old_leader_id() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_leader = leader_of(&joined).member_id.clone();
    let instance = if old_leader.starts_with("a-") {
        "a"
    } else {
        "b"
    };
    let r = h.join_now(static_req(instance, ""));
    assert_eq!(r.error, None);
    assert_eq!(r.leader, old_leader, "so it does not run the assignor");
    assert_ne!(r.member_id, old_leader);
    assert!(!r.skip_assignment);
    assert!(r.members.is_empty());
    // It does lead the next rebalance under its new id.
    let stored = h.log.last_group_value(GROUP);
    assert_eq!(stored.leader.as_deref(), Some(r.member_id.as_str()));
}

#[test]
fn static_member_replacement_that_cannot_be_stored_keeps_the_old_member_id() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a", "b"]);
    let old_b = static_id(&joined, "b").to_string();
    h.log.fail_next = Some(ResponseError::NotLeaderOrFollower);
    let r = h.join_now(static_req("b", ""));
    assert_eq!(r.error, Some(ResponseError::NotCoordinator));
    assert_eq!(h.static_heartbeat("b", &old_b, 1), Ok(()));
    assert!(h.member_ids(GROUP).contains(&old_b));
}

// ---- Limits and validation -------------------------------------------------------

#[test]
fn group_max_size_refuses_members_beyond_it_and_forgets_them() {
    // Kafka's acceptJoiningMember: while preparing a rebalance, up to
    // group.max.size members may be awaiting the join; a refused member is
    // removed (here: a pending member), so the rebalance does not wait for
    // it.
    let mut h = Harness::with_config(CoordinatorConfig {
        max_size: 3,
        ..config()
    });
    let ids: Vec<String> = (0..4).map(|_| h.join_now(join_req("")).member_id).collect();
    let replies: Vec<ReplyId> = ids.iter().map(|id| h.join(join_req(id))).collect();
    h.advance(2 * DELAY_MS as i64);
    let errors: Vec<Option<ResponseError>> =
        replies.iter().map(|r| h.join_answer(*r).error).collect();
    assert_eq!(errors.iter().filter(|e| e.is_none()).count(), 3);
    assert_eq!(
        errors
            .iter()
            .filter(|e| **e == Some(ResponseError::GroupMaxSizeReached))
            .count(),
        1
    );
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    // Rejoining: the accepted ones get the generation, the refused one is
    // refused again.
    let again: Vec<Option<ResponseError>> = ids
        .iter()
        .map(|id| h.join_now(join_req(id)).error)
        .collect();
    assert_eq!(again, errors);
}

#[test]
fn group_max_size_refuses_a_new_member_of_a_full_stable_group() {
    let mut h = Harness::with_config(CoordinatorConfig {
        max_size: 2,
        ..config()
    });
    h.stable_group(2);
    let r = h.join_now(JoinRequest {
        require_known_member_id: false,
        ..join_req("")
    });
    assert_eq!(r.error, Some(ResponseError::GroupMaxSizeReached));
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn session_timeout_outside_the_configured_bounds_is_invalid_session_timeout() {
    let mut h = Harness::new();
    for (timeout, ok) in [(9, false), (10, true), (600_000, true), (600_001, false)] {
        let r = h.join_now(JoinRequest {
            session_timeout_ms: timeout,
            ..join_req("")
        });
        let expected = if ok {
            ResponseError::MemberIdRequired
        } else {
            ResponseError::InvalidSessionTimeout
        };
        assert_eq!(r.error, Some(expected), "{timeout}");
    }
}

#[test]
fn empty_group_id_is_invalid_group_id() {
    let mut h = Harness::new();
    let r = h.join_now(JoinRequest {
        group_id: String::new(),
        ..join_req("")
    });
    assert_eq!(r.error, Some(ResponseError::InvalidGroupId));
    let s = h.sync_now(SyncRequest {
        group_id: String::new(),
        ..sync_req("m", 1)
    });
    assert_eq!(s.error, Some(ResponseError::InvalidGroupId));
    assert_eq!(
        h.coord.heartbeat("", "m", &None, 1, 0),
        Err(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        h.coord
            .leave("", &[("m".to_string(), None)], 0, &mut h.log)
            .map(|_| ()),
        Err(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        h.coord.delete_group("", &mut h.log),
        Err(ResponseError::InvalidGroupId)
    );
}

#[test]
fn group_of_a_partition_not_led_is_not_coordinator_and_of_a_loading_one_load_in_progress() {
    let mut h = Harness::unloaded(config());
    let other = group_on_other_partition(&h.coord);
    let p = h.coord.partition_for(GROUP);
    h.coord.begin_load(p);

    let join_error = |h: &mut Harness, group: &str| {
        h.join_now(JoinRequest {
            group_id: group.to_string(),
            ..join_req("")
        })
        .error
    };
    assert_eq!(
        join_error(&mut h, GROUP),
        Some(ResponseError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        join_error(&mut h, &other),
        Some(ResponseError::NotCoordinator)
    );
    for (group, expected) in [
        (GROUP.to_string(), ResponseError::CoordinatorLoadInProgress),
        (other.clone(), ResponseError::NotCoordinator),
    ] {
        let s = h.sync_now(SyncRequest {
            group_id: group.clone(),
            ..sync_req("m", 1)
        });
        assert_eq!(s.error, Some(expected));
        let c = h.coord.commit_offsets(
            &CommitRequest {
                group_id: group.clone(),
                ..commit_req("", -1, &[("t", 0, 1)])
            },
            0,
            &mut h.log,
        );
        assert_eq!(c, Err(expected));
        assert_eq!(h.coord.fetch_offsets(&group, None).err(), Some(expected));
        assert_eq!(h.coord.describe(&group).err(), Some(expected));
        assert_eq!(h.coord.delete_group(&group, &mut h.log), Err(expected));
        assert_eq!(
            h.coord
                .leave(&group, &[("m".to_string(), None)], 0, &mut h.log)
                .map(|_| ()),
            Err(expected)
        );
    }
    assert!(h.coord.loading());
    h.coord.load_partition(p, Vec::new(), 0);
    assert!(!h.coord.loading());
    assert_eq!(
        join_error(&mut h, GROUP),
        Some(ResponseError::MemberIdRequired)
    );
}

// ---- Offsets -------------------------------------------------------------------

#[test]
fn member_commits_in_stable_and_in_preparing_rebalance() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let id = joined[1].member_id.clone();
    assert_eq!(
        h.commit(&commit_req(&id, 1, &[("t", 0, 10)])),
        Ok(vec![None])
    );
    h.join(join_req(&joined[0].member_id));
    assert_eq!(h.state(GROUP), Some(GroupState::PreparingRebalance));
    // Kafka allows it: the member learns of the rebalance by heartbeat.
    assert_eq!(
        h.commit(&commit_req(&id, 1, &[("t", 0, 11)])),
        Ok(vec![None])
    );
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(11));
}

#[test]
fn member_commit_during_completing_rebalance_is_rebalance_in_progress() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    let c = h.commit(&commit_req(&joined[1].member_id, 1, &[("t", 0, 10)]));
    assert_eq!(c, Err(ResponseError::RebalanceInProgress));
    assert_eq!(h.fetch("t", 0), None);
}

#[test]
fn member_commit_with_another_generation_or_unknown_member_is_refused() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let id = joined[0].member_id.clone();
    assert_eq!(
        h.commit(&commit_req(&id, 2, &[("t", 0, 1)])),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        h.commit(&commit_req("stranger", 1, &[("t", 0, 1)])),
        Err(ResponseError::UnknownMemberId)
    );
    // Without group management (generation -1) a live group refuses.
    assert_eq!(
        h.commit(&commit_req("", -1, &[("t", 0, 1)])),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn simple_commit_is_accepted_by_an_empty_or_unknown_group() {
    let mut h = Harness::new();
    assert_eq!(
        h.commit(&commit_req("", -1, &[("t", 0, 5)])),
        Ok(vec![None])
    );
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(5));

    let mut h = Harness::new();
    let joined = h.stable_group(1);
    h.leave(&[(&joined[0].member_id, None)]);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    assert_eq!(
        h.commit(&commit_req("", -1, &[("t", 0, 7)])),
        Ok(vec![None])
    );
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(7));
}

#[test]
fn commit_to_an_unknown_group_with_a_generation_is_illegal_generation() {
    let mut h = Harness::new();
    assert_eq!(
        h.commit(&commit_req("m", 1, &[("t", 0, 5)])),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(h.state(GROUP), None);
}

#[test]
fn commit_metadata_longer_than_the_limit_fails_that_partition_only() {
    let mut h = Harness::new();
    let mut req = commit_req("", -1, &[("t", 0, 5), ("t", 1, 6)]);
    req.partitions[0].metadata = Some("x".repeat(4097));
    req.partitions[1].metadata = Some("y".repeat(4096));
    assert_eq!(
        h.commit(&req),
        Ok(vec![Some(ResponseError::OffsetMetadataTooLarge), None])
    );
    assert_eq!(h.fetch("t", 0), None);
    assert_eq!(h.fetch("t", 1).map(|c| c.metadata.len()), Some(4096));
}

#[test]
fn committed_metadata_and_leader_epoch_come_back_from_fetch() {
    let mut h = Harness::new();
    h.now = 1234;
    let mut req = commit_req("", -1, &[("t", 3, 42)]);
    req.partitions[0].leader_epoch = 7;
    req.partitions[0].metadata = Some("checkpoint".to_string());
    assert_eq!(h.commit(&req), Ok(vec![None]));
    assert_eq!(
        h.fetch("t", 3),
        Some(Committed {
            offset: 42,
            leader_epoch: 7,
            metadata: "checkpoint".to_string(),
            commit_timestamp: 1234,
            expire_timestamp: -1,
        })
    );
    let all = h.coord.fetch_offsets(GROUP, None).expect("coordinator");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, ("t".to_string(), 3));
}

#[test]
fn fetch_of_unknown_partitions_and_groups_has_no_offset() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 5)]))
        .expect("committed");
    assert_eq!(h.fetch("t", 1), None);
    assert_eq!(h.fetch("u", 0), None);
    let r = h
        .coord
        .fetch_offsets("no-such-group", Some(&[("t".to_string(), 0)]))
        .expect("coordinator");
    assert_eq!(r, vec![(("t".to_string(), 0), None)]);
    assert_eq!(h.coord.fetch_offsets("no-such-group", None), Ok(Vec::new()));
}

#[test]
fn failed_offset_append_answers_every_partition_with_kafkas_mapping() {
    let mut h = Harness::new();
    h.log.fail_next = Some(ResponseError::NotLeaderOrFollower);
    let mut req = commit_req("", -1, &[("t", 0, 5), ("t", 1, 6)]);
    req.partitions[1].metadata = Some("x".repeat(5000));
    assert_eq!(
        h.commit(&req),
        Ok(vec![
            Some(ResponseError::NotCoordinator),
            Some(ResponseError::OffsetMetadataTooLarge)
        ])
    );
    assert_eq!(h.fetch("t", 0), None);
}

/// A Stable consumer group of one member subscribed to `topics`.
fn consumer_group(h: &mut Harness, topics: &[&str]) -> String {
    let joined = h.form_group(vec![join_req("").tap_protocols(subscription(topics))]);
    h.stabilize(&joined);
    joined[0].member_id.clone()
}

trait TapProtocols {
    fn tap_protocols(self, metadata: Bytes) -> Self;
}

impl TapProtocols for JoinRequest {
    fn tap_protocols(mut self, metadata: Bytes) -> Self {
        for p in &mut self.protocols {
            p.1 = metadata.clone();
        }
        self
    }
}

#[test]
fn offset_delete_of_an_unknown_group_is_group_id_not_found() {
    let mut h = Harness::new();
    assert_eq!(
        h.coord
            .delete_offsets(GROUP, &[("t".to_string(), 0)], &mut h.log),
        Err(ResponseError::GroupIdNotFound)
    );
}

#[test]
fn offset_delete_of_a_topic_a_consumer_group_subscribes_to_is_group_subscribed_to_topic() {
    let mut h = Harness::new();
    let member = consumer_group(&mut h, &["t1"]);
    h.commit(&commit_req(&member, 1, &[("t1", 0, 1), ("t2", 0, 2)]))
        .expect("committed");
    let r = h.coord.delete_offsets(
        GROUP,
        &[("t1".to_string(), 0), ("t2".to_string(), 0)],
        &mut h.log,
    );
    assert_eq!(
        r,
        Ok(vec![Some(ResponseError::GroupSubscribedToTopic), None])
    );
    assert_eq!(h.fetch("t1", 0).map(|c| c.offset), Some(1));
    assert_eq!(h.fetch("t2", 0), None);
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        BTreeSet::from([("t2".to_string(), 0)])
    );
}

#[test]
fn offset_delete_of_a_consumer_group_with_unreadable_subscriptions_keeps_every_offset() {
    // Kafka's isSubscribedToTopic: when the subscriptions cannot be read,
    // every topic counts as subscribed, to be safe.
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req("")]);
    h.stabilize(&joined);
    let member = joined[0].member_id.clone();
    h.commit(&commit_req(&member, 1, &[("t", 0, 1)]))
        .expect("committed");
    let r = h
        .coord
        .delete_offsets(GROUP, &[("t".to_string(), 0)], &mut h.log);
    assert_eq!(r, Ok(vec![Some(ResponseError::GroupSubscribedToTopic)]));
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(1));
}

#[test]
fn offset_delete_of_a_live_group_of_another_protocol_type_is_non_empty_group() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![JoinRequest {
        protocol_type: "connect".to_string(),
        ..join_req("")
    }]);
    h.stabilize(&joined);
    assert_eq!(
        h.coord
            .delete_offsets(GROUP, &[("t".to_string(), 0)], &mut h.log),
        Err(ResponseError::NonEmptyGroup)
    );
}

#[test]
fn offset_delete_of_an_empty_group_deletes_and_writes_tombstones() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 1), ("t", 1, 2)]))
        .expect("committed");
    let r = h.coord.delete_offsets(
        GROUP,
        &[("t".to_string(), 0), ("u".to_string(), 0)],
        &mut h.log,
    );
    assert_eq!(r, Ok(vec![None, None]));
    assert_eq!(h.fetch("t", 0), None);
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(2));
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        BTreeSet::from([("t".to_string(), 0)])
    );
}

#[test]
fn delete_group_of_a_live_group_is_non_empty_group() {
    let mut h = Harness::new();
    h.stable_group(1);
    assert_eq!(
        h.coord.delete_group(GROUP, &mut h.log),
        Err(ResponseError::NonEmptyGroup)
    );
}

#[test]
fn delete_group_of_an_unknown_group_is_group_id_not_found() {
    let mut h = Harness::new();
    assert_eq!(
        h.coord.delete_group(GROUP, &mut h.log),
        Err(ResponseError::GroupIdNotFound)
    );
}

#[test]
fn delete_group_writes_tombstones_for_the_group_and_every_offset() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let id = joined[0].member_id.clone();
    h.commit(&commit_req(
        &id,
        1,
        &[("t", 0, 1), ("t", 1, 2), ("u", 0, 3)],
    ))
    .expect("committed");
    h.leave(&[(&id, None)]);
    assert_eq!(h.coord.delete_group(GROUP, &mut h.log), Ok(()));
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        BTreeSet::from([
            ("t".to_string(), 0),
            ("t".to_string(), 1),
            ("u".to_string(), 0)
        ])
    );
    assert_eq!(h.log.group_values(GROUP).last(), Some(&None));
    assert_eq!(h.state(GROUP), None);
    assert_eq!(h.fetch("t", 0), None);
    assert!(h.coord.list().is_empty());
}

// ---- Offset retention ------------------------------------------------------------

#[test]
fn offsets_of_an_empty_consumer_group_expire_a_retention_after_it_emptied() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let id = joined[0].member_id.clone();
    h.commit(&commit_req(&id, 1, &[("t", 0, 1)]))
        .expect("committed");
    for _ in 0..25 {
        h.advance(200);
        assert_eq!(h.heartbeat(&id, 1), Ok(()));
    }
    assert_eq!(h.leave(&[(&id, None)]), vec![None]);
    let emptied = h.now;
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));

    // A retention after the commit is not enough.
    assert_eq!(
        h.coord
            .expire_offsets(emptied + RETENTION_MS - 1, &mut h.log),
        0
    );
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(1));
    assert_eq!(
        h.coord.expire_offsets(emptied + RETENTION_MS, &mut h.log),
        1
    );
    assert_eq!(h.fetch("t", 0), None);
    assert_eq!(h.state(GROUP), None, "a group with nothing left is removed");
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        BTreeSet::from([("t".to_string(), 0)])
    );
    assert_eq!(h.log.group_values(GROUP).last(), Some(&None));
}

#[test]
fn offsets_of_a_standalone_group_expire_a_retention_after_their_commit() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 1)]))
        .expect("committed");
    h.now = 5_000;
    h.commit(&commit_req("", -1, &[("t", 1, 2)]))
        .expect("committed");

    assert_eq!(h.coord.expire_offsets(RETENTION_MS - 1, &mut h.log), 0);
    assert_eq!(h.coord.expire_offsets(RETENTION_MS, &mut h.log), 1);
    assert_eq!(h.fetch("t", 0), None);
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(2));
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));

    assert_eq!(h.coord.expire_offsets(5_000 + RETENTION_MS, &mut h.log), 1);
    assert_eq!(h.state(GROUP), None);
    assert_eq!(h.log.offset_tombstones(GROUP).len(), 2);
}

#[test]
fn explicit_expire_timestamp_of_a_commit_is_honoured() {
    // OffsetCommit v2-v4's retention time: the offset expires at its own
    // expire timestamp rather than a retention after the commit.
    let mut h = Harness::new();
    let mut req = commit_req("", -1, &[("t", 0, 1)]);
    req.retention_time_ms = 1_000;
    h.commit(&req).expect("committed");
    assert_eq!(h.fetch("t", 0).map(|c| c.expire_timestamp), Some(1_000));
    assert_eq!(h.coord.expire_offsets(999, &mut h.log), 0);
    assert_eq!(h.coord.expire_offsets(1_000, &mut h.log), 1);
    assert_eq!(h.fetch("t", 0), None);
}

#[test]
fn offsets_of_topics_a_stable_consumer_group_subscribes_to_do_not_expire() {
    let mut h = Harness::new();
    let member = consumer_group(&mut h, &["t1"]);
    let mut req = commit_req(&member, 1, &[("t1", 0, 1), ("t1", 1, 1), ("t2", 0, 2)]);
    h.commit(&req).expect("committed");
    // Even with an expire timestamp of its own (Kafka filters subscribed
    // topics out before it looks at the timestamps).
    req.partitions = vec![req.partitions[1].clone()];
    req.retention_time_ms = 10;
    h.commit(&req).expect("committed");

    let later = h.now + RETENTION_MS;
    let keep_alive = |h: &mut Harness| {
        while h.now < later {
            h.advance(400);
            assert_eq!(h.heartbeat(&member, 1), Ok(()));
        }
    };
    keep_alive(&mut h);
    assert_eq!(h.coord.expire_offsets(h.now, &mut h.log), 1);
    assert_eq!(h.fetch("t1", 0).map(|c| c.offset), Some(1));
    assert_eq!(h.fetch("t1", 1).map(|c| c.offset), Some(1));
    assert_eq!(h.fetch("t2", 0), None);
    assert_eq!(h.state(GROUP), Some(GroupState::Stable));
}

#[test]
fn offsets_of_a_rebalancing_group_do_not_expire() {
    // Kafka's removeExpiredOffsets expires nothing of a group that is
    // preparing or completing a rebalance.
    let mut h = Harness::new();
    let member = consumer_group(&mut h, &["t1"]);
    let mut req = commit_req(&member, 1, &[("t2", 0, 2)]);
    req.retention_time_ms = 10;
    h.commit(&req).expect("committed");
    // The only member rejoins: the group completes the join at once and
    // waits for the assignment.
    h.join(join_req(&member).tap_protocols(subscription(&["t1", "t3"])));
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    assert_eq!(
        h.coord.expire_offsets(h.now + 2 * RETENTION_MS, &mut h.log),
        0
    );
    assert_eq!(h.fetch("t2", 0).map(|c| c.offset), Some(2));
}

// ---- Loading and unloading -------------------------------------------------------

#[test]
fn records_loaded_into_a_fresh_coordinator_give_back_offsets_and_the_stable_group() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let leader = leader_of(&joined).member_id.clone();
    let follower = follower_of(&joined).member_id.clone();
    let mut req = commit_req(&follower, 1, &[("t", 0, 10), ("t", 1, 11)]);
    req.partitions[0].metadata = Some("m".to_string());
    req.partitions[0].leader_epoch = 3;
    h.commit(&req).expect("committed");
    let offsets = h.coord.fetch_offsets(GROUP, None).expect("coordinator");

    let p = h.coord.partition_for(GROUP);
    let mut fresh = Harness::unloaded(config());
    fresh.now = h.now + 10;
    fresh
        .coord
        .load_partition(p, h.log.entries_on(p), fresh.now);

    assert_eq!(fresh.coord.fetch_offsets(GROUP, None), Ok(offsets));
    let described = fresh
        .coord
        .describe(GROUP)
        .expect("coordinator")
        .expect("group");
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(described.protocol, "range");
    assert_eq!(described.protocol_type, "consumer");
    for m in &described.members {
        assert_eq!(m.assignment, assignment_for(&m.member_id));
        assert_eq!(m.metadata, meta("range-meta"));
    }
    assert_eq!(
        fresh.member_ids(GROUP),
        BTreeSet::from([leader.clone(), follower.clone()])
    );
    assert_eq!(fresh.heartbeat(&follower, 1), Ok(()));
    assert_eq!(
        fresh.heartbeat(&leader, 2),
        Err(ResponseError::IllegalGeneration)
    );
    let s = fresh.sync_now(sync_req(&follower, 1));
    assert_eq!(s.assignment, assignment_for(&follower));
    // The loaded leader still leads: its rejoin starts a rebalance.
    let reply = fresh.join(join_req(&leader));
    let f = fresh.join(join_req(&follower));
    let r = fresh.join_answer(reply);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.leader, leader);
    assert_eq!(fresh.join_answer(f).generation_id, 2);
}

#[test]
fn loaded_members_sessions_restart_at_load_time() {
    let mut h = Harness::new();
    let joined = h.stable_group(1);
    let p = h.coord.partition_for(GROUP);
    let mut fresh = Harness::unloaded(config());
    fresh.now = 100_000;
    fresh
        .coord
        .load_partition(p, h.log.entries_on(p), fresh.now);
    fresh.advance(SESSION_MS as i64 - 1);
    assert_eq!(fresh.heartbeat(&joined[0].member_id, 1), Ok(()));
    fresh.advance(SESSION_MS as i64);
    assert_eq!(fresh.state(GROUP), Some(GroupState::Empty));
}

#[test]
fn load_honours_tombstones() {
    let mut h = Harness::new();
    let other = (0..)
        .map(|i| format!("g{i}"))
        .find(|g| h.coord.partition_for(g) == h.coord.partition_for(GROUP))
        .expect("a group on the same partition");
    h.commit(&commit_req("", -1, &[("t", 0, 1), ("t", 1, 2)]))
        .expect("committed");
    h.coord
        .delete_offsets(GROUP, &[("t".to_string(), 0)], &mut h.log)
        .expect("deleted");
    // A group that had a generation, then was deleted.
    let joined = h.form_group(vec![JoinRequest {
        group_id: other.clone(),
        ..join_req("")
    }]);
    h.coord
        .leave(
            &other,
            &[(joined[0].member_id.clone(), None)],
            h.now,
            &mut h.log,
        )
        .expect("left");
    h.coord
        .commit_offsets(
            &CommitRequest {
                group_id: other.clone(),
                ..commit_req("", -1, &[("t", 0, 1)])
            },
            h.now,
            &mut h.log,
        )
        .expect("committed");
    h.coord.delete_group(&other, &mut h.log).expect("deleted");

    let p = h.coord.partition_for(GROUP);
    let mut fresh = Harness::unloaded(config());
    fresh.coord.load_partition(p, h.log.entries_on(p), 0);
    assert_eq!(fresh.fetch("t", 0), None);
    assert_eq!(fresh.fetch("t", 1).map(|c| c.offset), Some(2));
    assert_eq!(fresh.state(&other), None);
    assert_eq!(
        fresh
            .coord
            .list()
            .into_iter()
            .map(|g| g.group_id)
            .collect::<Vec<_>>(),
        vec![GROUP.to_string()]
    );
}

#[test]
fn loaded_group_over_the_max_size_rebalances_and_the_last_joiners_are_refused() {
    // Kafka's onGroupLoaded: a group larger than group.max.size (lowered
    // since) is made to rebalance, and the members beyond the limit are
    // refused when they rejoin.
    let mut h = Harness::new();
    let joined = h.stable_group(4);
    let p = h.coord.partition_for(GROUP);
    let mut fresh = Harness::unloaded(CoordinatorConfig {
        max_size: 2,
        ..config()
    });
    fresh.coord.load_partition(p, h.log.entries_on(p), 0);
    assert_eq!(fresh.state(GROUP), Some(GroupState::PreparingRebalance));
    let replies: Vec<ReplyId> = joined
        .iter()
        .map(|r| fresh.join(join_req(&r.member_id)))
        .collect();
    let errors: Vec<Option<ResponseError>> = replies
        .iter()
        .map(|r| fresh.join_answer(*r).error)
        .collect();
    assert_eq!(
        errors,
        vec![
            None,
            None,
            Some(ResponseError::GroupMaxSizeReached),
            Some(ResponseError::GroupMaxSizeReached)
        ]
    );
    assert_eq!(fresh.member_ids(GROUP).len(), 2);
    assert_eq!(fresh.state(GROUP), Some(GroupState::CompletingRebalance));
}

#[test]
fn unloading_a_partition_answers_parked_requests_not_coordinator() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let leader = leader_of(&joined).member_id.clone();
    let reply = h.join(join_req(&leader));
    assert!(h.parked(reply));
    let p = h.coord.partition_for(GROUP);
    let out = h.coord.unload_partition(p);
    h.deliver(out);
    assert_eq!(
        h.join_answer(reply).error,
        Some(ResponseError::NotCoordinator)
    );
    let again = h.join_now(join_req(&leader));
    assert_eq!(again.error, Some(ResponseError::NotCoordinator));
    assert_eq!(
        h.coord.describe(GROUP).err(),
        Some(ResponseError::NotCoordinator)
    );
    assert!(h.coord.next_deadline().is_none());
}

#[test]
fn unloading_a_partition_answers_parked_syncs_not_coordinator() {
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    let f = h.sync(sync_req(&follower_of(&joined).member_id, 1));
    let out = h.coord.unload_partition(h.coord.partition_for(GROUP));
    h.deliver(out);
    assert_eq!(h.sync_answer(f).error, Some(ResponseError::NotCoordinator));
}

// ---- Random sequences ------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    JoinChanged(usize),
    Sync(usize),
    Heartbeat(usize),
    HeartbeatAll,
    /// Every client takes its natural next step, as a consumer would.
    Progress,
    Leave(usize),
    Commit(usize),
    /// A transactional commit with the client's membership (KIP-447).
    TxnCommit(usize),
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    let member = 0..4usize;
    prop_oneof![
        3 => member.clone().prop_map(Step::Join),
        1 => member.clone().prop_map(Step::JoinChanged),
        3 => member.clone().prop_map(Step::Sync),
        3 => member.clone().prop_map(Step::Heartbeat),
        3 => Just(Step::HeartbeatAll),
        4 => Just(Step::Progress),
        1 => member.clone().prop_map(Step::Leave),
        1 => member.clone().prop_map(Step::Commit),
        1 => member.prop_map(Step::TxnCommit),
        5 => (0..200i64).prop_map(Step::Advance),
        1 => (200..1500i64).prop_map(Step::Advance),
    ]
}

/// What one client knows about itself.
#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    leader: bool,
    members: Vec<String>,
    join: Option<ReplyId>,
    sync: Option<ReplyId>,
    metadata_version: u32,
    /// Told to (re)join: by an error, or not a member yet.
    needs_join: bool,
    /// Joined a generation and has not got its assignment.
    needs_sync: bool,
}

struct Sim {
    h: Harness,
    clients: Vec<Client>,
    generation_seen: i32,
    /// Generation -> the leader every answer of it named.
    leaders: HashMap<i32, String>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            h: Harness::new(),
            clients: vec![Client::default(); 4],
            generation_seen: 0,
            leaders: HashMap::new(),
        }
    }

    fn request(&self, i: usize) -> JoinRequest {
        let c = &self.clients[i];
        with_protocols(
            JoinRequest {
                session_timeout_ms: 300 + 100 * i as i32,
                rebalance_timeout_ms: 400 + 150 * i as i32,
                ..join_req(&c.member_id)
            },
            &[("range", &format!("v{}", c.metadata_version))],
        )
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Join(i) | Step::JoinChanged(i) => {
                if matches!(s, Step::JoinChanged(_)) {
                    self.clients[i].metadata_version += 1;
                }
                if self.clients[i].join.is_none() {
                    let id = self.h.join(self.request(i));
                    self.clients[i].join = Some(id);
                }
            }
            Step::Sync(i) => {
                let c = &self.clients[i];
                if c.member_id.is_empty() || c.sync.is_some() || c.generation == 0 {
                    return;
                }
                let mut req = sync_req(&c.member_id, c.generation);
                if c.leader {
                    req.assignments = c
                        .members
                        .iter()
                        .map(|m| (m.clone(), assignment_for(m)))
                        .collect();
                }
                let id = self.h.sync(req);
                self.clients[i].sync = Some(id);
            }
            Step::Heartbeat(i) => {
                let c = &self.clients[i];
                if c.member_id.is_empty() {
                    return;
                }
                let (m, g) = (c.member_id.clone(), c.generation);
                match self.h.heartbeat(&m, g) {
                    Err(ResponseError::UnknownMemberId) => self.forget(i),
                    Err(_) => self.clients[i].needs_join = true,
                    Ok(()) => {}
                }
            }
            Step::Progress => {
                for i in 0..self.clients.len() {
                    let c = &self.clients[i];
                    let next = if c.join.is_some() || c.sync.is_some() {
                        Step::Heartbeat(i)
                    } else if c.needs_join || c.member_id.is_empty() {
                        Step::Join(i)
                    } else if c.needs_sync {
                        Step::Sync(i)
                    } else {
                        Step::Heartbeat(i)
                    };
                    self.run(&next);
                }
            }
            Step::HeartbeatAll => {
                for i in 0..self.clients.len() {
                    self.run(&Step::Heartbeat(i));
                }
            }
            Step::Leave(i) => {
                let c = &self.clients[i];
                if c.member_id.is_empty() {
                    return;
                }
                let m = c.member_id.clone();
                self.h.leave(&[(&m, None)]);
                self.forget(i);
            }
            Step::TxnCommit(i) => {
                let c = &self.clients[i];
                let generation = if c.member_id.is_empty() {
                    -1
                } else {
                    c.generation
                };
                let req = of_producer(
                    100 + i as i64,
                    txn_req(&c.member_id, generation, &[("t", i as i32, 1)]),
                );
                // Whatever the group's state, the commit is refused only
                // for its membership (never REBALANCE_IN_PROGRESS).
                match self.h.txn_commit(&req) {
                    Ok(r) => assert_eq!(r, vec![None]),
                    Err(e) => assert!(
                        matches!(
                            e,
                            ResponseError::UnknownMemberId | ResponseError::IllegalGeneration
                        ),
                        "transactional commit answered {e:?}"
                    ),
                }
            }
            Step::Commit(i) => {
                let c = &self.clients[i];
                let req = commit_req(&c.member_id, c.generation, &[("t", i as i32, 1)]);
                let _ = self.h.commit(&req);
            }
            Step::Advance(ms) => self.h.advance(ms),
        }
        self.collect();
    }

    fn forget(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.member_id.clear();
        c.generation = 0;
        c.leader = false;
        c.members.clear();
        c.needs_join = true;
        c.needs_sync = false;
    }

    /// Reads the answers that arrived into the clients.
    fn collect(&mut self) {
        for i in 0..self.clients.len() {
            if let Some(id) = self.clients[i].join {
                if let Some(r) = self.h.joins.remove(&id) {
                    self.clients[i].join = None;
                    self.on_join(i, r);
                }
            }
            if let Some(id) = self.clients[i].sync {
                if let Some(r) = self.h.syncs.remove(&id) {
                    self.clients[i].sync = None;
                    match r.error {
                        None => self.clients[i].needs_sync = false,
                        Some(ResponseError::UnknownMemberId) => self.forget(i),
                        Some(_) => {
                            self.clients[i].needs_sync = false;
                            self.clients[i].needs_join = true;
                        }
                    }
                }
            }
        }
    }

    fn on_join(&mut self, i: usize, r: JoinResult) {
        match r.error {
            None => {
                assert!(
                    r.generation_id >= self.generation_seen,
                    "generation went back from {} to {}",
                    self.generation_seen,
                    r.generation_id
                );
                self.generation_seen = r.generation_id;
                let leader = self
                    .leaders
                    .entry(r.generation_id)
                    .or_insert_with(|| r.leader.clone());
                assert_eq!(
                    *leader, r.leader,
                    "two leaders in generation {}",
                    r.generation_id
                );
                let is_leader = r.leader == r.member_id;
                if is_leader {
                    assert!(
                        r.members.iter().any(|m| m.member_id == r.member_id),
                        "the leader is one of the members it is told about"
                    );
                } else {
                    assert!(r.members.is_empty(), "a follower gets no member list");
                }
                let c = &mut self.clients[i];
                c.member_id = r.member_id;
                c.generation = r.generation_id;
                c.leader = is_leader;
                c.members = r.members.into_iter().map(|m| m.member_id).collect();
                c.needs_join = false;
                c.needs_sync = true;
            }
            Some(ResponseError::MemberIdRequired) => {
                self.clients[i].member_id = r.member_id;
                self.clients[i].needs_join = true;
            }
            Some(_) => self.forget(i),
        }
    }

    fn check(&self) {
        let h = &self.h;
        let described = h.coord.describe(GROUP).expect("coordinator");
        let parked: Vec<ReplyId> = h.sent.difference(&h.answered).copied().collect();
        if let Some(d) = &described {
            let ids: BTreeSet<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
            assert_eq!(ids.len(), d.members.len(), "member ids are unique");
            if matches!(d.state, GroupState::Stable | GroupState::Empty) {
                assert!(
                    parked.is_empty(),
                    "{:?} group with parked replies {parked:?}",
                    d.state
                );
            }
            if matches!(
                d.state,
                GroupState::Stable | GroupState::CompletingRebalance
            ) {
                let leader = self
                    .leaders
                    .get(&self.generation_seen)
                    .expect("a generation was handed out");
                assert!(
                    ids.contains(leader.as_str()),
                    "the leader {leader} of generation {} is a member of {ids:?}",
                    self.generation_seen
                );
            }
            if d.state == GroupState::Empty {
                assert!(d.members.is_empty());
            }
        } else {
            assert!(parked.is_empty());
        }
        let stored: Vec<i32> = h
            .log
            .group_values(GROUP)
            .into_iter()
            .flatten()
            .map(|v| v.generation)
            .collect();
        assert!(
            stored.windows(2).all(|w| w[0] <= w[1]),
            "stored generations go back: {stored:?}"
        );
    }

    /// The members stop: every parked reply is answered once the clock
    /// passes every timeout, and the group ends up empty.
    fn drain(&mut self) {
        let limit = self.h.now + 2 * NEW_MEMBER_JOIN_TIMEOUT_MS;
        while let Some(next) = self.h.coord.next_deadline() {
            assert!(next <= limit, "a deadline keeps moving away: {next}");
            self.h.advance(next - self.h.now);
            self.collect();
            self.check();
        }
        let parked: Vec<ReplyId> = self.h.sent.difference(&self.h.answered).copied().collect();
        assert!(parked.is_empty(), "never answered: {parked:?}");
        assert!(self.h.member_ids(GROUP).is_empty());
        assert!(matches!(
            self.h.state(GROUP),
            Some(GroupState::Empty) | None
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_join_sync_heartbeat_leave_sequences_keep_the_group_invariants(
        steps in proptest::collection::vec(step(), 1..150)
    ) {
        let mut sim = Sim::new();
        for s in &steps {
            sim.run(s);
            sim.check();
        }
        sim.drain();
    }
}

#[test]
fn decoded_records_are_only_of_the_group_and_its_offsets() {
    // The coordinator writes nothing but GroupMetadata and OffsetCommit
    // records of the groups it was asked about.
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    h.commit(&commit_req(&joined[0].member_id, 1, &[("t", 0, 1)]))
        .expect("committed");
    for r in h.log.decoded() {
        match r {
            GroupRecord::Group { group, .. } => assert_eq!(group, GROUP),
            GroupRecord::Offset { key, .. } => assert_eq!(
                key,
                OffsetKey {
                    group: GROUP.to_string(),
                    topic: "t".to_string(),
                    partition: 0
                }
            ),
            GroupRecord::Other { key_version } => panic!("record type {key_version}"),
        }
    }
}

#[test]
fn offsets_of_deleted_topics_are_removed_with_tombstones() {
    let mut h = Harness::new();
    let simple = commit_req("", -1, &[("gone", 0, 5), ("gone", 1, 6), ("kept", 0, 7)]);
    assert_eq!(h.commit(&simple), Ok(vec![None, None, None]));
    let removed = h
        .coord
        .remove_offsets_of_topics(&["gone".to_string()], &mut h.log);
    assert_eq!(removed, 2);
    assert_eq!(h.fetch("gone", 0), None);
    assert_eq!(h.fetch("gone", 1), None);
    assert_eq!(h.fetch("kept", 0).map(|c| c.offset), Some(7));
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        [("gone".to_string(), 0), ("gone".to_string(), 1)]
            .into_iter()
            .collect()
    );
    // Nothing left to remove: no further records.
    let records = h.log.decoded().len();
    assert_eq!(
        h.coord
            .remove_offsets_of_topics(&["gone".to_string()], &mut h.log),
        0
    );
    assert_eq!(h.log.decoded().len(), records);
}

// ---- Transactional offset commits ------------------------------------------------

const PRODUCER: i64 = 4_000;

/// A TxnOffsetCommit of producer [`PRODUCER`] at epoch 0.
fn txn_req(member_id: &str, generation: i32, partitions: &[(&str, i32, i64)]) -> TxnCommitRequest {
    let plain = commit_req(member_id, generation, partitions);
    TxnCommitRequest {
        group_id: plain.group_id,
        transactional_id: "txn".to_string(),
        producer_id: PRODUCER,
        producer_epoch: 0,
        member_id: plain.member_id,
        generation_id: plain.generation_id,
        group_instance_id: None,
        partitions: plain.partitions,
    }
}

fn of_producer(producer_id: i64, mut req: TxnCommitRequest) -> TxnCommitRequest {
    req.producer_id = producer_id;
    req
}

impl Harness {
    fn txn_commit(
        &mut self,
        req: &TxnCommitRequest,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.coord.txn_offset_commit(req, self.now, &mut self.log)
    }

    /// Writes the producer's marker to [`GROUP`]'s partition and tells the
    /// coordinator, as the replica manager's marker path does.
    fn end_txn(&mut self, producer_id: i64, commit: bool) -> usize {
        let p = self.coord.partition_for(GROUP);
        self.log.marker(p, producer_id, commit);
        self.coord.complete_transaction(p, producer_id, commit)
    }

    fn pending(&self, topic: &str, partition: i32) -> bool {
        self.coord.has_pending(GROUP, topic, partition)
    }

    /// A new coordinator that loads [`GROUP`]'s partition from the log.
    fn reloaded(&self) -> Harness {
        let p = self.coord.partition_for(GROUP);
        let mut fresh = Harness::unloaded(config());
        fresh.now = self.now;
        fresh
            .coord
            .load_partition(p, self.log.entries_on(p), self.now);
        fresh.log = MemLog {
            logs: self.log.logs.clone(),
            ..MemLog::default()
        };
        fresh
    }
}

#[test]
fn kip98_transactional_offsets_are_pending_and_invisible_until_the_transaction_commits() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 5)]))
        .expect("committed");
    assert_eq!(
        h.txn_commit(&txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)])),
        Ok(vec![None, None])
    );
    // Stored as one transactional batch of the producer.
    let p = h.coord.partition_for(GROUP);
    assert_eq!(h.log.transactional, vec![(p, PRODUCER, 0, 2)]);
    // OffsetFetch still sees the committed offset, or none.
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(5));
    assert_eq!(h.fetch("t", 1), None);
    assert!(h.pending("t", 0) && h.pending("t", 1));
    assert!(!h.pending("t", 2));
}

#[test]
fn kip98_offsets_of_a_committed_transaction_become_committed() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 5)]))
        .expect("committed");
    let mut req = txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)]);
    req.partitions[0].metadata = Some("m".to_string());
    req.partitions[0].leader_epoch = 4;
    h.now = 77;
    h.txn_commit(&req).expect("stored");
    h.now = 100;
    assert_eq!(h.end_txn(PRODUCER, true), 2);
    assert_eq!(
        h.fetch("t", 0),
        Some(Committed {
            offset: 10,
            leader_epoch: 4,
            metadata: "m".to_string(),
            commit_timestamp: 77,
            expire_timestamp: -1,
        })
    );
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(11));
    assert!(!h.pending("t", 0) && !h.pending("t", 1));
    // A second marker for the same producer changes nothing.
    assert_eq!(h.end_txn(PRODUCER, true), 0);
}

#[test]
fn kip98_offsets_of_an_aborted_transaction_are_dropped() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 5)]))
        .expect("committed");
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)]))
        .expect("stored");
    assert_eq!(h.end_txn(PRODUCER, false), 0);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(5));
    assert_eq!(h.fetch("t", 1), None);
    assert!(!h.pending("t", 0));
}

#[test]
fn kip98_a_marker_completes_only_its_producers_offsets() {
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    h.txn_commit(&of_producer(7, txn_req("", -1, &[("t", 1, 20)])))
        .expect("stored");
    h.end_txn(7, true);
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(20));
    assert_eq!(h.fetch("t", 0), None);
    assert!(h.pending("t", 0));
}

#[test]
fn kip98_a_marker_on_another_partition_leaves_the_groups_offsets_pending() {
    // Kafka's handleTxnCompletion completes the producer's offsets in the
    // groups of the partition the marker was written to, and only those.
    let mut h = Harness::new();
    let other = group_on_other_partition(&h.coord);
    let mut req = txn_req("", -1, &[("t", 0, 10)]);
    h.txn_commit(&req).expect("stored");
    req.group_id = other.clone();
    h.txn_commit(&req).expect("stored");
    h.end_txn(PRODUCER, true);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(10));
    assert!(h.coord.has_pending(&other, "t", 0));
    let p = h.coord.partition_for(&other);
    h.log.marker(p, PRODUCER, false);
    h.coord.complete_transaction(p, PRODUCER, false);
    assert!(!h.coord.has_pending(&other, "t", 0));
}

#[test]
fn kip447_require_stable_sees_partitions_with_pending_offsets() {
    // OffsetFetch v7+ with require_stable answers UNSTABLE_OFFSET_COMMIT
    // for exactly the partitions `has_pending` names (the handler maps it).
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 5), ("t", 1, 6)]))
        .expect("committed");
    h.txn_commit(&txn_req("", -1, &[("t", 1, 10)]))
        .expect("stored");
    assert!(!h.pending("t", 0));
    assert!(h.pending("t", 1));
    assert!(!h.coord.has_pending("another-group", "t", 1));
    h.end_txn(PRODUCER, true);
    assert!(!h.pending("t", 1));
}

#[test]
fn kip447_membership_is_checked_when_given() {
    let mut h = Harness::new();
    let joined = h.stable_group(2);
    let member = joined[0].member_id.clone();
    let check = |h: &mut Harness, req: TxnCommitRequest| h.txn_commit(&req).map(|_| ());
    assert_eq!(
        check(&mut h, txn_req(&member, 2, &[("t", 0, 1)])),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        check(&mut h, txn_req("stranger", 1, &[("t", 0, 1)])),
        Err(ResponseError::UnknownMemberId)
    );
    // A generation without a member id is checked too.
    assert_eq!(
        check(&mut h, txn_req("", 1, &[("t", 0, 1)])),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(check(&mut h, txn_req(&member, 1, &[("t", 0, 1)])), Ok(()));
    // Versions 0-2 carry no membership: a live group takes the offsets.
    assert_eq!(check(&mut h, txn_req("", -1, &[("t", 1, 1)])), Ok(()));
    assert!(h.pending("t", 0) && h.pending("t", 1));
}

#[test]
fn kip447_static_members_are_checked_by_instance_id() {
    let mut h = Harness::new();
    let joined = h.stable_static_group(&["a"]);
    let member = joined[0].member_id.clone();
    let with_instance = |member: &str, instance: &str| TxnCommitRequest {
        group_instance_id: Some(instance.to_string()),
        ..txn_req(member, 1, &[("t", 0, 1)])
    };
    assert_eq!(
        h.txn_commit(&with_instance("old-id", "a")),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        h.txn_commit(&with_instance(&member, "unknown")),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(h.txn_commit(&with_instance(&member, "a")), Ok(vec![None]));
}

#[test]
fn kip447_a_rebalancing_group_takes_transactional_offsets_of_its_generation() {
    // Unlike OffsetCommit, which answers REBALANCE_IN_PROGRESS while the
    // group completes a rebalance, the transactional commit does not look
    // at the group's state (ClassicGroup.validateOffsetCommit).
    let mut h = Harness::new();
    let joined = h.form_group(vec![join_req(""), join_req("")]);
    assert_eq!(h.state(GROUP), Some(GroupState::CompletingRebalance));
    let member = joined[0].member_id.clone();
    assert_eq!(
        h.commit(&commit_req(&member, 1, &[("t", 0, 1)])),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.txn_commit(&txn_req(&member, 1, &[("t", 0, 1)])),
        Ok(vec![None])
    );
}

#[test]
fn txn_commit_creates_an_unknown_group_only_without_a_generation_and_once_stored() {
    // Kafka 4.0's validateTransactionalOffsetCommit: an unknown group is
    // created as a group that only stores offsets when the generation is
    // negative, and is ILLEGAL_GENERATION otherwise.
    let mut h = Harness::new();
    assert_eq!(
        h.txn_commit(&txn_req("m", 3, &[("t", 0, 1)])),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(h.state(GROUP), None);
    h.log.fail_next = Some(ResponseError::NotLeaderOrFollower);
    assert_eq!(
        h.txn_commit(&txn_req("", -1, &[("t", 0, 1)])),
        Ok(vec![Some(ResponseError::NotCoordinator)])
    );
    assert_eq!(h.state(GROUP), None);
    assert!(!h.pending("t", 0));
    assert_eq!(
        h.txn_commit(&txn_req("", -1, &[("t", 0, 1)])),
        Ok(vec![None])
    );
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
}

#[test]
fn txn_commit_metadata_longer_than_the_limit_fails_that_partition_only() {
    let mut h = Harness::with_config(CoordinatorConfig {
        offset_metadata_max_bytes: 3,
        ..config()
    });
    let mut req = txn_req("", -1, &[("t", 0, 1), ("t", 1, 2)]);
    req.partitions[0].metadata = Some("long".to_string());
    assert_eq!(
        h.txn_commit(&req),
        Ok(vec![Some(ResponseError::OffsetMetadataTooLarge), None])
    );
    assert!(!h.pending("t", 0));
    assert!(h.pending("t", 1));
    // Nothing to store at all: no append.
    req.partitions.truncate(1);
    let appends = h.log.appends;
    assert_eq!(
        h.txn_commit(&req),
        Ok(vec![Some(ResponseError::OffsetMetadataTooLarge)])
    );
    assert_eq!(h.log.appends, appends);
}

#[test]
fn failed_transactional_append_answers_with_kafkas_mapping_and_leaves_nothing_pending() {
    for (stored, answered) in [
        (
            ResponseError::NotEnoughReplicas,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::KafkaStorageError,
            ResponseError::NotCoordinator,
        ),
        (
            ResponseError::RecordListTooLarge,
            ResponseError::UnknownServerError,
        ),
        // A fenced producer epoch comes back from the log as it is.
        (
            ResponseError::InvalidProducerEpoch,
            ResponseError::InvalidProducerEpoch,
        ),
    ] {
        let mut h = Harness::new();
        h.log.fail_next = Some(stored);
        assert_eq!(
            h.txn_commit(&txn_req("", -1, &[("t", 0, 1), ("t", 1, 2)])),
            Ok(vec![Some(answered), Some(answered)])
        );
        assert!(!h.pending("t", 0) && !h.pending("t", 1));
    }
}

#[test]
fn txn_commit_of_a_partition_not_led_or_loading_is_refused() {
    let mut h = Harness::unloaded(config());
    assert_eq!(
        h.txn_commit(&txn_req("", -1, &[("t", 0, 1)])),
        Err(ResponseError::NotCoordinator)
    );
    h.coord.begin_load(h.coord.partition_for(GROUP));
    assert_eq!(
        h.txn_commit(&txn_req("", -1, &[("t", 0, 1)])),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    let mut h = Harness::new();
    let mut req = txn_req("", -1, &[("t", 0, 1)]);
    req.group_id.clear();
    assert_eq!(h.txn_commit(&req), Err(ResponseError::InvalidGroupId));
}

#[test]
fn a_plain_commit_stored_after_the_transactional_one_wins_when_the_transaction_commits() {
    // Kafka's CommitRecordMetadataAndOffset: the record later in the log
    // wins, whichever kind it is; a reload from the log agrees.
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)]))
        .expect("stored");
    h.commit(&commit_req("", -1, &[("t", 0, 20)]))
        .expect("committed");
    assert_eq!(h.end_txn(PRODUCER, true), 1);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(20));
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(11));
    let fresh = h.reloaded();
    assert_eq!(
        fresh.coord.fetch_offsets(GROUP, None),
        h.coord.fetch_offsets(GROUP, None)
    );
}

#[test]
fn a_transactional_commit_stored_after_a_plain_one_replaces_it_when_the_transaction_commits() {
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 20)]))
        .expect("committed");
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    assert_eq!(h.end_txn(PRODUCER, true), 1);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(10));
    assert_eq!(h.reloaded().fetch("t", 0).map(|c| c.offset), Some(10));
}

#[test]
fn reload_replays_transactional_records_and_their_markers() {
    // Kafka's loadGroupsAndOffsets: a COMMIT marker makes the producer's
    // offsets committed, an ABORT drops them, and offsets of a transaction
    // without a marker stay pending.
    let mut h = Harness::new();
    h.commit(&commit_req(
        "",
        -1,
        &[("t", 0, 1), ("t", 1, 1), ("t", 2, 1)],
    ))
    .expect("committed");
    h.txn_commit(&of_producer(1, txn_req("", -1, &[("t", 0, 10)])))
        .expect("stored");
    h.txn_commit(&of_producer(2, txn_req("", -1, &[("t", 1, 20)])))
        .expect("stored");
    h.txn_commit(&of_producer(3, txn_req("", -1, &[("t", 2, 30)])))
        .expect("stored");
    h.end_txn(1, true);
    h.end_txn(2, false);

    let mut fresh = h.reloaded();
    assert_eq!(fresh.fetch("t", 0).map(|c| c.offset), Some(10));
    assert_eq!(fresh.fetch("t", 1).map(|c| c.offset), Some(1));
    assert_eq!(fresh.fetch("t", 2).map(|c| c.offset), Some(1));
    assert!(!fresh.pending("t", 0) && !fresh.pending("t", 1));
    assert!(fresh.pending("t", 2));
    // The open transaction completes on the new coordinator.
    assert_eq!(fresh.end_txn(3, true), 1);
    assert_eq!(fresh.fetch("t", 2).map(|c| c.offset), Some(30));
}

#[test]
fn a_group_known_only_from_pending_offsets_is_loaded() {
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    let fresh = h.reloaded();
    assert_eq!(fresh.state(GROUP), Some(GroupState::Empty));
    assert!(fresh.pending("t", 0));
}

#[test]
fn a_marker_written_while_the_partition_loads_is_applied_after_the_load() {
    // The loader may have read the log before the marker was written: the
    // marker is kept and applied when the load ends; one the loader did
    // read is harmless to apply again.
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    let p = h.coord.partition_for(GROUP);
    for marker_in_the_read in [false, true] {
        let before = h.log.entries_on(p);
        let mut log = MemLog {
            logs: h.log.logs.clone(),
            ..MemLog::default()
        };
        log.marker(p, PRODUCER, true);
        let read = if marker_in_the_read {
            log.entries_on(p)
        } else {
            before
        };
        let mut fresh = Harness::unloaded(config());
        fresh.coord.begin_load(p);
        assert_eq!(fresh.coord.complete_transaction(p, PRODUCER, true), 0);
        fresh.coord.load_partition(p, read, 0);
        assert_eq!(fresh.fetch("t", 0).map(|c| c.offset), Some(10));
        assert!(!fresh.pending("t", 0));
    }
}

#[test]
fn a_marker_for_a_partition_not_coordinated_is_ignored() {
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    let p = h.coord.partition_for(GROUP);
    let out = h.coord.unload_partition(p);
    h.deliver(out);
    assert_eq!(h.coord.complete_transaction(p, PRODUCER, true), 0);
    // The partition's next coordinator reads the marker from the log.
    h.log.marker(p, PRODUCER, true);
    assert_eq!(h.reloaded().fetch("t", 0).map(|c| c.offset), Some(10));
}

#[test]
fn unloading_drops_pending_offsets_and_a_reload_brings_them_back() {
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    let p = h.coord.partition_for(GROUP);
    let out = h.coord.unload_partition(p);
    h.deliver(out);
    let entries = h.log.entries_on(p);
    h.coord.load_partition(p, entries, h.now);
    assert!(h.pending("t", 0));
    assert_eq!(h.end_txn(PRODUCER, true), 1);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(10));
}

#[test]
fn a_group_with_pending_offsets_is_not_removed_by_expiration() {
    // Kafka: a group whose offsets all expired is removed only when no
    // transaction holds pending offsets of it.
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    let later = 10 * RETENTION_MS;
    assert_eq!(h.coord.expire_offsets(later, &mut h.log), 0);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
    assert!(h.pending("t", 0));
    h.end_txn(PRODUCER, false);
    h.coord.expire_offsets(later, &mut h.log);
    assert_eq!(h.state(GROUP), None);
}

#[test]
fn an_offset_with_a_pending_transactional_offset_does_not_expire() {
    // Kafka 4.0's cleanupExpiredOffsets.
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 1), ("t", 1, 1)]))
        .expect("committed");
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10)]))
        .expect("stored");
    assert_eq!(h.coord.expire_offsets(RETENTION_MS, &mut h.log), 1);
    assert_eq!(h.fetch("t", 0).map(|c| c.offset), Some(1));
    assert_eq!(h.fetch("t", 1), None);
    assert_eq!(h.state(GROUP), Some(GroupState::Empty));
}

#[test]
fn delete_group_deletes_pending_offsets_with_tombstones() {
    // Kafka 4.0's deleteAllOffsets: an empty group is deleted even while a
    // transaction holds offsets of it, and those get tombstones too, so the
    // transaction's COMMIT does not bring them back, now or on reload.
    let mut h = Harness::new();
    h.commit(&commit_req("", -1, &[("t", 0, 1)]))
        .expect("committed");
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)]))
        .expect("stored");
    assert_eq!(h.coord.delete_group(GROUP, &mut h.log), Ok(()));
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        [("t".to_string(), 0), ("t".to_string(), 1)]
            .into_iter()
            .collect()
    );
    assert_eq!(h.state(GROUP), None);
    assert_eq!(h.end_txn(PRODUCER, true), 0);
    assert_eq!(h.fetch("t", 0), None);
    let fresh = h.reloaded();
    assert_eq!(fresh.fetch("t", 0), None);
    assert_eq!(fresh.fetch("t", 1), None);
    assert_eq!(fresh.state(GROUP), None);
}

#[test]
fn offset_delete_deletes_the_partitions_pending_offsets() {
    // Kafka 4.0: a tombstone is written when the partition has a committed
    // or a pending offset, and it removes both.
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("t", 0, 10), ("t", 1, 11)]))
        .expect("stored");
    assert_eq!(
        h.coord
            .delete_offsets(GROUP, &[("t".to_string(), 0)], &mut h.log),
        Ok(vec![None])
    );
    assert_eq!(
        h.log.offset_tombstones(GROUP),
        [("t".to_string(), 0)].into_iter().collect()
    );
    assert!(!h.pending("t", 0));
    assert!(h.pending("t", 1));
    assert_eq!(h.end_txn(PRODUCER, true), 1);
    assert_eq!(h.fetch("t", 0), None);
    assert_eq!(h.fetch("t", 1).map(|c| c.offset), Some(11));
    let fresh = h.reloaded();
    assert_eq!(fresh.fetch("t", 0), None);
    assert_eq!(fresh.fetch("t", 1).map(|c| c.offset), Some(11));
}

#[test]
fn deleting_a_topic_deletes_its_pending_transactional_offsets() {
    let mut h = Harness::new();
    h.txn_commit(&txn_req("", -1, &[("gone", 0, 10), ("kept", 0, 11)]))
        .expect("stored");
    assert_eq!(
        h.coord
            .remove_offsets_of_topics(&["gone".to_string()], &mut h.log),
        1
    );
    assert!(!h.pending("gone", 0));
    h.end_txn(PRODUCER, true);
    assert_eq!(h.fetch("gone", 0), None);
    assert_eq!(h.fetch("kept", 0).map(|c| c.offset), Some(11));
    assert_eq!(h.reloaded().fetch("gone", 0), None);
}

// ---- Random transactional sequences against a model -----------------------------

#[derive(Debug, Clone)]
enum TxnStep {
    Plain(i32, i64),
    Txn(usize, i32, i64),
    End(usize, bool),
    Delete(i32),
    Reload,
}

fn txn_step() -> impl Strategy<Value = TxnStep> {
    let partition = 0..3i32;
    let producer = 0..2usize;
    prop_oneof![
        2 => (partition.clone(), 0..100i64).prop_map(|(p, o)| TxnStep::Plain(p, o)),
        3 => (producer.clone(), partition.clone(), 0..100i64)
            .prop_map(|(x, p, o)| TxnStep::Txn(x, p, o)),
        2 => (producer, any::<bool>()).prop_map(|(x, c)| TxnStep::End(x, c)),
        1 => partition.prop_map(TxnStep::Delete),
        1 => Just(TxnStep::Reload),
    ]
}

/// The rules as a list of events in log order: the visible offset of a
/// partition is that of its latest plain commit or committed transactional
/// commit after its latest tombstone; a partition is pending while an open
/// transaction committed it after that tombstone.
/// A transaction: (producer index, its number among the producer's).
type TxnId = (usize, u32);

#[derive(Default)]
struct TxnModel {
    /// (position, partition, offset, transaction).
    commits: Vec<(usize, i32, i64, Option<TxnId>)>,
    tombstones: Vec<(usize, i32)>,
    /// Per producer: the number of its current transaction.
    current: [u32; 2],
    committed: BTreeSet<TxnId>,
    position: usize,
}

impl TxnModel {
    fn next(&mut self) -> usize {
        self.position += 1;
        self.position
    }

    fn deleted_at(&self, partition: i32) -> usize {
        self.tombstones
            .iter()
            .filter(|(_, p)| *p == partition)
            .map(|(at, _)| *at)
            .max()
            .unwrap_or(0)
    }

    fn visible(&self, partition: i32) -> Option<i64> {
        let since = self.deleted_at(partition);
        self.commits
            .iter()
            .filter(|(at, p, _, txn)| {
                *p == partition && *at > since && txn.is_none_or(|t| self.committed.contains(&t))
            })
            .max_by_key(|(at, ..)| *at)
            .map(|(_, _, offset, _)| *offset)
    }

    fn pending(&self, partition: i32) -> bool {
        let since = self.deleted_at(partition);
        self.commits.iter().any(|(at, p, _, txn)| {
            *p == partition
                && *at > since
                && txn.is_some_and(|(producer, n)| self.current[producer] == n)
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_plain_and_transactional_commits_follow_the_log_order_rule_and_survive_reloads(
        steps in proptest::collection::vec(txn_step(), 1..40)
    ) {
        let producers = [11i64, 12];
        let mut h = Harness::new();
        let mut model = TxnModel::default();
        for s in &steps {
            match *s {
                TxnStep::Plain(p, offset) => {
                    h.commit(&commit_req("", -1, &[("t", p, offset)])).expect("committed");
                    let at = model.next();
                    model.commits.push((at, p, offset, None));
                }
                TxnStep::Txn(x, p, offset) => {
                    let req = of_producer(producers[x], txn_req("", -1, &[("t", p, offset)]));
                    prop_assert_eq!(h.txn_commit(&req), Ok(vec![None]));
                    let at = model.next();
                    model.commits.push((at, p, offset, Some((x, model.current[x]))));
                }
                TxnStep::End(x, commit) => {
                    h.end_txn(producers[x], commit);
                    model.next();
                    if commit {
                        model.committed.insert((x, model.current[x]));
                    }
                    model.current[x] += 1;
                }
                TxnStep::Delete(p) => {
                    // Only a group that exists can have offsets deleted.
                    if h.state(GROUP).is_some() {
                        let appends = h.log.appends;
                        let r = h.coord.delete_offsets(GROUP, &[("t".to_string(), p)], &mut h.log);
                        prop_assert_eq!(r, Ok(vec![None]));
                        // A tombstone is written when something was stored.
                        if h.log.appends > appends {
                            let at = model.next();
                            model.tombstones.push((at, p));
                        }
                    }
                }
                TxnStep::Reload => {
                    let fresh = h.reloaded();
                    h.coord = fresh.coord;
                }
            }
            for p in 0..3 {
                prop_assert_eq!(h.fetch("t", p).map(|c| c.offset), model.visible(p), "partition {} after {:?}", p, s);
                prop_assert_eq!(h.pending("t", p), model.pending(p), "pending {} after {:?}", p, s);
            }
        }
        let fresh = h.reloaded();
        for p in 0..3 {
            prop_assert_eq!(fresh.fetch("t", p), h.fetch("t", p));
            prop_assert_eq!(fresh.pending("t", p), h.pending("t", p));
        }
    }
}
