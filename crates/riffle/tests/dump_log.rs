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
