//! Three `riffle server` processes on loopback form a KRaft quorum. The
//! leader is killed with SIGKILL while topics are being created; a new
//! leader is elected and every topic whose creation was acknowledged
//! exists afterwards, on every node, also after the killed node restarts.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A blocking request/response exchange on a new connection.
fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("cluster-test")))
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    let mut buf = Bytes::from(buf);
    ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(std::io::Error::other)?;
    Resp::decode(&mut buf, version).map_err(std::io::Error::other)
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
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(1)
                .with_replication_factor(1)]);
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
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
    let resp: FindCoordinatorResponse =
        call(cluster.broker_addr(i), ApiKey::FindCoordinator, 4, &req).ok()?;
    let c = resp.coordinators.first()?;
    (c.error_code == 0).then_some(c.node_id.0)
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
