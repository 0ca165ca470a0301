//! `riffle transactions` against a `riffle server` process: a transaction
//! is driven with raw Kafka requests from this test (FindCoordinator with
//! key type 1, InitProducerId, AddPartitionsToTxn, a transactional
//! Produce, EndTxn), next to an idempotent producer, and the CLI's output
//! and exit codes are checked at each stage: `list` and `describe` while
//! the transaction is open and after its commit, `describe-producers` for
//! the transactional and the idempotent producer's partitions, and the
//! errors for an unknown transactional id, partition and topic, for bad
//! arguments and for a broker that is not there.
#![allow(clippy::unwrap_used)]

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

const TOPIC: &str = "ledger";
const TXN_ID: &str = "ledger-writer";
const CLIENT_ID: &str = "transactions-test";
const TXN_TIMEOUT_MS: i32 = 60_000;

// Kafka's error codes the test expects.
const TOPIC_ALREADY_EXISTS: i16 = 36;

const LIST_HEADER: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];
const DESCRIBE_HEADER: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];
const PRODUCERS_HEADER: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One request on a new connection; the response, or why there is none.
fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
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
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut buf, version).map_err(std::io::Error::other)
}

/// A single-node `riffle server` (broker and controller) on free ports.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (port, controller) = (free_port(), free_port());
        let log = dir.path().join("server.log");
        let overrides = [
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            format!("controller.quorum.voters=1@127.0.0.1:{controller}"),
            format!("log.dirs={}", dir.path().join("data").display()),
        ];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_riffle"));
        cmd.arg("server");
        for o in &overrides {
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

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Retries `f` until it returns `Some` (the server is starting, the
    /// coordinator loading); panics with the server log after a minute.
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
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

    /// `riffle transactions --bootstrap-server <this server> ARGS`.
    fn txns(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_riffle"))
            .arg("transactions")
            .args(["--bootstrap-server", &self.bootstrap()])
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        Run::from(args, out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `riffle transactions` run.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], out: Output) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ riffle transactions {}\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    fn failed(self) -> Run {
        assert_eq!(self.code, Some(1), "{self:?}");
        self
    }

    /// Every stdout line split at Kafka's tabs, cells trimmed; the header
    /// first. Each line ends with a tab, as Kafka's do.
    fn table(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .map(|l| {
                assert!(l.ends_with('\t'), "a table line must end with a tab: {l:?}");
                l.trim_end_matches('\t')
                    .split('\t')
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    }

    /// The table's rows after the header, which must be `header`.
    fn rows(&self, header: &[&str]) -> Vec<Vec<String>> {
        let table = self.table();
        assert_eq!(
            table.first().map(|h| h.as_slice()),
            Some(&cells(header)[..]),
            "{self:?}"
        );
        table[1..].to_vec()
    }
}

fn cells(row: &[&str]) -> Vec<String> {
    row.iter().map(|c| c.to_string()).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn create_topic(server: &Server, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    server.wait_for("the topic to be created", || {
        let r: CreateTopicsResponse = call(server.addr(), ApiKey::CreateTopics, 5, &req).ok()?;
        let code = r.topics[0].error_code;
        (code == 0 || code == TOPIC_ALREADY_EXISTS).then_some(())
    });
}

/// The transaction coordinator of `TXN_ID` (FindCoordinator, key type 1).
fn coordinator(server: &Server) -> SocketAddr {
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![sb(TXN_ID)]);
    server.wait_for("a transaction coordinator", || {
        let r: FindCoordinatorResponse =
            call(server.addr(), ApiKey::FindCoordinator, 4, &req).ok()?;
        let c = &r.coordinators[0];
        (c.error_code == 0).then(|| format!("{}:{}", c.host, c.port).parse().unwrap())
    })
}

/// InitProducerId, transactional (at the coordinator) or idempotent;
/// returns the producer id and epoch.
fn init_producer_id(server: &Server, at: SocketAddr, transactional_id: Option<&str>) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(sb(t))))
        .with_transaction_timeout_ms(TXN_TIMEOUT_MS)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    server.wait_for("a producer id", || {
        let r: InitProducerIdResponse = call(at, ApiKey::InitProducerId, 4, &req).ok()?;
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    })
}

fn add_partitions(
    server: &Server,
    coordinator: SocketAddr,
    pid: i64,
    epoch: i16,
    partitions: &[i32],
) {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb(TXN_ID)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(partitions.to_vec()),
        ]);
    server.wait_for("AddPartitionsToTxn to succeed", || {
        let r: AddPartitionsToTxnResponse =
            call(coordinator, ApiKey::AddPartitionsToTxn, 3, &req).ok()?;
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .all(|p| p.partition_error_code == 0)
            .then_some(())
    });
}

/// `n` records from the producer at sequences `first_seq..`, in one batch.
fn produce(
    server: &Server,
    partition: i32,
    (pid, epoch): (i64, i16),
    first_seq: i32,
    n: usize,
    transactional: bool,
) {
    let base_ts = now_ms();
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            delete_horizon: false,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: base_ts + i as i64,
            key: None,
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let req = ProduceRequest::default()
        .with_transactional_id(transactional.then(|| TransactionalId(sb(TXN_ID))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.freeze())),
            ])]);
    let r: ProduceResponse = call(server.addr(), ApiKey::Produce, 8, &req).unwrap();
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{r:?}");
}

fn end_txn(coordinator: SocketAddr, pid: i64, epoch: i16, commit: bool) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(TXN_ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r: EndTxnResponse = call(coordinator, ApiKey::EndTxn, 3, &req).unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
}

#[test]
fn a_transaction_and_an_idempotent_producer_through_their_lives() {
    let server = Server::start();
    create_topic(&server, 2);

    // Nothing transactional yet: an empty list, an unknown id.
    let list = server.wait_for("ListTransactions to answer", || {
        let run = server.txns(&["list"]);
        (run.code == Some(0)).then_some(run)
    });
    assert_eq!(list.rows(&LIST_HEADER), Vec::<Vec<String>>::new());
    let unknown = server
        .txns(&[
            "describe",
            "--transactional-id",
            "nobody",
            "--timeout-ms",
            "20000",
        ])
        .failed();
    assert!(
        unknown
            .stderr
            .contains("Failed to describe transaction state of transactional-id `nobody`")
            && unknown.stderr.contains("TRANSACTIONAL_ID_NOT_FOUND"),
        "{unknown:?}"
    );
    assert!(unknown.stdout.is_empty());

    // An open transaction with five records on partition 0.
    let coordinator = coordinator(&server);
    let (pid, epoch) = init_producer_id(&server, coordinator, Some(TXN_ID));
    let before_add = now_ms();
    add_partitions(&server, coordinator, pid, epoch, &[0]);
    produce(&server, 0, (pid, epoch), 0, 5, true);

    let list = server.txns(&["list"]).ok();
    assert_eq!(
        list.rows(&LIST_HEADER),
        vec![cells(&[TXN_ID, "1", &pid.to_string(), "Ongoing"])]
    );
    let filtered = server.txns(&["list", "--state", "completecommit"]).ok();
    assert_eq!(filtered.rows(&LIST_HEADER), Vec::<Vec<String>>::new());
    let by_pid = server
        .txns(&["list", "--producer-id", &pid.to_string()])
        .ok();
    assert_eq!(by_pid.rows(&LIST_HEADER).len(), 1);

    let describe = server
        .txns(&["describe", "--transactional-id", TXN_ID])
        .ok();
    let rows = describe.rows(&DESCRIBE_HEADER);
    assert_eq!(rows.len(), 1, "{describe:?}");
    let row = &rows[0];
    assert_eq!(
        row[..6],
        cells(&[
            "1",
            TXN_ID,
            &pid.to_string(),
            &epoch.to_string(),
            "Ongoing",
            "60000"
        ])[..]
    );
    let started: i64 = row[6].parse().unwrap();
    assert!(
        started >= before_add - 5_000 && started <= now_ms(),
        "start time {started}"
    );
    let duration: i64 = row[7].parse().unwrap();
    assert!(duration >= 0, "{row:?}");
    assert_eq!(row[8], format!("{TOPIC}-0"));

    let producers = server
        .txns(&["describe-producers", "--topic", TOPIC, "--partition", "0"])
        .ok();
    let rows = producers.rows(&PRODUCERS_HEADER);
    assert_eq!(rows.len(), 1, "{producers:?}");
    assert_eq!(
        rows[0][..4],
        cells(&[&pid.to_string(), &epoch.to_string(), "-1", "4"])[..]
    );
    assert_eq!(rows[0][5], "0", "the open transaction starts at offset 0");

    // Commit: the transaction completes, the partition has no open transaction.
    end_txn(coordinator, pid, epoch, true);
    let describe = server.wait_for("the transaction to complete", || {
        let run = server
            .txns(&["describe", "--transactional-id", TXN_ID])
            .ok();
        (run.rows(&DESCRIBE_HEADER)[0][4] == "CompleteCommit").then_some(run)
    });
    // As in Kafka, a completed transaction keeps its start time (the
    // coordinator's txnStartTimestamp) and no longer lists partitions.
    let row = &describe.rows(&DESCRIBE_HEADER)[0];
    assert_eq!(row[6], started.to_string(), "{row:?}");
    assert_eq!(row[8], "", "{row:?}");
    let list = server
        .txns(&["list", "--state", "CompleteCommit,Ongoing"])
        .ok();
    assert_eq!(
        list.rows(&LIST_HEADER),
        vec![cells(&[TXN_ID, "1", &pid.to_string(), "CompleteCommit"])]
    );
    let producers = server
        .txns(&["describe-producers", "--topic", TOPIC, "--partition", "0"])
        .ok();
    let rows = producers.rows(&PRODUCERS_HEADER);
    assert_eq!(rows.len(), 1, "{producers:?}");
    assert_eq!(rows[0][0], pid.to_string());
    assert_eq!(rows[0][3], "4");
    assert!(
        rows[0][2].parse::<i32>().unwrap() >= 0,
        "a marker was written, so the coordinator epoch is known: {rows:?}"
    );
    assert_eq!(rows[0][5], "None");

    // An idempotent producer on partition 1: two batches, sequences 0..=2 and 3..=5.
    let idempotent = init_producer_id(&server, server.addr(), None);
    produce(&server, 1, idempotent, 0, 3, false);
    produce(&server, 1, idempotent, 3, 3, false);
    let producers = server
        .txns(&["describe-producers", "--topic", TOPIC, "--partition", "1"])
        .ok();
    let rows = producers.rows(&PRODUCERS_HEADER);
    assert_eq!(rows.len(), 1, "{producers:?}");
    assert_eq!(
        rows[0],
        cells(&[
            &idempotent.0.to_string(),
            &idempotent.1.to_string(),
            "-1",
            "5",
            &rows[0][4],
            "None"
        ])
    );
    let last_ts: i64 = rows[0][4].parse().unwrap();
    assert!(last_ts > 0 && last_ts <= now_ms(), "{rows:?}");

    // A partition or topic that does not exist.
    let missing = server
        .txns(&[
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            "9",
            "--timeout-ms",
            "3000",
        ])
        .failed();
    assert!(
        missing
            .stderr
            .contains("Failed to describe producers for partition ledger-9 on leader")
            && missing.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{missing:?}"
    );
    let missing = server
        .txns(&[
            "describe-producers",
            "--topic",
            "nope",
            "--partition",
            "0",
            "--timeout-ms",
            "3000",
        ])
        .failed();
    assert!(
        missing.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{missing:?}"
    );
}

#[test]
fn usage_and_connection_errors() {
    let riffle = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_riffle"))
            .arg("transactions")
            .args(args)
            .output()
            .unwrap();
        Run::from(args, out)
    };
    // Usage errors exit with 2 and print nothing on stdout.
    for args in [
        &["list"][..],
        &["--bootstrap-server", "127.0.0.1:1", "describe"],
        &[
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe-producers",
            "--topic",
            "t",
        ],
        &[
            "--bootstrap-server",
            "127.0.0.1:1",
            "describe-producers",
            "--topic",
            "t",
            "--partition",
            "-1",
        ],
        &[
            "--bootstrap-server",
            "127.0.0.1:1",
            "list",
            "--state",
            "Stable",
        ],
        &[
            "--bootstrap-server",
            "127.0.0.1:1",
            "list",
            "--producer-id",
            "x",
        ],
        &["--bootstrap-server", "127.0.0.1:1", "abort"],
    ] {
        let run = riffle(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    let run = riffle(&["list"]);
    assert!(run.stderr.contains("--bootstrap-server"), "{run:?}");

    // Nobody listening: exit 1 with the address and the reason.
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    for args in [
        vec!["list"],
        vec!["describe", "--transactional-id", "x"],
        vec!["describe-producers", "--topic", "t", "--partition", "0"],
    ] {
        let mut full = vec!["--bootstrap-server", &address, "--timeout-ms", "2000"];
        full.extend(args);
        let run = riffle(&full).failed();
        assert!(
            run.stderr.contains(&address) && run.stderr.contains("connection refused"),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}
