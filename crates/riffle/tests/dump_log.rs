//! `riffle dump-log` on the Kafka-format fixture: every batch listed, indexes
//! consistent; a torn copy is reported and fails.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../log/tests/fixtures/kafka-segment/fixture-0")
}

fn dump(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .arg("dump-log")
        .args(args)
        .output()
        .expect("run riffle");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn dumps_every_batch_and_record_of_a_kafka_partition() {
    let dir = fixture();
    let (ok, out) = dump(&["--print-records", "--verify-index", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("baseOffset:")).count(),
        40
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("| offset:")).count(),
        61
    );
    assert_eq!(out.matches("Index check: consistent").count(), 2);
    assert!(out.contains("compresscodec: gzip"));
    assert!(out.contains("isControl: true"));
    // The fixture's transaction marker, written by an independent generator.
    assert!(
        out.contains("headerKeys: [] endTxnMarker: COMMIT coordinatorEpoch: 2"),
        "{out}"
    );
    assert!(out.contains("LogAppendTime"));
}

#[test]
fn reports_a_torn_segment_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture().join("00000000000000000000.log");
    let bytes = std::fs::read(&src).unwrap();
    let torn = tmp.path().join("00000000000000000000.log");
    std::fs::write(&torn, &bytes[..bytes.len() - 10]).unwrap();
    let (ok, out) = dump(&[torn.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("baseOffset:")).count(),
        29
    );
    assert!(out.contains("torn"), "{out}");
    // A wrong index entry is found too.
    std::fs::write(&torn, &bytes).unwrap();
    std::fs::write(
        tmp.path().join("00000000000000000000.index"),
        [0, 0, 0, 5, 0, 0, 0, 7],
    )
    .unwrap();
    std::fs::write(tmp.path().join("00000000000000000000.timeindex"), []).unwrap();
    let (ok, out) = dump(&["--verify-index", torn.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("INCONSISTENT"));
}

#[test]
fn dumps_producer_snapshots_and_the_aborted_transaction_index() {
    use riffle_log::producer::{BatchMetadata, ProducerEntry};
    use riffle_log::{producer_snapshot, AbortedTxn};
    let tmp = tempfile::tempdir().unwrap();
    let mut entry = ProducerEntry::empty(7);
    entry.epoch = 3;
    entry.coordinator_epoch = 5;
    entry.last_timestamp = 1_000;
    entry.current_txn_first_offset = Some(40);
    entry.batches.push_back(BatchMetadata {
        last_seq: 9,
        last_offset: 44,
        offset_delta: 4,
        timestamp: 1_000,
    });
    std::fs::write(
        tmp.path().join("00000000000000000045.snapshot"),
        producer_snapshot::encode([&entry]),
    )
    .unwrap();
    let aborted = AbortedTxn {
        producer_id: 7,
        first_offset: 10,
        last_offset: 20,
        last_stable_offset: 21,
    };
    let mut index = aborted.to_bytes().to_vec();
    std::fs::write(tmp.path().join("00000000000000000000.txnindex"), &index).unwrap();
    let (ok, out) = dump(&[tmp.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains(
        "producerId: 7 producerEpoch: 3 coordinatorEpoch: 5 currentTxnFirstOffset: Some(40) lastTimestamp: 1000 firstSequence: 5 lastSequence: 9 lastOffset: 44 offsetDelta: 4 timestamp: 1000"
    ), "{out}");
    assert!(
        out.contains(
            "version: 0 producerId: 7 firstOffset: 10 lastOffset: 20 lastStableOffset: 21"
        ),
        "{out}"
    );

    // A torn index entry and a snapshot with a bad CRC are reported and fail.
    index.extend_from_slice(&[0; 5]);
    std::fs::write(tmp.path().join("00000000000000000000.txnindex"), &index).unwrap();
    let (ok, out) = dump(&[tmp.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("a torn entry of 5 byte(s)"), "{out}");
    let mut snapshot = producer_snapshot::encode([&entry]);
    let last = snapshot.len() - 1;
    snapshot[last] ^= 1;
    let path = tmp.path().join("00000000000000000045.snapshot");
    std::fs::write(&path, snapshot).unwrap();
    let (ok, out) = dump(&[path.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("invalid producer snapshot"), "{out}");
}
