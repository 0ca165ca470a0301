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

mod common;

use std::net::SocketAddr;

use kafka_protocol::messages::*;

use common::{
    add_partitions_request, call, cells, end_txn_request, free_port, init_producer_id_request,
    now_ms, numbered_values, produce_request, record_batch, riffle, Run, Server,
};

const TOPIC: &str = "ledger";
const TXN_ID: &str = "ledger-writer";
const TXN_TIMEOUT_MS: i32 = 60_000;

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

impl Server {
    /// `riffle transactions --bootstrap-server <this server> ARGS`.
    fn txns(&self, args: &[&str]) -> Run {
        self.tool("transactions", args)
    }
}

impl Run {
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

/// InitProducerId, transactional (at the coordinator) or idempotent;
/// returns the producer id and epoch.
fn init_producer_id(server: &Server, at: SocketAddr, transactional_id: Option<&str>) -> (i64, i16) {
    let req = init_producer_id_request(transactional_id, TXN_TIMEOUT_MS);
    server.wait_for("a producer id", || {
        let r: InitProducerIdResponse = call(at, ApiKey::InitProducerId, 4, &req).ok()?;
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    })
}

fn add_partitions(
    server: &Server,
    coordinator: SocketAddr,
    producer: (i64, i16),
    partitions: &[i32],
) {
    let req = add_partitions_request(TXN_ID, producer, TOPIC, partitions);
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
    producer: (i64, i16),
    first_seq: i32,
    n: usize,
    transactional: bool,
) {
    let batch = record_batch(&numbered_values(n), producer, first_seq, transactional);
    let req = produce_request(TOPIC, partition, batch, transactional.then_some(TXN_ID));
    let r: ProduceResponse = call(server.addr(), ApiKey::Produce, 8, &req).unwrap();
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{r:?}");
}

fn end_txn(coordinator: SocketAddr, producer: (i64, i16), commit: bool) {
    let req = end_txn_request(TXN_ID, producer, commit);
    let r: EndTxnResponse = call(coordinator, ApiKey::EndTxn, 3, &req).unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
}

#[test]
fn a_transaction_and_an_idempotent_producer_through_their_lives() {
    let server = Server::start(&[]);
    server.create_topic(TOPIC, 2);

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
    let coordinator = server.coordinator(1, TXN_ID);
    let (pid, epoch) = init_producer_id(&server, coordinator, Some(TXN_ID));
    let before_add = now_ms();
    add_partitions(&server, coordinator, (pid, epoch), &[0]);
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
    end_txn(coordinator, (pid, epoch), true);
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
        let mut all = vec!["transactions"];
        all.extend(args);
        riffle(&all)
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
