//! Helpers shared by the tests that run `riffle` processes: free ports,
//! one blocking Kafka request per connection, a single-node `riffle
//! server`, a finished CLI run, and the requests the tests drive
//! coordinators with (record batches, CreateTopics, FindCoordinator and a
//! transaction's InitProducerId, AddPartitionsToTxn and EndTxn).
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The client id of the tests' requests.
pub const CLIENT_ID: &str = "riffle-test";
/// How long [`call`] waits for a response.
const CALL_READ_TIMEOUT: Duration = Duration::from_secs(30);
const CORRELATION_ID: i32 = 7;

// Kafka's error codes the tests expect.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn cells(row: &[&str]) -> Vec<String> {
    row.iter().map(|c| c.to_string()).collect()
}

/// One request on a new connection; the response, or why there is none.
pub fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> std::io::Result<Resp> {
    call_within(CALL_READ_TIMEOUT, addr, key, version, req)
}

/// [`call`], waiting at most `read_timeout` for the response.
pub fn call_within<Req: Encodable + HeaderVersion, Resp: Decodable>(
    read_timeout: Duration,
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(read_timeout))?;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(sb(CLIENT_ID)))
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
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(std::io::Error::other)?;
    assert_eq!(header.correlation_id, CORRELATION_ID);
    Resp::decode(&mut buf, version).map_err(std::io::Error::other)
}

/// A single-node `riffle server` (broker and controller) on free ports.
pub struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `overrides` (`key=value`) on top of the
    /// listeners, voters and log directory.
    pub fn start(overrides: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (port, controller) = (free_port(), free_port());
        let log = dir.path().join("server.log");
        let mut all = vec![
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            format!("controller.quorum.voters=1@127.0.0.1:{controller}"),
            format!("log.dirs={}", dir.path().join("data").display()),
        ];
        all.extend(overrides.iter().map(|o| o.to_string()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_riffle"));
        cmd.arg("server");
        for o in &all {
            cmd.args(["--override", o]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Retries `f` until it returns `Some` (the server is starting, the
    /// coordinator loading); panics with the server log after a minute.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; server log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `riffle TOOL --bootstrap-server <this server> ARGS`.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Run {
        let bootstrap = self.bootstrap();
        let mut all = vec![tool, "--bootstrap-server", &bootstrap];
        all.extend(args);
        riffle(&all)
    }

    /// Creates `topic` with `partitions` partitions (one replica each),
    /// once the controller can.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let req = create_topics_request(topic, partitions);
        self.wait_for("the topic to be created", || {
            let r: CreateTopicsResponse = call(self.addr(), ApiKey::CreateTopics, 5, &req).ok()?;
            let code = r.topics[0].error_code;
            (code == 0 || code == TOPIC_ALREADY_EXISTS).then_some(())
        });
    }

    /// The coordinator of `key` (key type 0: a group, 1: a transactional
    /// id), once FindCoordinator names one.
    pub fn coordinator(&self, key_type: i8, key: &str) -> SocketAddr {
        self.wait_for(&format!("the coordinator of {key}"), || {
            find_coordinator(self.addr(), key_type, key).map(|(_, addr)| addr)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `riffle` run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `riffle ARGS` to its end, and shows what it printed.
pub fn riffle(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    Run::new(args, out)
}

impl Run {
    fn new(args: &[&str], out: Output) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("$ riffle {}\n{}{}", args.join(" "), run.stdout, run.stderr);
        run
    }

    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    pub fn failed(self) -> Run {
        assert_eq!(self.code, Some(1), "{self:?}");
        self
    }
}

/// `value-0`, `value-1`, ... `value-{n-1}`.
pub fn numbered_values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("value-{i}")).collect()
}

/// One v2 batch of `values` without keys, timestamped now (record `i` `i`
/// ms after the first), from the producer `(id, epoch)` ((-1, -1): none)
/// at sequences from `first_sequence`, transactional or not.
pub fn record_batch(
    values: &[String],
    (producer_id, producer_epoch): (i64, i16),
    first_sequence: i32,
    transactional: bool,
) -> Bytes {
    let base_ts = now_ms();
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            delete_horizon: false,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_sequence + i as i32,
            timestamp: base_ts + i as i64,
            key: None,
            value: Some(Bytes::from(v.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Produce (acks=all) of `batch` to `topic`-`partition`, as part of the
/// transaction of `transactional_id` if there is one.
pub fn produce_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
    transactional_id: Option<&str>,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(sb(t))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch)),
            ])])
}

/// CreateTopics of `topic` with `partitions` partitions, one replica each.
pub fn create_topics_request(topic: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
}

/// The coordinator of `key` (key type 0: a group, 1: a transactional id)
/// as the broker at `addr` answers FindCoordinator (v4): its node id and
/// address, once it names one.
pub fn find_coordinator(addr: SocketAddr, key_type: i8, key: &str) -> Option<(i32, SocketAddr)> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![sb(key)]);
    let r: FindCoordinatorResponse = call(addr, ApiKey::FindCoordinator, 4, &req).ok()?;
    let c = r.coordinators.first()?;
    (c.error_code == 0).then(|| {
        let addr = format!("{}:{}", c.host, c.port).parse().unwrap();
        (c.node_id.0, addr)
    })
}

/// InitProducerId for `transactional_id` (`None`: an idempotent producer).
pub fn init_producer_id_request(
    transactional_id: Option<&str>,
    timeout_ms: i32,
) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(sb(t))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// AddPartitionsToTxn (v3 and below) of `partitions` of `topic`.
pub fn add_partitions_request(
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb(transactional_id)))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(producer_epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(partitions.to_vec()),
        ])
}

/// EndTxn: commit or abort.
pub fn end_txn_request(
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    commit: bool,
) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(transactional_id)))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_committed(commit)
}
