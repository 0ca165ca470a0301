//! `riffle quorum describe` against a fake controller that answers
//! ApiVersions, DescribeQuorum and DescribeCluster from canned responses:
//! version negotiation, the request contents, the output, and the exit
//! code for server errors and refused connections. (The real controller
//! side is tested with the KRaft quorum.)
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const CLUSTER_ID: &str = "5L6g3nShT-eMCtK--X86sw";

/// What the fake controller supports and answers.
#[derive(Clone)]
struct Fake {
    /// The highest ApiVersions version it accepts; above it, it answers
    /// UNSUPPORTED_VERSION in version 0 (KIP-511).
    api_versions_max: i16,
    describe_quorum_max: i16,
    quorum: DescribeQuorumResponse,
    cluster: DescribeClusterResponse,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            api_versions_max: 4,
            describe_quorum_max: 2,
            quorum: quorum(),
            cluster: DescribeClusterResponse::default()
                .with_cluster_id(StrBytes::from_static_str(CLUSTER_ID))
                .with_endpoint_type(2),
        }
    }
}

fn replica(id: i32, leo: i64, fetch: i64, caught_up: i64) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_replica_directory_id(uuid::Uuid::from_u128(0x1234_5678_9abc_def0 + id as u128))
        .with_log_end_offset(leo)
        .with_last_fetch_timestamp(fetch)
        .with_last_caught_up_timestamp(caught_up)
}

/// Leader 2 with followers 1 and 3 and observer 4.
fn quorum() -> DescribeQuorumResponse {
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(4)
                .with_high_watermark(41)
                .with_current_voters(vec![
                    replica(1, 40, 1_000, 900),
                    replica(2, 42, -1, 1_100),
                    replica(3, 42, 1_050, 1_050),
                ])
                .with_observers(vec![replica(4, 12, 1_010, -1)])])])
        .with_nodes(
            (1..=3)
                .map(|id| {
                    Node::default()
                        .with_node_id(BrokerId(id))
                        .with_listeners(vec![Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_static_str("localhost"))
                            .with_port(9090 + id as u16)])
                })
                .collect(),
        )
}

fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

fn respond<T: Encodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) {
    let mut b = BytesMut::new();
    b.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut b, key.response_header_version(version))
        .unwrap();
    body.encode(&mut b, version).unwrap();
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&b).unwrap();
}

/// Serves one connection; returns the (API, version) of every request.
fn serve(fake: Fake) -> (String, JoinHandle<Vec<(ApiKey, i16)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        while let Some(mut frame) = read_frame(&mut stream) {
            let key = ApiKey::try_from((&frame[..2]).get_i16()).unwrap();
            let version = (&frame[2..4]).get_i16();
            let header =
                RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
            let id = header.correlation_id;
            seen.push((key, version));
            match key {
                ApiKey::ApiVersions if version > fake.api_versions_max => {
                    let body = ApiVersionsResponse::default()
                        .with_error_code(35)
                        .with_api_keys(vec![ApiVersion::default()
                            .with_api_key(ApiKey::ApiVersions as i16)
                            .with_max_version(fake.api_versions_max)]);
                    respond(&mut stream, key, 0, id, &body);
                }
                ApiKey::ApiVersions => {
                    let range = |k: ApiKey, max: i16| {
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_max_version(max)
                    };
                    let mut keys = vec![
                        range(ApiKey::ApiVersions, fake.api_versions_max),
                        range(ApiKey::DescribeCluster, 2),
                    ];
                    // -1: not served (a broker listener).
                    if fake.describe_quorum_max >= 0 {
                        keys.push(range(ApiKey::DescribeQuorum, fake.describe_quorum_max));
                    }
                    let body = ApiVersionsResponse::default().with_api_keys(keys);
                    respond(&mut stream, key, version, id, &body);
                }
                ApiKey::DescribeQuorum => {
                    let req = DescribeQuorumRequest::decode(&mut frame, version).unwrap();
                    assert_eq!(req.topics.len(), 1);
                    assert_eq!(req.topics[0].topic_name.0.as_str(), "__cluster_metadata");
                    assert_eq!(req.topics[0].partitions[0].partition_index, 0);
                    respond(&mut stream, key, version, id, &fake.quorum);
                }
                ApiKey::DescribeCluster => {
                    let req = DescribeClusterRequest::decode(&mut frame, version).unwrap();
                    assert_eq!(req.endpoint_type, 2, "KIP-919: controller endpoints");
                    respond(&mut stream, key, version, id, &fake.cluster);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    });
    (address, handle)
}

fn riffle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn status_negotiates_version_2_and_asks_for_the_cluster_id() {
    let (address, fake) = serve(Fake::default());
    let out = riffle(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &address,
        "--status",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "ClusterId:              5L6g3nShT-eMCtK--X86sw",
            "LeaderId:               2",
            "LeaderEpoch:            4",
            "HighWatermark:          41",
            "MaxFollowerLag:         2",
            "MaxFollowerLagTimeMs:   200",
        ]
    );
    assert!(
        lines[6].starts_with("CurrentVoters:          [{\"id\": 1, \"directoryId\": \"")
            && lines[6].contains("\"endpoints\": [\"CONTROLLER://localhost:9091\"]"),
        "{stdout}"
    );
    assert!(
        lines[7].starts_with("CurrentObservers:       [{\"id\": 4, "),
        "{stdout}"
    );
    assert_eq!(
        fake.join().unwrap(),
        [
            (ApiKey::ApiVersions, 3),
            (ApiKey::DescribeQuorum, 2),
            (ApiKey::DescribeCluster, 2),
        ]
    );
}

#[test]
fn replication_falls_back_to_the_versions_an_older_server_has() {
    // ApiVersions v3 refused (answered in v0, KIP-511) and DescribeQuorum
    // only up to v1: no directory ids, which print as Kafka's zero UUID.
    let mut quorum = quorum();
    for r in &mut quorum.topics[0].partitions[0].current_voters {
        r.replica_directory_id = uuid::Uuid::nil();
    }
    quorum.topics[0].partitions[0].observers.clear();
    quorum.nodes.clear(); // version 2 and later
    let (address, fake) = serve(Fake {
        api_versions_max: 2,
        describe_quorum_max: 1,
        quorum,
        ..Fake::default()
    });
    let out = riffle(&[
        "quorum",
        "--bootstrap-controller",
        &address,
        "describe",
        "--replication",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split('\t').map(str::trim_end).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "NodeId",
                "DirectoryId",
                "LogEndOffset",
                "Lag",
                "LastFetchTimestamp",
                "LastCaughtUpTimestamp",
                "Status",
                ""
            ],
            vec![
                "2",
                "AAAAAAAAAAAAAAAAAAAAAA",
                "42",
                "0",
                "-1",
                "1100",
                "Leader",
                ""
            ],
            vec![
                "1",
                "AAAAAAAAAAAAAAAAAAAAAA",
                "40",
                "2",
                "1000",
                "900",
                "Follower",
                ""
            ],
            vec![
                "3",
                "AAAAAAAAAAAAAAAAAAAAAA",
                "42",
                "0",
                "1050",
                "1050",
                "Follower",
                ""
            ],
        ]
    );
    assert_eq!(
        fake.join().unwrap(),
        [
            (ApiKey::ApiVersions, 3),
            (ApiKey::ApiVersions, 2),
            (ApiKey::DescribeQuorum, 1),
        ]
    );
}

#[test]
fn a_server_error_is_named_and_exits_1() {
    let (address, fake) = serve(Fake {
        quorum: DescribeQuorumResponse::default()
            .with_error_code(6)
            .with_error_message(Some(StrBytes::from_static_str("node 1 is not the leader"))),
        ..Fake::default()
    });
    let out = riffle(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &address,
        "--status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim_end(),
        "riffle: NOT_LEADER_OR_FOLLOWER: node 1 is not the leader"
    );
    fake.join().unwrap();
}

#[test]
fn a_listener_without_describe_quorum_is_not_a_controller_listener() {
    let (address, fake) = serve(Fake {
        describe_quorum_max: -1,
        ..Fake::default()
    });
    let out = riffle(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &address,
        "--status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("riffle: UNSUPPORTED_VERSION: ")
            && stderr.contains("controller.listener.names"),
        "{stderr}"
    );
    assert_eq!(fake.join().unwrap(), [(ApiKey::ApiVersions, 3)]);
}

#[test]
fn a_failed_cluster_id_lookup_is_shown_in_its_place() {
    let (address, fake) = serve(Fake {
        cluster: DescribeClusterResponse::default()
            .with_error_code(115)
            .with_error_message(Some(StrBytes::from_static_str("not yet"))),
        ..Fake::default()
    });
    let out = riffle(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &address,
        "--status",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ClusterId:              (unknown: UNSUPPORTED_ENDPOINT_TYPE: not yet)\nLeaderId:               2\n"),
        "{stdout}"
    );
    fake.join().unwrap();
}

#[test]
fn a_refused_connection_says_so_and_exits_1() {
    let address = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = riffle(&[
        "quorum",
        "describe",
        "--bootstrap-controller",
        &address,
        "--replication",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to {address}: connection refused")),
        "{stderr}"
    );
}
