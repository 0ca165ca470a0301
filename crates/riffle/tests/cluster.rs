//! Three `riffle server` processes on loopback form a KRaft quorum. The
//! leader is killed with SIGKILL while topics are being created; a new
//! leader is elected and every topic whose creation was acknowledged
//! exists afterwards, on every node, also after the killed node restarts.
//! Group and transaction coordinators are spread over the nodes: groups
//! survive a coordinator restart, and a transaction over partitions led by
//! several nodes gets its markers on every one of them.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use common::{
    add_partitions_request, call_within, create_topics_request, end_txn_request, free_port,
    init_producer_id_request, produce_request, record_batch, sb,
};

/// A blocking request/response exchange on a new connection, waiting for
/// the response at most 10 s.
fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> std::io::Result<Resp> {
    call_within(Duration::from_secs(10), addr, key, version, req)
}

struct NodeSpec {
    id: i32,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    config: PathBuf,
}

struct Cluster {
    nodes: Vec<NodeSpec>,
    children: Vec<Option<Child>>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn new(n: i32) -> Cluster {
        Cluster::with(n, "")
    }

    fn with(n: i32, extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut nodes: Vec<NodeSpec> = (1..=n)
            .map(|id| NodeSpec {
                id,
                port: free_port(),
                controller_port: free_port(),
                dir: tmp.path().join(format!("node{id}")),
                config: tmp.path().join(format!("node{id}.properties")),
            })
            .collect();
        let voters: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect();
        let cluster_id = run_ok(&["storage", "random-uuid"]).trim().to_string();
        for n in &mut nodes {
            let text = format!(
                "process.roles=broker,controller\nnode.id={}\n\
                 listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 controller.quorum.voters={}\nlog.dirs={}\nnum.partitions=1\n{}\n",
                n.id,
                n.port,
                n.controller_port,
                n.port,
                voters.join(","),
                n.dir.display(),
                extra
            );
            std::fs::write(&n.config, text).unwrap();
            run_ok(&[
                "storage",
                "format",
                "--config",
                n.config.to_str().unwrap(),
                "--cluster-id",
                &cluster_id,
            ]);
        }
        let mut c = Cluster {
            children: nodes.iter().map(|_| None).collect(),
            nodes,
            _tmp: tmp,
        };
        for i in 0..c.nodes.len() {
            c.start(i);
        }
        c
    }

    fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        let log = std::fs::File::create(n.dir.with_extension("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_riffle"))
            .args(["server", "--config", n.config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    fn broker_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[i].port))
    }

    fn controller_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[i].controller_port))
    }

    fn index_of(&self, id: i32) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// The leader as a live voter reports it in DescribeQuorum.
    fn leader(&self) -> Option<i32> {
        for (i, child) in self.children.iter().enumerate() {
            if child.is_none() {
                continue;
            }
            let req = DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                    .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
            ]);
            let Ok(resp) = call::<_, DescribeQuorumResponse>(
                self.controller_addr(i),
                ApiKey::DescribeQuorum,
                1,
                &req,
            ) else {
                continue;
            };
            let p = &resp.topics[0].partitions[0];
            if p.error_code == 0 {
                return Some(p.leader_id.0);
            }
        }
        None
    }

    fn wait_for_leader(&self, not: Option<i32>) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.leader().filter(|l| Some(*l) != not) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no leader elected; see {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let p = n.dir.with_extension("log");
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "\n--- node {} ({}):\n{}",
                    n.id,
                    p.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Tries to create `name` through each live node until one answers
    /// with no error (acknowledged) or TOPIC_ALREADY_EXISTS.
    fn create_topic(&self, name: &str) -> bool {
        self.create_topic_with(name, 1)
    }

    /// [`Cluster::create_topic`] with `partitions` partitions (one replica
    /// each).
    fn create_topic_with(&self, name: &str, partitions: i32) -> bool {
        let req = create_topics_request(name, partitions);
        for (i, child) in self.children.iter().enumerate() {
            if child.is_none() {
                continue;
            }
            let Ok(resp) =
                call::<_, CreateTopicsResponse>(self.broker_addr(i), ApiKey::CreateTopics, 5, &req)
            else {
                continue;
            };
            let code = resp.topics[0].error_code;
            if code == 0 || code == 36 {
                return true;
            }
        }
        false
    }

    fn topics_on(&self, i: usize) -> Option<Vec<String>> {
        let req = MetadataRequest::default().with_topics(None);
        let resp: MetadataResponse = call(self.broker_addr(i), ApiKey::Metadata, 9, &req).ok()?;
        Some(
            resp.topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "riffle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, cluster: &Cluster, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; {}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_topics_survive_kill_9_of_the_leader() {
    let mut cluster = Cluster::new(3);
    let first = cluster.wait_for_leader(None);
    let mut acknowledged = Vec::new();
    let mut attempt = 0;
    // Topics before the kill.
    while acknowledged.len() < 10 {
        let name = format!("before-{attempt}");
        attempt += 1;
        if cluster.create_topic(&name) {
            acknowledged.push(name);
        }
    }
    // Kill the leader in the middle of creating topics: a creation
    // in flight on another thread may or may not be acknowledged.
    let leader_index = cluster.index_of(first);
    let addrs: Vec<SocketAddr> = (0..3).map(|i| cluster.broker_addr(i)).collect();
    let racer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for k in 0..40 {
            let name = format!("racing-{k}");
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]);
            for a in &addrs {
                if let Ok(r) = call::<_, CreateTopicsResponse>(*a, ApiKey::CreateTopics, 5, &req) {
                    if r.topics[0].error_code == 0 || r.topics[0].error_code == 36 {
                        acked.push(name.clone());
                        break;
                    }
                }
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(200));
    cluster.kill(leader_index);
    let second = cluster.wait_for_leader(Some(first));
    assert_ne!(first, second);
    acknowledged.extend(racer.join().unwrap());
    // Topics after the failover.
    let mut after = 0;
    while after < 10 {
        let name = format!("after-{attempt}");
        attempt += 1;
        if cluster.create_topic(&name) {
            acknowledged.push(name);
            after += 1;
        }
    }
    let check = |cluster: &Cluster, i: usize| {
        let Some(topics) = cluster.topics_on(i) else {
            return false;
        };
        acknowledged.iter().all(|t| topics.contains(t))
    };
    for i in 0..3 {
        if i != leader_index {
            wait_until("every acknowledged topic on a survivor", &cluster, || {
                check(&cluster, i)
            });
        }
    }
    // The killed node comes back and catches up.
    cluster.start(leader_index);
    wait_until(
        "every acknowledged topic on the restarted node",
        &cluster,
        || check(&cluster, leader_index),
    );
}

#[test]
fn a_minority_cannot_commit_and_the_majority_can() {
    let mut cluster = Cluster::new(3);
    wait_until("the cluster to create a topic", &cluster, || {
        cluster.create_topic("with-three")
    });
    let leader = cluster.wait_for_leader(None);
    // The operator's view, like kafka-metadata-quorum.
    let controller = format!(
        "127.0.0.1:{}",
        cluster.nodes[cluster.index_of(leader)].controller_port
    );
    let status = run_ok(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &controller,
        "--status",
    ]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("LeaderId:") && l.trim_end().ends_with(&leader.to_string())),
        "{status}"
    );
    assert!(status.contains("CurrentVoters:"), "{status}");
    let replication = run_ok(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &controller,
        "--replication",
    ]);
    assert_eq!(
        replication
            .lines()
            .filter(|l| l.contains("Leader") || l.contains("Follower"))
            .count(),
        3,
        "{replication}"
    );
    // Stop two nodes: the last one cannot commit anything.
    let others: Vec<usize> = (0..3).filter(|i| cluster.nodes[*i].id != leader).collect();
    cluster.kill(others[0]);
    cluster.kill(others[1]);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(2_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("with-one")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let i = cluster.index_of(leader);
    if let Ok(r) =
        call::<_, CreateTopicsResponse>(cluster.broker_addr(i), ApiKey::CreateTopics, 5, &req)
    {
        assert_ne!(r.topics[0].error_code, 0, "a lone node committed a topic");
    }
    // Bring one back: a majority again, and the topic can be created.
    cluster.start(others[0]);
    wait_until("a majority to commit again", &cluster, || {
        cluster.create_topic("with-two")
    });
}

/// KIP-630: with snapshots every few hundred bytes of metadata, the log
/// start moves past what a stopped node holds; restarted, it fetches the
/// leader's snapshot with FetchSnapshot and then the rest of the log.
#[test]
fn a_node_behind_the_log_start_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::with(3, "metadata.log.max.record.bytes.between.snapshots=300");
    wait_until("the cluster to create a topic", &cluster, || {
        cluster.create_topic("first")
    });
    let leader = cluster.wait_for_leader(None);
    let stopped = (0..3).find(|i| cluster.nodes[*i].id != leader).unwrap();
    cluster.kill(stopped);
    let mut created = vec!["first".to_string()];
    for k in 0..30 {
        let name = format!("while-down-{k}");
        wait_until("a topic creation", &cluster, || cluster.create_topic(&name));
        created.push(name);
    }
    // The leader wrote a snapshot and dropped the log before it.
    let leader_dir = cluster.nodes[cluster.index_of(leader)]
        .dir
        .join("__cluster_metadata-0");
    wait_until("a snapshot on the leader", &cluster, || {
        std::fs::read_dir(&leader_dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".checkpoint")
        })
    });
    cluster.start(stopped);
    wait_until("the restarted node to have every topic", &cluster, || {
        cluster
            .topics_on(stopped)
            .is_some_and(|t| created.iter().all(|c| t.contains(c)))
    });
    let log = std::fs::read_to_string(cluster.nodes[stopped].dir.with_extension("log")).unwrap();
    assert!(
        log.contains("snapshot downloaded"),
        "the restarted node should have fetched the leader's snapshot; {}",
        cluster.logs()
    );
    let stopped_dir = cluster.nodes[stopped].dir.join("__cluster_metadata-0");
    assert!(
        std::fs::read_dir(&stopped_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".checkpoint")),
        "the restarted node should hold the fetched snapshot; {}",
        cluster.logs()
    );
}

/// The coordinator of `group` as node `i` answers FindCoordinator (v4),
/// once it names one.
fn find_coordinator(cluster: &Cluster, i: usize, group: &str) -> Option<i32> {
    find_coordinator_of(cluster, i, 0, group)
}

/// The coordinator of `key` (key type 0: a group, 1: a transactional id)
/// as node `i` answers FindCoordinator (v4), once it names one.
fn find_coordinator_of(cluster: &Cluster, i: usize, key_type: i8, key: &str) -> Option<i32> {
    common::find_coordinator(cluster.broker_addr(i), key_type, key).map(|(id, _)| id)
}

/// A simple commit (generation -1, no member) of `offset` for `topic`-0.
fn commit(cluster: &Cluster, i: usize, group: &str, topic: &str, offset: i64) -> Option<i16> {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(StrBytes::from_static_str("cluster"))),
                ]),
        ]);
    let resp: OffsetCommitResponse =
        call(cluster.broker_addr(i), ApiKey::OffsetCommit, 8, &req).ok()?;
    Some(resp.topics[0].partitions[0].error_code)
}

/// The committed offset of `topic`-0 (OffsetFetch v8), or the group's error.
fn fetch(cluster: &Cluster, i: usize, group: &str, topic: &str) -> Option<Result<i64, i16>> {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let resp: OffsetFetchResponse =
        call(cluster.broker_addr(i), ApiKey::OffsetFetch, 8, &req).ok()?;
    let g = &resp.groups[0];
    if g.error_code != 0 {
        return Some(Err(g.error_code));
    }
    Some(Ok(g.topics[0].partitions[0].committed_offset))
}

#[test]
fn groups_are_coordinated_by_every_node_and_survive_a_coordinator_restart() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.wait_for_leader(None);
    // A node that is not the active controller: auto-creation and the
    // creation of __consumer_offsets are forwarded to the controller.
    let follower = (0..3).find(|&i| cluster.nodes[i].id != leader).unwrap();
    let topic = "group-cluster";
    wait_until("auto-creation through a follower", &cluster, || {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_static_str(topic))))]))
            .with_allow_auto_topic_creation(true);
        call::<_, MetadataResponse>(cluster.broker_addr(follower), ApiKey::Metadata, 9, &req)
            .is_ok_and(|r| r.topics[0].error_code == 0)
    });
    let groups: Vec<String> = (0..12).map(|i| format!("cluster-group-{i}")).collect();
    let mut coordinators = Vec::new();
    for g in &groups {
        let mut found = None;
        wait_until(&format!("a coordinator for {g}"), &cluster, || {
            found = find_coordinator(&cluster, follower, g);
            found.is_some()
        });
        coordinators.push(found.unwrap());
    }
    let distinct: std::collections::BTreeSet<i32> = coordinators.iter().copied().collect();
    assert!(
        distinct.len() > 1,
        "every group landed on one node ({distinct:?}); the test needs several"
    );
    for (n, (g, &c)) in groups.iter().zip(&coordinators).enumerate() {
        let at = cluster.index_of(c);
        let mut code = None;
        wait_until(&format!("a commit for {g} at node {c}"), &cluster, || {
            code = commit(&cluster, at, g, topic, 100 + n as i64);
            code == Some(0)
        });
        // Any other node is not the coordinator of this group.
        let other = (at + 1) % 3;
        assert_eq!(commit(&cluster, other, g, topic, 1), Some(16)); // NOT_COORDINATOR
        assert_eq!(fetch(&cluster, at, g, topic), Some(Ok(100 + n as i64)));
    }
    // SIGKILL one coordinator and start it again: it reloads its groups'
    // offsets from __consumer_offsets.
    let victim = coordinators[0];
    let vi = cluster.index_of(victim);
    cluster.kill(vi);
    cluster.start(vi);
    for (n, (g, &c)) in groups.iter().zip(&coordinators).enumerate() {
        if c != victim {
            continue;
        }
        wait_until(
            &format!("{g}'s offset after node {c} restarted"),
            &cluster,
            || fetch(&cluster, vi, g, topic) == Some(Ok(100 + n as i64)),
        );
    }
}

/// Like [`wait_until`], for a value: retries `f` until it returns `Ok`,
/// and on timeout reports its last `Err` with the nodes' logs.
fn wait_for<T>(what: &str, cluster: &Cluster, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {last}; {}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const TXN_TOPIC: &str = "txn-spread";
const TXN_PARTITIONS: i32 = 6;
const TXN_ID: &str = "cluster-txn";
/// Kafka's error codes the transaction test tells apart.
const CONCURRENT_TRANSACTIONS: i16 = 51;
/// The control record types of a transaction marker's key (KIP-98).
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// The leader of every partition of `topic` (Metadata v9 at node `i`),
/// once the topic has `partitions` partitions that all have one.
fn partition_leaders(
    cluster: &Cluster,
    i: usize,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<i32, i32>, String> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic)))),
    ]));
    let resp: MetadataResponse =
        call(cluster.broker_addr(i), ApiKey::Metadata, 9, &req).map_err(|e| e.to_string())?;
    let t = &resp.topics[0];
    let leaders: BTreeMap<i32, i32> = t
        .partitions
        .iter()
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    if t.error_code != 0 || leaders.len() != partitions as usize {
        return Err(format!("{t:?}"));
    }
    Ok(leaders)
}

/// One partition's answer to a Fetch, its records decoded.
#[derive(Debug)]
struct PartitionRead {
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset); `None` when the answer had none
    /// (read_uncommitted).
    aborted: Option<Vec<(i64, i64)>>,
    /// Every record of the returned batches, control records included,
    /// in offset order.
    records: Vec<Record>,
}

/// Fetch v12 (the last version naming topics) of `topic`-`partition` from
/// `offset` at node `i`, answering at once; `Err` for a transport error or
/// the partition's error code.
fn fetch_partition(
    cluster: &Cluster,
    i: usize,
    topic: &str,
    partition: i32,
    offset: i64,
    read_committed: bool,
) -> Result<PartitionRead, String> {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse =
        call(cluster.broker_addr(i), ApiKey::Fetch, 12, &req).map_err(|e| e.to_string())?;
    if resp.error_code != 0 {
        return Err(format!("fetch error {}", resp.error_code));
    }
    let p = &resp.responses[0].partitions[0];
    if p.error_code != 0 {
        return Err(format!("partition error {}", p.error_code));
    }
    let mut bytes = p.records.clone().unwrap_or_default();
    let records = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| format!("undecodable records: {e}"))?
        .into_iter()
        .flat_map(|set| set.records)
        .collect();
    Ok(PartitionRead {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        aborted: p.aborted_transactions.as_ref().map(|a| {
            a.iter()
                .map(|t| (t.producer_id.0, t.first_offset))
                .collect()
        }),
        records,
    })
}

/// Reads `topic`-`partition` at node `i` from `offset` as a consumer does,
/// fetch after fetch up to the last stable offset (read_committed) or the
/// high watermark: like Kafka's, a fetch returns the batches of one
/// segment at most. The answers' aborted transactions are gathered.
fn read_partition(
    cluster: &Cluster,
    i: usize,
    topic: &str,
    partition: i32,
    offset: i64,
    read_committed: bool,
) -> Result<PartitionRead, String> {
    let mut read = fetch_partition(cluster, i, topic, partition, offset, read_committed)?;
    loop {
        let end = if read_committed {
            read.last_stable_offset
        } else {
            read.high_watermark
        };
        let next = read.records.last().map_or(offset, |r| r.offset + 1);
        if next >= end {
            return Ok(read);
        }
        let more = fetch_partition(cluster, i, topic, partition, next, read_committed)?;
        if more.records.is_empty() {
            return Err(format!("nothing fetched at {next}, below {end}: {more:?}"));
        }
        read.high_watermark = more.high_watermark;
        read.last_stable_offset = more.last_stable_offset;
        if let (Some(all), Some(new)) = (&mut read.aborted, more.aborted) {
            for a in new {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        read.records.extend(more.records);
    }
}

/// The control record type of a marker (ABORT 0, COMMIT 1), from its key.
fn control_type(r: &Record) -> Option<i16> {
    let key = r.key.as_ref().filter(|_| r.control)?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

fn values(records: &[&Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// The data records a read_committed consumer delivers, as Kafka's fetcher
/// filters them (KIP-98): a producer's transactional records from an
/// aborted transaction's first offset up to its ABORT marker are dropped,
/// and control records are never delivered.
fn visible(read: &PartitionRead) -> Vec<&Record> {
    let mut pending: Vec<(i64, i64)> = read.aborted.clone().unwrap_or_default();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting = BTreeSet::new();
    let mut out = Vec::new();
    for r in &read.records {
        while pending.last().is_some_and(|&(_, first)| first <= r.offset) {
            aborting.insert(pending.pop().unwrap().0);
        }
        if r.control {
            if control_type(r) == Some(CONTROL_ABORT) {
                aborting.remove(&r.producer_id);
            }
        } else if !(r.transactional && aborting.contains(&r.producer_id)) {
            out.push(r);
        }
    }
    out
}

/// InitProducerId v3 for `TXN_ID` at node `i`: (producer id, epoch).
fn init_txn_producer(cluster: &Cluster, i: usize) -> Result<(i64, i16), String> {
    let req = init_producer_id_request(Some(TXN_ID), 60_000);
    let r: InitProducerIdResponse =
        call(cluster.broker_addr(i), ApiKey::InitProducerId, 3, &req).map_err(|e| e.to_string())?;
    if r.error_code != 0 {
        return Err(format!("{r:?}"));
    }
    Ok((r.producer_id.0, r.producer_epoch))
}

/// AddPartitionsToTxn v3 of `partitions` of `TXN_TOPIC` at node `i`: the
/// error code of each partition.
fn add_partitions_to_txn(
    cluster: &Cluster,
    i: usize,
    producer: (i64, i16),
    partitions: &[i32],
) -> Result<BTreeMap<i32, i16>, String> {
    let req = add_partitions_request(TXN_ID, producer, TXN_TOPIC, partitions);
    let r: AddPartitionsToTxnResponse =
        call(cluster.broker_addr(i), ApiKey::AddPartitionsToTxn, 3, &req)
            .map_err(|e| e.to_string())?;
    Ok(r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| &t.results_by_partition)
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect())
}

/// A transactional Produce v9 (acks=all) of one batch of `values` to
/// `TXN_TOPIC`-`partition` at node `i`, sequences from `first_sequence`:
/// the partition's error code and base offset.
fn produce_txn(
    cluster: &Cluster,
    i: usize,
    partition: i32,
    producer: (i64, i16),
    first_sequence: i32,
    values: &[String],
) -> (i16, i64) {
    let batch = record_batch(values, producer, first_sequence, true);
    let req = produce_request(TXN_TOPIC, partition, batch, Some(TXN_ID));
    let r: ProduceResponse = call(cluster.broker_addr(i), ApiKey::Produce, 9, &req).unwrap();
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// EndTxn v3 at node `i`: its error code.
fn end_txn(cluster: &Cluster, i: usize, producer: (i64, i16), commit: bool) -> i16 {
    let req = end_txn_request(TXN_ID, producer, commit);
    let r: EndTxnResponse = call(cluster.broker_addr(i), ApiKey::EndTxn, 3, &req).unwrap();
    r.error_code
}

/// DescribeTransactions v0 of `TXN_ID` at node `i`: its state, producer
/// id and epoch, and partitions of `TXN_TOPIC`.
fn describe_txn(cluster: &Cluster, i: usize) -> Result<(String, i64, i16, Vec<i32>), String> {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(sb(TXN_ID))]);
    let r: DescribeTransactionsResponse = call(
        cluster.broker_addr(i),
        ApiKey::DescribeTransactions,
        0,
        &req,
    )
    .map_err(|e| e.to_string())?;
    let t = &r.transaction_states[0];
    if t.error_code != 0 {
        return Err(format!("{t:?}"));
    }
    let mut partitions: Vec<i32> = t
        .topics
        .iter()
        .filter(|d| d.topic.as_str() == TXN_TOPIC)
        .flat_map(|d| d.partitions.iter().copied())
        .collect();
    partitions.sort_unstable();
    Ok((
        t.transaction_state.to_string(),
        t.producer_id.0,
        t.producer_epoch,
        partitions,
    ))
}

/// KIP-98 across nodes: a transaction over partitions led by several nodes
/// is committed, then another aborted, and each decision reaches every
/// partition: the coordinator writes the markers of the partitions it leads
/// itself and sends WriteTxnMarkers to the other leaders. A read_committed
/// fetch stops at the last stable offset until the marker is there, then
/// returns the committed records; an aborted transaction's records stay in
/// the log and are listed in the fetch's aborted transactions, so a
/// read_committed consumer drops them.
#[test]
fn a_transaction_over_several_nodes_gets_its_markers_on_every_partition() {
    let cluster = Cluster::new(3);
    wait_until("the topic to be created", &cluster, || {
        cluster.create_topic_with(TXN_TOPIC, TXN_PARTITIONS)
    });
    let leaders = wait_for("a leader for every partition", &cluster, || {
        partition_leaders(&cluster, 0, TXN_TOPIC, TXN_PARTITIONS)
    });
    let leading: BTreeSet<i32> = leaders.values().copied().collect();
    assert!(
        leading.len() >= 2,
        "every partition is led by one node ({leaders:?}); the test needs several"
    );
    let partitions: Vec<i32> = leaders.keys().copied().collect();
    let leader_of = |p: i32| cluster.index_of(leaders[&p]);
    for &p in &partitions {
        wait_for(
            &format!("partition {p} served by its leader"),
            &cluster,
            || fetch_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, false),
        );
    }

    let coordinator = wait_for("a transaction coordinator", &cluster, || {
        find_coordinator_of(&cluster, 0, 1, TXN_ID).ok_or_else(|| "none yet".to_string())
    });
    assert!(
        leaders.values().any(|&l| l != coordinator),
        "the coordinator {coordinator} leads every partition ({leaders:?}): no remote markers"
    );
    let at = cluster.index_of(coordinator);
    let producer = wait_for("InitProducerId at the coordinator", &cluster, || {
        init_txn_producer(&cluster, at)
    });
    let (pid, epoch) = producer;

    // The first transaction: three records in every partition, committed.
    let add_all = |what: &str| {
        wait_for(what, &cluster, || {
            let codes = add_partitions_to_txn(&cluster, at, producer, &partitions)?;
            if codes.len() == partitions.len() && codes.values().all(|&c| c == 0) {
                Ok(())
            } else if codes
                .values()
                .all(|&c| c == 0 || c == CONCURRENT_TRANSACTIONS)
            {
                Err(format!("retriable: {codes:?}"))
            } else {
                panic!("AddPartitionsToTxn refused: {codes:?}; {}", cluster.logs())
            }
        })
    };
    add_all("AddPartitionsToTxn of the first transaction");
    assert_eq!(
        describe_txn(&cluster, at),
        Ok(("Ongoing".to_string(), pid, epoch, partitions.clone()))
    );
    let committed: BTreeMap<i32, Vec<String>> = partitions
        .iter()
        .map(|&p| (p, (0..3).map(|k| format!("commit-{p}-{k}")).collect()))
        .collect();
    for &p in &partitions {
        let (code, base) = produce_txn(&cluster, leader_of(p), p, producer, 0, &committed[&p]);
        assert_eq!((code, base), (0, 0), "produce to partition {p}");
    }
    // Open: read_committed stops at the transaction's first offset;
    // read_uncommitted sees its records.
    for &p in &partitions {
        let rc = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, true).unwrap();
        assert!(rc.records.is_empty(), "partition {p}: {rc:?}");
        assert_eq!(
            (rc.last_stable_offset, rc.high_watermark),
            (0, 3),
            "partition {p}"
        );
        assert_eq!(rc.aborted, Some(vec![]), "partition {p}");
        let ru = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, false).unwrap();
        let data: Vec<&Record> = ru.records.iter().collect();
        assert_eq!(values(&data), committed[&p], "partition {p}");
        assert!(
            ru.records
                .iter()
                .all(|r| r.transactional && !r.control && r.producer_id == pid),
            "partition {p}: {ru:?}"
        );
        assert_eq!(ru.aborted, None, "partition {p}");
    }
    assert_eq!(end_txn(&cluster, at, producer, true), 0);
    // The COMMIT marker reaches every partition, local or remote: the
    // records become stable, and the marker takes one offset after them.
    for &p in &partitions {
        wait_for(
            &format!("the COMMIT marker in partition {p}"),
            &cluster,
            || {
                let rc = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, true)?;
                if rc.last_stable_offset != 4 {
                    return Err(format!("{rc:?}"));
                }
                assert_eq!(rc.high_watermark, 4, "partition {p}: {rc:?}");
                assert_eq!(values(&visible(&rc)), committed[&p], "partition {p}");
                assert_eq!(rc.aborted, Some(vec![]), "partition {p}");
                let marker = rc.records.last().unwrap();
                assert!(
                    marker.control
                        && marker.offset == 3
                        && marker.producer_id == pid
                        && control_type(marker) == Some(CONTROL_COMMIT),
                    "partition {p}: {rc:?}"
                );
                Ok(())
            },
        );
    }
    // The coordinator moves from the prepared state to the complete one;
    // as in Kafka, a completed transaction lists no partitions.
    let wait_until_complete = |what: &str, prepared: &str, complete: &str| {
        wait_for(what, &cluster, || match describe_txn(&cluster, at)? {
            (s, ..) if s == prepared => Err(s),
            d => {
                assert_eq!(d, (complete.to_string(), pid, epoch, vec![]));
                Ok(())
            }
        })
    };
    wait_until_complete(
        "the coordinator to complete the commit",
        "PrepareCommit",
        "CompleteCommit",
    );

    // The second transaction: on the same partitions, with records in all
    // but the last one (which only gets the marker), aborted.
    add_all("AddPartitionsToTxn of the second transaction");
    let (empty, with_data) = partitions.split_last().unwrap();
    let nodes_with_data: BTreeSet<i32> = with_data.iter().map(|p| leaders[p]).collect();
    assert!(
        nodes_with_data.len() >= 2,
        "the aborted records are all on one node ({leaders:?})"
    );
    let aborted: BTreeMap<i32, Vec<String>> = with_data
        .iter()
        .map(|&p| (p, (0..3).map(|k| format!("abort-{p}-{k}")).collect()))
        .collect();
    for &p in with_data {
        // The producer's sequences go on across transactions.
        let (code, base) = produce_txn(&cluster, leader_of(p), p, producer, 3, &aborted[&p]);
        assert_eq!((code, base), (0, 4), "produce to partition {p}");
    }
    for &p in with_data {
        let rc = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, true).unwrap();
        assert_eq!(
            (rc.last_stable_offset, rc.high_watermark),
            (4, 7),
            "partition {p}"
        );
        assert_eq!(values(&visible(&rc)), committed[&p], "partition {p}");
    }
    assert_eq!(end_txn(&cluster, at, producer, false), 0);
    wait_until_complete(
        "the coordinator to complete the abort",
        "PrepareAbort",
        "CompleteAbort",
    );
    // Kafka completes a transaction only once every leader has acknowledged
    // its marker, written with acks=all: each partition is stable already.
    for &p in &partitions {
        let has_data = p != *empty;
        let end = if has_data { 8 } else { 5 };
        let rc = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, true).unwrap();
        assert_eq!(
            (rc.last_stable_offset, rc.high_watermark),
            (end, end),
            "partition {p}: {rc:?}"
        );
        let marker = rc.records.last().unwrap();
        assert!(
            marker.control
                && marker.offset == end - 1
                && marker.producer_id == pid
                && control_type(marker) == Some(CONTROL_ABORT),
            "partition {p}: {rc:?}"
        );
        // The aborted batch is listed where it starts; a partition where
        // the transaction wrote nothing has no aborted transaction (Kafka
        // indexes only non-empty ones).
        let listed = if has_data { vec![(pid, 4)] } else { vec![] };
        assert_eq!(rc.aborted.as_ref(), Some(&listed), "partition {p}");
        assert_eq!(values(&visible(&rc)), committed[&p], "partition {p}");
        if has_data {
            let from_abort = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 4, true).unwrap();
            assert_eq!(from_abort.aborted, Some(vec![(pid, 4)]), "partition {p}");
            assert!(
                visible(&from_abort).is_empty(),
                "partition {p}: {from_abort:?}"
            );
        }
        // Aborted records are stored, not dropped.
        let ru = read_partition(&cluster, leader_of(p), TXN_TOPIC, p, 0, false).unwrap();
        let data: Vec<&Record> = ru.records.iter().filter(|r| !r.control).collect();
        let mut expected = committed[&p].clone();
        expected.extend(aborted.get(&p).cloned().unwrap_or_default());
        assert_eq!(values(&data), expected, "partition {p}");
    }
}
