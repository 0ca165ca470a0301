//! `riffle quorum describe`: Kafka's `kafka-metadata-quorum describe
//! --status | --replication` against a controller listener.
//!
//! The tool sends ApiVersions, then DescribeQuorum for `__cluster_metadata`
//! partition 0 at the highest version both sides support (0 to 2), and for
//! `--status` a DescribeCluster asking for controller endpoints (KIP-919)
//! to learn the cluster id. The output has the layout of Kafka 3.9's
//! `MetadataQuorumCommand`, so scripts written for Kafka read it:
//!
//! - `--status`: `Label:` padded to 24 columns, then the value; the voters
//!   and observers as `{"id": 1, "directoryId": "…", "endpoints": […]}`.
//! - `--replication`: a table whose cells are padded to the column's width
//!   and each followed by a tab; timestamps as Kafka sends them (epoch
//!   milliseconds, -1 when unknown) or, with `--human-readable`, `N ms ago`.
//!
//! Departures: Kafka's tool fails when DescribeCluster fails; this one
//! prints the error in place of the cluster id, because the quorum state is
//! what an operator asked for. A quorum without a leader is reported as
//! such instead of as Kafka's `No value present`.
//!
//! Everything that turns a response into text is a pure function, tested
//! with hand-built responses below; [`run`] does the I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::{Message, StrBytes};
use riffle_broker::meta_properties::kafka_uuid_string;
use uuid::Uuid;

use crate::client::{Connection, ServerError};

/// The KRaft metadata log's topic and partition.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";
const CLUSTER_METADATA_PARTITION: i32 = 0;
/// DescribeCluster's `EndpointType` for controllers (KIP-919).
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// How long connecting and each request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the `--status` values start.
const STATUS_LABEL_WIDTH: usize = 24;

/// What `riffle quorum describe` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Describe {
    Status,
    Replication { human_readable: bool },
}

/// One replica of the metadata log as the leader reports it (Kafka's
/// `QuorumInfo.ReplicaState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub id: i32,
    /// Nil when unknown (DescribeQuorum before version 2).
    pub directory_id: Uuid,
    pub log_end_offset: i64,
    /// `None` where the response says -1: never for the leader itself, and
    /// for voters the leader has not heard from.
    pub last_fetch_timestamp_ms: Option<i64>,
    pub last_caught_up_timestamp_ms: Option<i64>,
}

/// The quorum as one DescribeQuorum response describes it (Kafka's
/// `QuorumInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaInfo>,
    pub observers: Vec<ReplicaInfo>,
    /// Each node's listeners as `NAME://host:port` (version 2 and later).
    pub endpoints: BTreeMap<i32, Vec<String>>,
}

/// Checks a DescribeQuorum response as Kafka's admin client does (one
/// topic, `__cluster_metadata`, one partition, 0, no errors) and extracts
/// the quorum. Error codes become [`ServerError`]s.
pub fn quorum_info(response: &DescribeQuorumResponse) -> anyhow::Result<QuorumInfo> {
    if let Some(e) = ServerError::from_code(response.error_code, response.error_message.as_ref()) {
        return Err(e.into());
    }
    let [topic] = response.topics.as_slice() else {
        bail!(
            "UNKNOWN_SERVER_ERROR: DescribeQuorum answered with {} topics instead of 1",
            response.topics.len()
        );
    };
    if topic.topic_name.0.as_str() != CLUSTER_METADATA_TOPIC {
        bail!(
            "UNKNOWN_SERVER_ERROR: DescribeQuorum answered for topic {} instead of {CLUSTER_METADATA_TOPIC}",
            topic.topic_name.0.as_str()
        );
    }
    let [partition] = topic.partitions.as_slice() else {
        bail!(
            "UNKNOWN_SERVER_ERROR: DescribeQuorum answered with {} partitions of {CLUSTER_METADATA_TOPIC} instead of 1",
            topic.partitions.len()
        );
    };
    if partition.partition_index != CLUSTER_METADATA_PARTITION {
        bail!(
            "UNKNOWN_SERVER_ERROR: DescribeQuorum answered for partition {} instead of {CLUSTER_METADATA_PARTITION}",
            partition.partition_index
        );
    }
    if let Some(e) = ServerError::from_code(partition.error_code, partition.error_message.as_ref())
    {
        return Err(e.into());
    }
    let replica =
        |r: &kafka_protocol::messages::describe_quorum_response::ReplicaState| ReplicaInfo {
            id: r.replica_id.0,
            directory_id: r.replica_directory_id,
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp_ms: (r.last_fetch_timestamp != -1)
                .then_some(r.last_fetch_timestamp),
            last_caught_up_timestamp_ms: (r.last_caught_up_timestamp != -1)
                .then_some(r.last_caught_up_timestamp),
        };
    Ok(QuorumInfo {
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition.current_voters.iter().map(replica).collect(),
        observers: partition.observers.iter().map(replica).collect(),
        endpoints: response
            .nodes
            .iter()
            .map(|n| {
                let endpoints = n
                    .listeners
                    .iter()
                    .map(|l| endpoint_string(l.name.as_str(), l.host.as_str(), l.port))
                    .collect();
                (n.node_id.0, endpoints)
            })
            .collect(),
    })
}

/// `NAME://host:port`, with an IPv6 host in brackets.
fn endpoint_string(name: &str, host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("{name}://[{host}]:{port}")
    } else {
        format!("{name}://{host}:{port}")
    }
}

/// The leader's entry among the voters.
fn leader_index(quorum: &QuorumInfo) -> anyhow::Result<usize> {
    if quorum.leader_id < 0 {
        bail!(
            "the quorum has no leader (LeaderId {}, LeaderEpoch {}); an election may be in progress, try again",
            quorum.leader_id,
            quorum.leader_epoch
        );
    }
    quorum
        .voters
        .iter()
        .position(|v| v.id == quorum.leader_id)
        .ok_or_else(|| {
            anyhow!(
                "the leader {} is not among the voters {:?}",
                quorum.leader_id,
                quorum.voters.iter().map(|v| v.id).collect::<Vec<_>>()
            )
        })
}

/// The `--status` block. `cluster_id` is the DescribeCluster answer or the
/// error that prevented one.
pub fn format_status(
    cluster_id: &Result<String, String>,
    quorum: &QuorumInfo,
) -> anyhow::Result<String> {
    let leader_at = leader_index(quorum)?;
    let leader = &quorum.voters[leader_at];
    // The voter furthest behind, the first one on ties (as Kafka's
    // Stream.min picks it); when that is the leader itself, nobody lags.
    let mut lagging_at = 0;
    for (i, v) in quorum.voters.iter().enumerate() {
        if v.log_end_offset < quorum.voters[lagging_at].log_end_offset {
            lagging_at = i;
        }
    }
    let lagging = &quorum.voters[lagging_at];
    let max_follower_lag = leader.log_end_offset - lagging.log_end_offset;
    let max_follower_lag_time_ms = if lagging_at == leader_at {
        0
    } else {
        match (
            leader.last_caught_up_timestamp_ms,
            lagging.last_caught_up_timestamp_ms,
        ) {
            (Some(l), Some(f)) => l - f,
            _ => -1,
        }
    };
    let cluster_id = match cluster_id {
        Ok(id) => id.clone(),
        Err(e) => format!("(unknown: {e})"),
    };
    let rows = [
        ("ClusterId:", cluster_id),
        ("LeaderId:", quorum.leader_id.to_string()),
        ("LeaderEpoch:", quorum.leader_epoch.to_string()),
        ("HighWatermark:", quorum.high_watermark.to_string()),
        ("MaxFollowerLag:", max_follower_lag.to_string()),
        (
            "MaxFollowerLagTimeMs:",
            max_follower_lag_time_ms.to_string(),
        ),
        (
            "CurrentVoters:",
            replica_list(&quorum.voters, &quorum.endpoints),
        ),
        (
            "CurrentObservers:",
            replica_list(&quorum.observers, &quorum.endpoints),
        ),
    ];
    let mut out = String::new();
    for (label, value) in rows {
        let _ = writeln!(out, "{label:<STATUS_LABEL_WIDTH$}{value}");
    }
    Ok(out)
}

/// `[{"id": 1, "directoryId": "…", "endpoints": ["CONTROLLER://h:9093"]}, …]`;
/// an unknown directory id is `null`, and `endpoints` is left out when the
/// response names none for the node.
fn replica_list(replicas: &[ReplicaInfo], endpoints: &BTreeMap<i32, Vec<String>>) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| {
            let directory_id = if r.directory_id.is_nil() {
                "null".to_string()
            } else {
                format!("\"{}\"", kafka_uuid_string(&r.directory_id))
            };
            let mut item = format!("{{\"id\": {}, \"directoryId\": {directory_id}", r.id);
            if let Some(e) = endpoints.get(&r.id).filter(|e| !e.is_empty()) {
                let quoted: Vec<String> = e.iter().map(|e| format!("\"{e}\"")).collect();
                let _ = write!(item, ", \"endpoints\": [{}]", quoted.join(", "));
            }
            item.push('}');
            item
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The `--replication` table: the leader, the other voters, then the
/// observers. With `human_readable_now_ms`, timestamps are shown as the
/// time before that moment.
pub fn format_replication(
    quorum: &QuorumInfo,
    human_readable_now_ms: Option<i64>,
) -> anyhow::Result<String> {
    let leader = &quorum.voters[leader_index(quorum)?];
    let timestamp = |ts: Option<i64>, what: &str| -> anyhow::Result<String> {
        match (ts, human_readable_now_ms) {
            (None, _) => Ok("-1".to_string()),
            (Some(ts), None) => Ok(ts.to_string()),
            (Some(ts), Some(now)) => Ok(format!("{} ms ago", relative_time_ms(ts, now, what)?)),
        }
    };
    let groups = [
        ("Leader", vec![leader]),
        (
            "Follower",
            quorum
                .voters
                .iter()
                .filter(|v| v.id != quorum.leader_id)
                .collect(),
        ),
        ("Observer", quorum.observers.iter().collect()),
    ];
    let mut rows = Vec::new();
    for (status, replicas) in groups {
        for r in replicas {
            rows.push(vec![
                r.id.to_string(),
                kafka_uuid_string(&r.directory_id),
                r.log_end_offset.to_string(),
                (leader.log_end_offset - r.log_end_offset).to_string(),
                timestamp(r.last_fetch_timestamp_ms, "last fetch")?,
                timestamp(r.last_caught_up_timestamp_ms, "last caught up")?,
                status.to_string(),
            ]);
        }
    }
    Ok(table(
        &[
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
        ],
        &rows,
    ))
}

/// How long before `now_ms` the `what` timestamp `ts_ms` was. Refuses a
/// timestamp from the future or not after 1970, as Kafka does: either
/// means the clocks disagree and "ms ago" would mislead.
fn relative_time_ms(ts_ms: i64, now_ms: i64, what: &str) -> anyhow::Result<i64> {
    if ts_ms <= 0 || ts_ms > now_ms {
        bail!(
            "cannot show the {what} timestamp {ts_ms} relative to the current time {now_ms}; \
             the system clocks may disagree (run without --human-readable to see raw timestamps)"
        );
    }
    Ok(now_ms - ts_ms)
}

/// Kafka's tool table: every cell padded to its column's width and
/// followed by a tab, one row per line, the header first.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter().zip(row) {
            let _ = write!(out, "{cell:<w$}\t");
        }
        out.push('\n');
    }
    out
}

/// DescribeQuorum for the metadata partition, at the highest common version.
async fn describe_quorum(conn: &mut Connection) -> anyhow::Result<QuorumInfo> {
    let version = conn
        .version_for(
            ApiKey::DescribeQuorum,
            (0, DescribeQuorumRequest::VERSIONS.max.min(2)),
        )
        .map_err(|e| {
            anyhow!("{e:#}; --bootstrap-controller takes the address of a controller listener (one named in controller.listener.names)")
        })?;
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(CLUSTER_METADATA_TOPIC)))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()
                .with_partition_index(CLUSTER_METADATA_PARTITION)]),
    ]);
    let response: DescribeQuorumResponse =
        conn.send(ApiKey::DescribeQuorum, version, &request).await?;
    quorum_info(&response)
}

/// The cluster id, from DescribeCluster asking for controller endpoints
/// (version 1 and later; KIP-919).
async fn describe_cluster(conn: &mut Connection) -> anyhow::Result<String> {
    let version = conn.version_for(
        ApiKey::DescribeCluster,
        (1, DescribeClusterRequest::VERSIONS.max),
    )?;
    let request = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(false)
        .with_endpoint_type(ENDPOINT_TYPE_CONTROLLER);
    let response: DescribeClusterResponse = conn
        .send(ApiKey::DescribeCluster, version, &request)
        .await?;
    if let Some(e) = ServerError::from_code(response.error_code, response.error_message.as_ref()) {
        return Err(e.into());
    }
    Ok(response.cluster_id.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `riffle quorum describe` against the controllers at
/// `bootstrap_controller` (comma-separated host:port; the first that
/// accepts a connection is asked).
pub fn run(bootstrap_controller: &str, what: Describe, out: &mut impl Write) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let text = runtime.block_on(async {
        let mut conn = Connection::connect(bootstrap_controller, REQUEST_TIMEOUT).await?;
        let quorum = describe_quorum(&mut conn).await?;
        match what {
            Describe::Status => {
                let cluster_id = describe_cluster(&mut conn)
                    .await
                    .map_err(|e| format!("{e:#}"));
                format_status(&cluster_id, &quorum)
            }
            Describe::Replication { human_readable } => {
                format_replication(&quorum, human_readable.then(now_ms))
            }
        }
    })?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{
        Listener, Node, PartitionData, ReplicaState, TopicData,
    };
    use kafka_protocol::messages::BrokerId;

    const NOW: i64 = 1_700_000_010_000;

    fn uuid(text: &str) -> Uuid {
        riffle_broker::meta_properties::parse_kafka_uuid(text).expect("test uuid")
    }

    fn replica(id: i32, dir: &str, leo: i64, fetch: i64, caught_up: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_replica_directory_id(if dir.is_empty() {
                Uuid::nil()
            } else {
                uuid(dir)
            })
            .with_log_end_offset(leo)
            .with_last_fetch_timestamp(fetch)
            .with_last_caught_up_timestamp(caught_up)
    }

    fn node(id: i32, port: u16) -> Node {
        Node::default()
            .with_node_id(BrokerId(id))
            .with_listeners(vec![Listener::default()
                .with_name(StrBytes::from_static_str("CONTROLLER"))
                .with_host(StrBytes::from_string(format!("c{id}.example")))
                .with_port(port)])
    }

    fn response(partition: PartitionData) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![partition])])
    }

    /// Leader 1, followers 2 (5 behind) and 3 (caught up), observer 4
    /// (20 behind, not yet caught up), as a version 2 response.
    fn three_voters() -> DescribeQuorumResponse {
        response(
            PartitionData::default()
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(7)
                .with_high_watermark(98)
                .with_current_voters(vec![
                    replica(1, "7PDu0jVxRGOVMnAHrJ0DJQ", 100, -1, NOW),
                    replica(2, "5L6g3nShT-eMCtK--X86sw", 95, NOW - 40, NOW - 1_500),
                    replica(3, "", 100, NOW - 10, NOW - 10),
                ])
                .with_observers(vec![replica(
                    4,
                    "J3ahO_6fRxSvLbVkRbC01g",
                    80,
                    NOW - 200,
                    -1,
                )]),
        )
        .with_nodes(vec![node(1, 9093), node(2, 9093), node(3, 9093)])
    }

    #[test]
    fn status_has_kafkas_layout() {
        let q = quorum_info(&three_voters()).expect("valid");
        let text = format_status(&Ok("MkU3OEVBNTcwNTJENDM2Qk".into()), &q).expect("leader");
        let expected = "\
ClusterId:              MkU3OEVBNTcwNTJENDM2Qk
LeaderId:               1
LeaderEpoch:            7
HighWatermark:          98
MaxFollowerLag:         5
MaxFollowerLagTimeMs:   1500
CurrentVoters:          [{\"id\": 1, \"directoryId\": \"7PDu0jVxRGOVMnAHrJ0DJQ\", \"endpoints\": [\"CONTROLLER://c1.example:9093\"]}, {\"id\": 2, \"directoryId\": \"5L6g3nShT-eMCtK--X86sw\", \"endpoints\": [\"CONTROLLER://c2.example:9093\"]}, {\"id\": 3, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://c3.example:9093\"]}]
CurrentObservers:       [{\"id\": 4, \"directoryId\": \"J3ahO_6fRxSvLbVkRbC01g\"}]
";
        assert_eq!(text, expected);
    }

    #[test]
    fn replication_table_has_kafkas_layout() {
        let q = quorum_info(&three_voters()).expect("valid");
        let text = format_replication(&q, None).expect("leader");
        // Kafka's ToolsUtils.prettyPrintTable: cells padded to the column
        // width, each followed by a tab (so lines end in one).
        let expected = "\
NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t
1     \t7PDu0jVxRGOVMnAHrJ0DJQ\t100         \t0  \t-1                \t1700000010000        \tLeader  \t
2     \t5L6g3nShT-eMCtK--X86sw\t95          \t5  \t1700000009960     \t1700000008500        \tFollower\t
3     \tAAAAAAAAAAAAAAAAAAAAAA\t100         \t0  \t1700000009990     \t1700000009990        \tFollower\t
4     \tJ3ahO_6fRxSvLbVkRbC01g\t80          \t20 \t1700000009800     \t-1                   \tObserver\t
";
        assert_eq!(text, expected);
    }

    #[test]
    fn human_readable_timestamps_are_ms_ago_and_unknown_stays_minus_one() {
        let q = quorum_info(&three_voters()).expect("valid");
        let text = format_replication(&q, Some(NOW)).expect("leader");
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split('\t').map(str::trim_end).collect())
            .collect();
        assert_eq!(lines[1][4..7], ["-1", "0 ms ago", "Leader"]);
        assert_eq!(lines[2][4..7], ["40 ms ago", "1500 ms ago", "Follower"]);
        assert_eq!(lines[4][4..7], ["200 ms ago", "-1", "Observer"]);
        // A timestamp after "now" means the clocks disagree (Kafka refuses too).
        let err = format_replication(&q, Some(NOW - 5_000)).expect_err("future");
        assert!(err.to_string().contains("clocks"), "{err}");
    }

    #[test]
    fn lag_time_is_zero_when_the_leader_is_furthest_behind_and_minus_one_when_unknown() {
        // Single voter: the leader is its own furthest-behind voter.
        let single = response(
            PartitionData::default()
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(1)
                .with_high_watermark(10)
                .with_current_voters(vec![replica(1, "", 10, -1, NOW)]),
        );
        let q = quorum_info(&single).expect("valid");
        let text = format_status(&Ok("c".into()), &q).expect("leader");
        assert!(text.contains("MaxFollowerLag:         0\n"), "{text}");
        assert!(text.contains("MaxFollowerLagTimeMs:   0\n"), "{text}");
        assert!(
            text.contains("CurrentVoters:          [{\"id\": 1, \"directoryId\": null}]\n"),
            "{text}"
        );
        assert!(text.ends_with("CurrentObservers:       []\n"), "{text}");

        // A follower never heard from: lag known, lag time unknown.
        let silent = response(
            PartitionData::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(3)
                .with_high_watermark(10)
                .with_current_voters(vec![
                    replica(1, "", -1, -1, -1),
                    replica(2, "", 10, -1, NOW),
                ]),
        );
        let q = quorum_info(&silent).expect("valid");
        let text = format_status(&Err("UNSUPPORTED_ENDPOINT_TYPE".into()), &q).expect("leader");
        assert!(
            text.starts_with("ClusterId:              (unknown: UNSUPPORTED_ENDPOINT_TYPE)\n"),
            "{text}"
        );
        assert!(text.contains("MaxFollowerLag:         11\n"), "{text}");
        assert!(text.contains("MaxFollowerLagTimeMs:   -1\n"), "{text}");
    }

    #[test]
    fn server_errors_are_named_as_kafka_names_them() {
        let top = DescribeQuorumResponse::default()
            .with_error_code(6)
            .with_error_message(Some(StrBytes::from_static_str("not the leader")));
        let err = quorum_info(&top).expect_err("error");
        assert_eq!(err.to_string(), "NOT_LEADER_OR_FOLLOWER: not the leader");

        let partition = response(PartitionData::default().with_error_code(6));
        let err = quorum_info(&partition).expect_err("error");
        assert_eq!(err.to_string(), "NOT_LEADER_OR_FOLLOWER");

        let no_topics = DescribeQuorumResponse::default();
        let err = quorum_info(&no_topics).expect_err("error");
        assert!(err.to_string().starts_with("UNKNOWN_SERVER_ERROR"), "{err}");
    }

    #[test]
    fn a_quorum_without_a_leader_is_reported() {
        let leaderless = response(
            PartitionData::default()
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(4)
                .with_current_voters(vec![replica(1, "", 10, -1, -1)]),
        );
        let q = quorum_info(&leaderless).expect("valid");
        let err = format_status(&Ok("c".into()), &q).expect_err("no leader");
        assert!(err.to_string().contains("no leader"), "{err}");
        assert!(format_replication(&q, None).is_err());
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        assert_eq!(endpoint_string("C", "::1", 9093), "C://[::1]:9093");
        assert_eq!(endpoint_string("C", "host", 9093), "C://host:9093");
    }
}
