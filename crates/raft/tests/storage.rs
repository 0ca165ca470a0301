//! The quorum's files through the public API: `quorum-state`, snapshot
//! files and the log of `__cluster_metadata-0`, across reopen.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use riffle_raft::batch;
use riffle_raft::driver::RaftStorage;
use riffle_raft::storage::snapshot::{self, SnapshotFileKind};
use riffle_raft::storage::{
    partition_dir, FileRaftLog, FileRaftLogOptions, FileStorage, QuorumStateFile, SnapshotReader,
    SnapshotWriter, StorageError,
};
use riffle_raft::{ElectionState, LogState, OffsetAndEpoch};

fn small_segments() -> FileRaftLogOptions {
    FileRaftLogOptions { segment_bytes: 600 }
}

/// One data batch per `(epoch, record count)`, offsets from `start`.
fn build(start: i64, spec: &[(i32, usize)]) -> Vec<Bytes> {
    let mut offset = start;
    spec.iter()
        .map(|&(epoch, count)| {
            let values: Vec<Bytes> = (0..count)
                .map(|i| Bytes::from(format!("record {} of epoch {epoch}", offset + i as i64)))
                .collect();
            let b = batch::data_batch(offset, epoch, 1_000 + offset, &values);
            offset += count as i64;
            b
        })
        .collect()
}

fn concat(batches: &[Bytes]) -> Vec<u8> {
    batches.iter().flat_map(|b| b.iter().copied()).collect()
}

fn open(dir: &Path) -> FileRaftLog {
    FileRaftLog::open_with(dir, &small_segments()).unwrap()
}

fn segment_files(dir: &Path) -> usize {
    fs::read_dir(partition_dir(dir))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

fn snapshot_files(dir: &Path) -> Vec<(OffsetAndEpoch, SnapshotFileKind, PathBuf)> {
    snapshot::list(&partition_dir(dir)).unwrap()
}

fn write_snapshot(dir: &Path, id: OffsetAndEpoch, values: &[Bytes]) -> u64 {
    let mut w = SnapshotWriter::create(&partition_dir(dir), id, 77, 2_000).unwrap();
    w.append(values).unwrap();
    w.finish().unwrap()
}

fn values(n: usize, len: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; len + i % 7]))
        .collect()
}

// ---- quorum-state ----------------------------------------------------

#[test]
fn quorum_state_is_written_as_kafka_writes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = QuorumStateFile::new(tmp.path());
    assert_eq!(file.read().unwrap(), None, "no file on first start");

    // Kafka's own example (FileQuorumStateStore's docs), with no voters.
    let leader = ElectionState {
        epoch: 2,
        leader_id: Some(1),
        voted_id: None,
        voters: BTreeSet::new(),
    };
    file.write(&leader).unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("quorum-state")).unwrap(),
        r#"{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[],"data_version":0}"#
    );
    assert_eq!(file.read().unwrap(), Some(leader));

    let voted = ElectionState {
        epoch: 7,
        leader_id: None,
        voted_id: Some(3),
        voters: BTreeSet::from([1, 2, 3]),
    };
    file.write(&voted).unwrap();
    assert_eq!(
        fs::read_to_string(file.path()).unwrap(),
        r#"{"clusterId":"","leaderId":-1,"leaderEpoch":7,"votedId":3,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}"#
    );
    assert_eq!(
        QuorumStateFile::new(tmp.path()).read().unwrap(),
        Some(voted)
    );
    assert!(
        !tmp.path().join("quorum-state.tmp").exists(),
        "the temporary file is renamed away"
    );
}

#[test]
fn quorum_state_version_1_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("quorum-state"),
        r#"{"leaderId":-1,"leaderEpoch":2,"votedId":1,"votedDirectoryId":"J8aAPcfLQt2bqs1JT_rMgQ","data_version":1}"#,
    )
    .unwrap();
    let state = QuorumStateFile::new(tmp.path()).read().unwrap().unwrap();
    assert_eq!(
        (state.epoch, state.leader_id, state.voted_id),
        (2, None, Some(1))
    );
}

#[test]
fn a_torn_quorum_state_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = QuorumStateFile::new(tmp.path());
    fs::write(file.path(), r#"{"clusterId":"","leaderId":1,"leaderEpo"#).unwrap();
    let err = file.read().unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("not valid JSON"), "{message}");

    fs::write(file.path(), "").unwrap();
    let message = file.read().unwrap_err().to_string();
    assert!(message.contains("empty"), "{message}");
}

// ---- snapshots -------------------------------------------------------

#[test]
fn a_snapshot_reads_back_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(partition_dir(dir)).unwrap();
    let id = OffsetAndEpoch::new(1234, 5);
    // Large enough for several data batches.
    let written = values(3000, 700);
    let size = write_snapshot(dir, id, &written);

    let path = snapshot::snapshot_path(&partition_dir(dir), id);
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    assert!(fs::metadata(&path).unwrap().permissions().readonly());
    let batches = batch::headers(&fs::read(&path).unwrap()).unwrap();
    assert!(batches.len() > 3, "{} batches", batches.len());

    let reader = SnapshotReader::open(&path).unwrap();
    assert_eq!(reader.id(), id);
    assert_eq!(reader.last_contained_log_timestamp(), 77);
    assert_eq!(reader.size_bytes(), size);
    assert_eq!(reader.records(), &written[..]);

    assert_eq!(
        snapshot::latest_snapshot(&partition_dir(dir)).unwrap(),
        Some((id, size))
    );
    assert!(snapshot_files(dir)
        .iter()
        .all(|(_, kind, _)| *kind == SnapshotFileKind::Complete));
}

#[test]
fn an_empty_snapshot_has_a_header_and_a_footer() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(partition_dir(tmp.path())).unwrap();
    let id = OffsetAndEpoch::new(0, 0);
    write_snapshot(tmp.path(), id, &[]);
    let reader = SnapshotReader::open_id(&partition_dir(tmp.path()), id).unwrap();
    assert!(reader.records().is_empty());
}

#[test]
fn an_unfinished_snapshot_writer_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(tmp.path());
    fs::create_dir_all(&dir).unwrap();
    let mut w = SnapshotWriter::create(&dir, OffsetAndEpoch::new(9, 1), 0, 0).unwrap();
    w.append(&values(3, 10)).unwrap();
    assert_eq!(
        snapshot_files(tmp.path()).len(),
        1,
        "a .part file while writing"
    );
    drop(w);
    assert!(snapshot_files(tmp.path()).is_empty());
}

#[test]
fn a_corrupt_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(tmp.path());
    fs::create_dir_all(&dir).unwrap();
    let id = OffsetAndEpoch::new(50, 2);
    write_snapshot(tmp.path(), id, &values(100, 40));
    let path = snapshot::snapshot_path(&dir, id);
    let good = fs::read(&path).unwrap();
    let write = |bytes: &[u8]| {
        let _ = fs::remove_file(&path);
        fs::write(&path, bytes).unwrap();
    };
    let refused = |what: &str| {
        let err = SnapshotReader::open(&path).unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupt { .. }),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{what}: {err}"
        );
        err.to_string()
    };

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    write(&flipped);
    assert!(refused("a flipped bit").contains("CRC"));

    write(&good[..good.len() - 3]);
    refused("a torn tail");

    // Whole batches, but the footer batch is missing.
    let batches = batch::headers(&good).unwrap();
    let footer = batches.last().unwrap().size_bytes();
    write(&good[..good.len() - footer]);
    assert!(refused("no footer").contains("SnapshotFooterRecord"));

    // Without the header batch.
    let header = batches[0].size_bytes();
    write(&good[header..]);
    refused("no header");

    write(b"");
    refused("an empty file");
}

/// A follower downloads the leader's snapshot in chunks of whatever size
/// the leader sends, then installs it.
fn download(
    leader: &FileRaftLog,
    follower: &mut FileRaftLog,
    id: OffsetAndEpoch,
    chunks: &[usize],
) {
    let mut position = 0u64;
    let mut i = 0;
    loop {
        let max = chunks[i % chunks.len()].max(1);
        i += 1;
        let (bytes, size) = leader.read_snapshot_chunk(id, position, max).unwrap();
        follower.write_snapshot_chunk(id, position, &bytes).unwrap();
        position += bytes.len() as u64;
        if position >= size {
            break;
        }
    }
    follower.install_snapshot(id).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// KIP-630: a snapshot fetched in chunks of any size is the leader's
    /// file byte for byte.
    #[test]
    fn a_downloaded_snapshot_is_the_leaders_file(chunks in prop::collection::vec(1usize..5000, 1..8)) {
        let tmp = tempfile::tempdir().unwrap();
        let (leader_dir, follower_dir) = (tmp.path().join("leader"), tmp.path().join("follower"));
        let mut leader = open(&leader_dir);
        leader.append(&concat(&build(0, &[(1, 5), (2, 5)]))).unwrap();
        let id = OffsetAndEpoch::new(10, 2);
        write_snapshot(&leader_dir, id, &values(200, 90));
        leader.delete_before(10).unwrap();

        let mut follower = open(&follower_dir);
        follower.append(&concat(&build(0, &[(1, 3)]))).unwrap();
        download(&leader, &mut follower, id, &chunks);

        let name = snapshot::snapshot_path(Path::new(""), id);
        prop_assert_eq!(
            fs::read(partition_dir(&leader_dir).join(&name)).unwrap(),
            fs::read(partition_dir(&follower_dir).join(&name)).unwrap()
        );
        prop_assert_eq!(follower.state(), LogState {
            start_offset: 10,
            end_offset: 10,
            epochs: vec![],
            latest_snapshot: Some(id),
        });
    }
}

#[test]
fn a_corrupt_download_is_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (leader_dir, follower_dir) = (tmp.path().join("leader"), tmp.path().join("follower"));
    let mut leader = open(&leader_dir);
    leader.append(&concat(&build(0, &[(1, 4)]))).unwrap();
    let id = OffsetAndEpoch::new(4, 1);
    let size = write_snapshot(&leader_dir, id, &values(10, 10));
    leader.delete_before(4).unwrap();

    let mut follower = open(&follower_dir);
    let (bytes, _) = leader.read_snapshot_chunk(id, 0, size as usize).unwrap();
    let mut bytes = bytes.to_vec();
    bytes[100] ^= 1;
    follower.write_snapshot_chunk(id, 0, &bytes).unwrap();
    let err = follower.install_snapshot(id).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(
        snapshot_files(&follower_dir).is_empty(),
        "nothing installed, no .part left"
    );
    assert_eq!(follower.state().latest_snapshot, None);

    // A chunk that does not continue the download is refused.
    follower.write_snapshot_chunk(id, 0, &bytes[..10]).unwrap();
    let err = follower
        .write_snapshot_chunk(id, 11, &bytes[11..20])
        .unwrap_err();
    assert!(matches!(err, StorageError::Refused { .. }), "{err:?}");
    // So is an install of a snapshot that was not downloaded.
    let other = OffsetAndEpoch::new(3, 1);
    let err = follower.install_snapshot(other).unwrap_err();
    assert!(matches!(err, StorageError::Refused { .. }), "{err:?}");
    assert_eq!(follower.state(), LogState::default());
}

#[test]
fn snapshot_chunks_are_served_up_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    log.append(&concat(&build(0, &[(1, 4)]))).unwrap();
    let id = OffsetAndEpoch::new(4, 1);
    let size = write_snapshot(tmp.path(), id, &values(10, 10));
    log.delete_before(4).unwrap();
    let whole = fs::read(snapshot::snapshot_path(log.dir(), id)).unwrap();
    let (tail, total) = log.read_snapshot_chunk(id, size - 5, 100).unwrap();
    assert_eq!((&tail[..], total), (&whole[whole.len() - 5..], size));
    let (empty, _) = log.read_snapshot_chunk(id, size, 100).unwrap();
    assert!(empty.is_empty());
    let err = log.read_snapshot_chunk(id, size + 1, 100).unwrap_err();
    assert!(matches!(err, StorageError::Refused { .. }), "{err:?}");
    let err = log
        .read_snapshot_chunk(OffsetAndEpoch::new(3, 1), 0, 100)
        .unwrap_err();
    assert!(
        matches!(err, StorageError::SnapshotNotFound { .. }),
        "{err:?}"
    );
}

// ---- the log ---------------------------------------------------------

#[test]
fn the_log_keeps_records_and_epochs_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let batches = build(0, &[(1, 3), (1, 2), (2, 4), (4, 1), (4, 3)]);
    let mut log = open(dir);
    assert_eq!(log.state(), LogState::default());
    log.append(&concat(&batches[..2])).unwrap();
    log.append(&concat(&batches[2..])).unwrap();
    log.flush(13).unwrap();
    assert_eq!(
        log.state(),
        LogState {
            start_offset: 0,
            end_offset: 13,
            epochs: vec![(1, 0), (2, 5), (4, 9)],
            latest_snapshot: None,
        }
    );
    assert_eq!(
        log.read(0, 13, 1 << 20).unwrap(),
        Bytes::from(concat(&batches))
    );
    // Reading from the middle of a batch starts at that batch.
    assert_eq!(log.read(6, 13, 1).unwrap(), batches[2]);

    // Truncation (a follower whose log diverged) drops whole batches and
    // the epochs that started in them.
    log.truncate(9).unwrap();
    assert_eq!(log.state().epochs, vec![(1, 0), (2, 5)]);
    assert_eq!(log.state().end_offset, 9);
    log.append(&concat(&build(9, &[(3, 2)]))).unwrap();
    log.flush(11).unwrap();
    let expected = log.state();
    assert_eq!(expected.epochs, vec![(1, 0), (2, 5), (3, 9)]);
    log.close().unwrap();

    let log = open(dir);
    assert_eq!(log.state(), expected);
    assert_eq!(
        log.read(0, 11, 1 << 20).unwrap(),
        Bytes::from([concat(&batches[..3]), concat(&build(9, &[(3, 2)]))].concat())
    );
}

#[test]
fn appends_that_do_not_continue_the_log_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    log.append(&concat(&build(0, &[(2, 3)]))).unwrap();
    for (what, bytes) in [
        ("a gap", concat(&build(4, &[(2, 1)]))),
        ("an overlap", concat(&build(2, &[(2, 1)]))),
        ("an older epoch", concat(&build(3, &[(1, 1)]))),
        ("a torn batch", {
            let b = concat(&build(3, &[(2, 1)]));
            b[..b.len() - 1].to_vec()
        }),
    ] {
        let err = log.append(&bytes).unwrap_err();
        assert!(
            matches!(err, StorageError::Refused { .. }),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains("__cluster_metadata-0"),
            "{what}: {err}"
        );
    }
    assert_eq!(log.end_offset(), 3);
    let err = log.truncate(-1).unwrap_err();
    assert!(matches!(err, StorageError::Refused { .. }), "{err:?}");
    let err = log.read(4, 10, 100).unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { offset: 4, .. }),
        "{err:?}"
    );
}

#[test]
fn read_committed_decodes_data_and_reports_control_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    let mut bytes = concat(&build(0, &[(1, 2)]));
    bytes.extend_from_slice(&batch::leader_change_batch(2, 2, 0, 1, &[1, 2, 3], &[1, 2]));
    bytes.extend_from_slice(&concat(&build(3, &[(2, 3)])));
    log.append(&bytes).unwrap();

    let read = log.read_committed(1, 6, 1 << 20).unwrap();
    let offsets: Vec<i64> = read.records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, [1, 3, 4, 5]);
    assert_eq!(read.records[0].1, Bytes::from("record 1 of epoch 1"));
    assert_eq!(read.control_offsets, [2]);
    assert_eq!(read.next_offset, 6);

    // Only the control batch below the end: nothing to apply, but the
    // state machine learns where to go on.
    let read = log.read_committed(2, 3, 1 << 20).unwrap();
    assert!(read.records.is_empty());
    assert_eq!((read.control_offsets, read.next_offset), (vec![2], 3));

    let read = log.read_committed(6, 6, 1 << 20).unwrap();
    assert_eq!(read.next_offset, 6);
}

#[test]
fn install_snapshot_then_reopen_starts_at_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (leader_dir, follower_dir) = (tmp.path().join("leader"), tmp.path().join("follower"));
    let mut leader = open(&leader_dir);
    leader
        .append(&concat(&build(0, &[(1, 10), (3, 10)])))
        .unwrap();
    let id = OffsetAndEpoch::new(20, 3);
    write_snapshot(&leader_dir, id, &values(30, 20));
    leader.delete_before(20).unwrap();

    let mut follower = open(&follower_dir);
    follower.append(&concat(&build(0, &[(1, 12)]))).unwrap();
    download(&leader, &mut follower, id, &[333]);
    let installed = LogState {
        start_offset: 20,
        end_offset: 20,
        epochs: vec![],
        latest_snapshot: Some(id),
    };
    assert_eq!(follower.state(), installed);
    follower.close().unwrap();

    let mut follower = open(&follower_dir);
    assert_eq!(follower.state(), installed);
    assert_eq!(
        follower.latest_snapshot_size(),
        leader.latest_snapshot_size()
    );
    // The log goes on from the snapshot.
    follower.append(&concat(&build(20, &[(3, 2)]))).unwrap();
    follower.close().unwrap();
    let follower = open(&follower_dir);
    assert_eq!(follower.state().epochs, vec![(3, 20)]);
    assert_eq!(follower.state().end_offset, 22);
}

#[test]
fn an_install_interrupted_before_the_log_reset_is_finished_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = open(dir);
    log.append(&concat(&build(0, &[(1, 10)]))).unwrap();
    log.close().unwrap();
    // The snapshot was made durable, then the node stopped.
    let id = OffsetAndEpoch::new(30, 2);
    write_snapshot(dir, id, &values(5, 5));

    let log = open(dir);
    assert_eq!(
        log.state(),
        LogState {
            start_offset: 30,
            end_offset: 30,
            epochs: vec![],
            latest_snapshot: Some(id),
        }
    );
}

#[test]
fn a_snapshot_of_a_newer_epoch_replaces_a_diverging_log_on_open() {
    // Kafka's truncateToLatestSnapshot: the log holds offsets past the
    // snapshot, but only from an older epoch, so it is not the history the
    // snapshot summarises.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = open(dir);
    log.append(&concat(&build(0, &[(1, 10)]))).unwrap();
    log.close().unwrap();
    let id = OffsetAndEpoch::new(5, 2);
    write_snapshot(dir, id, &[]);
    let log = open(dir);
    assert_eq!((log.start_offset(), log.end_offset()), (5, 5));
}

#[test]
fn delete_before_then_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = open(dir);
    let spec: Vec<(i32, usize)> = (0..30).map(|i| (1 + i / 10, 3)).collect();
    let batches = build(0, &spec);
    log.append(&concat(&batches)).unwrap();
    log.flush(90).unwrap();
    let segments_before = segment_files(dir);
    assert!(segments_before > 4, "{segments_before} segments");

    let old = OffsetAndEpoch::new(30, 1);
    write_snapshot(dir, old, &values(3, 3));
    log.delete_before(30).unwrap();
    let new = OffsetAndEpoch::new(61, 3);
    write_snapshot(dir, new, &values(3, 3));
    log.delete_before(61).unwrap();

    let state = log.state();
    assert_eq!(state.start_offset, 61);
    assert_eq!(state.epochs, vec![(3, 61)]);
    assert_eq!(state.latest_snapshot, Some(new));
    assert!(
        segment_files(dir) < segments_before,
        "whole segments below 61 are gone"
    );
    assert_eq!(
        snapshot_files(dir).iter().map(|s| s.0).collect::<Vec<_>>(),
        [new],
        "only the newest snapshot is kept"
    );
    // The batch holding 61 starts at 60 and is still read whole.
    assert_eq!(log.read(61, 90, 1).unwrap(), batches[20]);
    let err = log.read(59, 90, 1).unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { .. }),
        "{err:?}"
    );
    log.close().unwrap();

    let log = open(dir);
    assert_eq!(log.state(), state);
    assert_eq!(
        log.read(61, 90, 1 << 20).unwrap(),
        Bytes::from(concat(&batches[20..]))
    );
}

#[test]
fn delete_before_needs_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    log.append(&concat(&build(0, &[(1, 10)]))).unwrap();
    let err = log.delete_before(5).unwrap_err();
    assert!(matches!(err, StorageError::Refused { .. }), "{err:?}");
    assert_eq!(log.start_offset(), 0);
}

#[test]
fn a_log_that_starts_after_its_snapshots_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = open(dir);
    let spec: Vec<(i32, usize)> = (0..20).map(|_| (1, 3)).collect();
    log.append(&concat(&build(0, &spec))).unwrap();
    write_snapshot(dir, OffsetAndEpoch::new(45, 1), &[]);
    log.delete_before(45).unwrap();
    log.close().unwrap();
    for (_, _, path) in snapshot_files(dir) {
        fs::remove_file(path).unwrap();
    }
    let err = FileRaftLog::open_with(dir, &small_segments()).unwrap_err();
    assert!(matches!(err, StorageError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("no snapshot"), "{err}");
}

#[test]
fn leftover_partial_and_deleted_snapshots_are_removed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(tmp.path());
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("00000000000000000010-0000000001-42.checkpoint.part"),
        b"x",
    )
    .unwrap();
    fs::write(
        dir.join("00000000000000000010-0000000001.checkpoint.deleted"),
        b"x",
    )
    .unwrap();
    let log = open(tmp.path());
    assert!(snapshot_files(tmp.path()).is_empty());
    assert_eq!(log.state(), LogState::default());
}

#[test]
fn file_storage_serves_the_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut storage, persisted) = FileStorage::open(tmp.path()).unwrap();
    assert_eq!(persisted, None);
    let state = ElectionState {
        epoch: 3,
        leader_id: Some(2),
        voted_id: Some(2),
        voters: BTreeSet::from([1, 2, 3]),
    };
    storage.persist_election(&state).unwrap();
    storage.append(&concat(&build(0, &[(3, 4)]))).unwrap();
    storage.flush(4).unwrap();
    let id = OffsetAndEpoch::new(4, 3);
    let size = storage.write_snapshot(id, 5_000, &values(4, 4)).unwrap();
    storage.delete_before(4).unwrap();
    let (chunk, total) = storage.read_snapshot(id, 0, 10).unwrap();
    assert_eq!((chunk.len(), total), (10, size));
    storage.close().unwrap();

    let (storage, persisted) = FileStorage::open(tmp.path()).unwrap();
    assert_eq!(persisted, Some(state));
    assert_eq!(storage.log().state().latest_snapshot, Some(id));
    let reader = SnapshotReader::open_id(storage.log().dir(), id).unwrap();
    assert_eq!(reader.last_contained_log_timestamp(), 5_000);
    assert_eq!(reader.records(), &values(4, 4)[..]);
}

// ---- read() against a model -------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A read returns whole batches, starting with the batch that holds
    /// `from`, each ending below `end`: as many as fit in `max_bytes`, and
    /// one batch when even that does not fit, across segment boundaries.
    #[test]
    fn read_returns_whole_batches_within_bounds(
        spec in prop::collection::vec((0i32..3, 1usize..6), 1..40),
        from_frac in 0.0f64..=1.0,
        end_extra in 0i64..40,
        max_bytes in 0usize..1500,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        let mut epoch = 0;
        let spec: Vec<(i32, usize)> = spec.into_iter().map(|(bump, n)| { epoch += bump; (epoch, n) }).collect();
        let batches = build(0, &spec);
        log.append(&concat(&batches)).unwrap();
        let leo = log.end_offset();
        let from = (from_frac * leo as f64) as i64;
        let end = (from + end_extra).min(leo + 5);

        let got = log.read(from, end, max_bytes).unwrap();
        let headers = batch::headers(&got).unwrap();
        // The model: each appended batch with its first and last offsets.
        let model: Vec<(i64, i64, &Bytes)> = batches
            .iter()
            .map(|b| {
                let h = batch::headers(b).unwrap()[0];
                (h.base_offset, h.last_offset(), b)
            })
            .collect();
        // The model's answer: from the batch holding `from`, batches below
        // `end` while they fit, the first one regardless.
        let mut expected = Vec::new();
        if let Some(i) = model.iter().position(|m| m.1 >= from) {
            for (k, (_, last, bytes)) in model[i..].iter().enumerate() {
                if *last >= end || (k > 0 && expected.len() + bytes.len() > max_bytes) {
                    break;
                }
                expected.extend_from_slice(bytes);
            }
        }
        prop_assert_eq!(&got[..], &expected[..]);
        if let Some(h) = headers.first() {
            prop_assert!(h.base_offset <= from && from <= h.last_offset());
        }
        prop_assert!(headers.iter().all(|h| h.last_offset() < end));
        prop_assert!(headers.len() <= 1 || got.len() <= max_bytes);
    }
}
