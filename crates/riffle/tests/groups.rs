//! `riffle groups` against a `riffle server` process: a consumer group is
//! driven with raw Kafka requests from this test (FindCoordinator,
//! JoinGroup twice for MEMBER_ID_REQUIRED, SyncGroup with an assignment,
//! OffsetCommit, LeaveGroup; records written with Produce), and the CLI's
//! output and exit codes are checked at each stage: `list`, `describe
//! --offsets/--members/--state`, `reset-offsets` refused while a member is
//! active and dry-run versus `--execute` once the group is empty, and
//! `delete` (NON_EMPTY_GROUP, then success, then GROUP_ID_NOT_FOUND).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use common::{
    call, cells, free_port, numbered_values, produce_request, record_batch, riffle, sb, Run,
    Server, CLIENT_ID,
};

const GROUP: &str = "payments";
const TOPIC: &str = "orders";

// Kafka's error codes the test expects.
const MEMBER_ID_REQUIRED: i16 = 79;

impl Server {
    /// `riffle groups --bootstrap-server <this server> ARGS`.
    fn groups(&self, args: &[&str]) -> Run {
        self.tool("groups", args)
    }
}

impl Run {
    /// The stdout table's rows after the header, split into cells.
    fn rows(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }
}

/// `n` records, not from an idempotent producer.
fn produce(server: &Server, partition: i32, n: usize) {
    let batch = record_batch(&numbered_values(n), (-1, -1), -1, false);
    let req = produce_request(TOPIC, partition, batch, None);
    server.wait_for("a produce to succeed", || {
        let r: ProduceResponse = call(server.addr(), ApiKey::Produce, 8, &req).ok()?;
        (r.responses[0].partition_responses[0].error_code == 0).then_some(())
    });
}

/// Joins the group as a consumer subscribed to the topic, the second
/// JoinGroup carrying the member id of the first (KIP-394); returns the
/// member id and generation.
fn join(server: &Server, coordinator: SocketAddr) -> (String, i32) {
    let mut subscription = BytesMut::new();
    subscription.put_i16(0);
    consumer_protocol_subscription::ConsumerProtocolSubscription::default()
        .with_topics(vec![sb(TOPIC)])
        .encode(&mut subscription, 0)
        .unwrap();
    let request = |member_id: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(sb(member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(sb("range"))
            .with_metadata(subscription.clone().freeze())])
    };
    let first: JoinGroupResponse = server.wait_for("a first JoinGroup answer", || {
        call(coordinator, ApiKey::JoinGroup, 5, &request("")).ok()
    });
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    let member_id = first.member_id.to_string();
    assert!(!member_id.is_empty());
    let joined: JoinGroupResponse =
        call(coordinator, ApiKey::JoinGroup, 5, &request(&member_id)).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.leader.as_str(), member_id, "the only member leads");
    (member_id, joined.generation_id)
}

/// The leader's SyncGroup, assigning itself `partitions`.
fn sync(coordinator: SocketAddr, member_id: &str, generation: i32, partitions: &[i32]) {
    let mut assignment = BytesMut::new();
    assignment.put_i16(0);
    consumer_protocol_assignment::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![consumer_protocol_assignment::TopicPartition::default(
        )
        .with_topic(TopicName(sb(TOPIC)))
        .with_partitions(partitions.to_vec())])
        .encode(&mut assignment, 0)
        .unwrap();
    let assignment = assignment.freeze();
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(sb(member_id))
                .with_assignment(assignment.clone()),
        ]);
    let r: SyncGroupResponse = call(coordinator, ApiKey::SyncGroup, 3, &req).unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.assignment, assignment);
}

fn commit(coordinator: SocketAddr, member_id: &str, generation: i32, partition: i32, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ]);
    let r: OffsetCommitResponse = call(coordinator, ApiKey::OffsetCommit, 8, &req).unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "{r:?}");
}

fn leave(coordinator: SocketAddr, member_id: &str) {
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(sb(member_id))
        ]);
    let r: LeaveGroupResponse = call(coordinator, ApiKey::LeaveGroup, 3, &req).unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.members[0].error_code, 0, "{r:?}");
}

#[test]
fn a_consumer_group_through_its_life() {
    let server = Server::start(&["group.initial.rebalance.delay.ms=0"]);
    server.create_topic(TOPIC, 2);
    produce(&server, 0, 5);
    produce(&server, 1, 3);
    let coordinator = server.coordinator(0, GROUP);
    let (member, generation) = join(&server, coordinator);
    sync(coordinator, &member, generation, &[0, 1]);
    commit(coordinator, &member, generation, 0, 2);

    // list: the group, Stable; filtered out by another state.
    let list = server.groups(&["list"]).ok();
    assert_eq!(
        list.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["GROUP", "TYPE", "STATE"]
    );
    assert!(
        list.rows().contains(&cells(&[GROUP, "Classic", "Stable"])),
        "{list:?}"
    );
    let list = server.groups(&["list", "--state", "empty"]).ok();
    assert!(list.rows().is_empty(), "{list:?}");
    let list = server.groups(&["list", "--state", "Stable,Empty"]).ok();
    assert_eq!(list.rows(), [cells(&[GROUP, "Classic", "Stable"])]);

    // describe --offsets (the default): the owned partitions, one without
    // a commit.
    let d = server.groups(&["describe", GROUP]).ok();
    assert_eq!(
        d.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID"
        ]
    );
    let rows = d.rows();
    assert_eq!(rows.len(), 2, "{d:?}");
    assert_eq!(rows[0][..6], cells(&[GROUP, TOPIC, "0", "2", "5", "3"]));
    assert_eq!(rows[0][6], member);
    assert_eq!(rows[0][8], CLIENT_ID);
    assert_eq!(
        rows[1][..7],
        cells(&[GROUP, TOPIC, "1", "-", "3", "-", &member])
    );
    assert_eq!(
        d.stdout,
        server.groups(&["describe", GROUP, "--offsets"]).ok().stdout
    );

    let m = server.groups(&["describe", GROUP, "--members"]).ok();
    let rows = m.rows();
    assert_eq!(rows.len(), 1, "{m:?}");
    assert_eq!(rows[0][..3], cells(&[GROUP, &member, "-"]));
    assert_eq!(rows[0][4..], cells(&[CLIENT_ID, "2", "orders:0,1"]));

    let s = server.groups(&["describe", GROUP, "--state"]).ok();
    let rows = s.rows();
    assert_eq!(rows.len(), 1, "{s:?}");
    // GROUP, host:port, (id), strategy, state, members.
    assert_eq!(
        rows[0],
        cells(&[
            GROUP,
            &coordinator.to_string(),
            "(1)",
            "range",
            "Stable",
            "1"
        ])
    );

    // An active member: no reset, no deletion.
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ])
        .failed();
    assert!(
        r.stderr
            .contains("inactive, but the current state is Stable"),
        "{r:?}"
    );
    let r = server.groups(&["delete", "--group", GROUP]).failed();
    assert!(r.stdout.contains("NON_EMPTY_GROUP"), "{r:?}");

    leave(coordinator, &member);

    // Empty: the committed partition remains, owned by nobody.
    let d = server.groups(&["describe", GROUP]).ok();
    assert!(d.stderr.contains("has no active members"), "{d:?}");
    assert_eq!(
        d.rows(),
        [cells(&[GROUP, TOPIC, "0", "2", "5", "3", "-", "-", "-"])]
    );
    let s = server.groups(&["describe", GROUP, "--state"]).ok();
    assert_eq!(s.rows()[0][4..], cells(&["Empty", "0"]));
    let list = server.groups(&["list", "--state", "Empty"]).ok();
    assert_eq!(list.rows(), [cells(&[GROUP, "Classic", "Empty"])]);

    // Without --execute nothing is committed; without --dry-run it says so.
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-offset",
            "4",
        ])
        .ok();
    assert!(r.stderr.contains("No action will be performed"), "{r:?}");
    assert_eq!(
        r.rows(),
        [
            cells(&[GROUP, TOPIC, "0", "4"]),
            cells(&[GROUP, TOPIC, "1", "3"])
        ],
        "4 is past the end of partition 1 (3): moved to it"
    );
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:0",
            "--shift-by",
            "-10",
            "--dry-run",
        ])
        .ok();
    assert!(!r.stderr.contains("No action will be performed"), "{r:?}");
    assert_eq!(r.rows(), [cells(&[GROUP, TOPIC, "0", "0"])]);
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:1",
            "--shift-by",
            "1",
            "--dry-run",
        ])
        .failed();
    assert!(r.stderr.contains("no current committed offset"), "{r:?}");
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:0",
            "--to-datetime",
            "2001-01-01T00:00:00Z",
            "--dry-run",
        ])
        .ok();
    assert_eq!(r.rows(), [cells(&[GROUP, TOPIC, "0", "0"])]);
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:0",
            "--to-datetime",
            "2999-01-01T00:00:00.000+01:00",
            "--dry-run",
        ])
        .ok();
    assert_eq!(
        r.rows(),
        [cells(&[GROUP, TOPIC, "0", "5"])],
        "past the last record: the log end"
    );
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:7",
            "--to-earliest",
        ])
        .failed();
    assert!(r.stderr.contains("orders-7"), "{r:?}");
    let d = server.groups(&["describe", GROUP]).ok();
    assert_eq!(d.rows()[0][3], "2", "dry runs commit nothing");

    // --execute commits.
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--all-topics",
            "--to-latest",
            "--execute",
        ])
        .ok();
    assert_eq!(r.rows(), [cells(&[GROUP, TOPIC, "0", "5"])]);
    let r = server
        .groups(&[
            "reset-offsets",
            "--group",
            GROUP,
            "--topic",
            "orders:1",
            "--to-earliest",
            "--execute",
        ])
        .ok();
    assert_eq!(r.rows(), [cells(&[GROUP, TOPIC, "1", "0"])]);
    let d = server.groups(&["describe", GROUP]).ok();
    assert_eq!(
        d.rows(),
        [
            cells(&[GROUP, TOPIC, "0", "5", "5", "0", "-", "-", "-"]),
            cells(&[GROUP, TOPIC, "1", "0", "3", "3", "-", "-", "-"]),
        ]
    );

    // Deletion, then the group is gone.
    let r = server.groups(&["delete", "--group", GROUP]).ok();
    assert_eq!(
        r.stdout.trim(),
        "Deletion of requested consumer groups ('payments') was successful."
    );
    let d = server.groups(&["describe", GROUP]).failed();
    assert!(
        d.stderr
            .contains("consumer group 'payments' does not exist"),
        "{d:?}"
    );
    let list = server.groups(&["list"]).ok();
    assert!(list.rows().is_empty(), "{list:?}");
    let r = server
        .groups(&["delete", "--group", GROUP, "--group", "never-was"])
        .failed();
    assert!(
        r.stdout.contains("'payments' failed: GROUP_ID_NOT_FOUND")
            && r.stdout.contains("'never-was' failed: GROUP_ID_NOT_FOUND"),
        "{r:?}"
    );

    // A reset of a group that does not exist creates its offsets, as in
    // Kafka.
    server
        .groups(&[
            "reset-offsets",
            "--group",
            "fresh",
            "--topic",
            "orders:0",
            "--to-offset",
            "1",
            "--execute",
        ])
        .ok();
    let d = server.groups(&["describe", "fresh"]).ok();
    assert_eq!(
        d.rows(),
        [cells(&["fresh", TOPIC, "0", "1", "5", "4", "-", "-", "-"])]
    );
}

#[test]
fn usage_and_connection_errors() {
    // Usage errors exit with 2.
    let r = riffle(&["groups", "list"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--bootstrap-server"), "{r:?}");
    let r = riffle(&[
        "groups",
        "--bootstrap-server",
        "127.0.0.1:1",
        "reset-offsets",
        "--group",
        "g",
        "--all-topics",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    // Nothing listening: the address is named, exit code 1.
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let r = riffle(&["groups", "--bootstrap-server", &address, "describe", "g"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&address), "{r:?}");
    assert!(r.stderr.contains("connection refused"), "{r:?}");
}
