//! The quorum's storage as one node uses it: the driver's
//! [`RaftStorage`] and the state machine's reads of what is committed, over
//! the files of [`crate::storage`], closable once.

use std::path::Path;

use bytes::Bytes;

use crate::driver::RaftStorage;
use crate::storage::{FileStorage, SnapshotReader};
use crate::types::{ElectionState, LogState, OffsetAndEpoch};

/// The metadata partition's files, shared by the raft thread and the
/// metadata loader (behind a mutex).
#[derive(Debug)]
pub struct QuorumStore {
    inner: Option<FileStorage>,
}

/// What a node starts its quorum member from.
#[derive(Debug)]
pub struct Opened {
    pub store: QuorumStore,
    pub election: Option<ElectionState>,
    pub log: LogState,
    pub snapshot_size: u64,
}

const CLOSED: &str = "the metadata log is closed";

impl QuorumStore {
    /// Opens `<metadata_log_dir>/__cluster_metadata-0`.
    pub fn open(metadata_log_dir: &Path) -> Result<Opened, String> {
        let (storage, election) = FileStorage::open(metadata_log_dir).map_err(|e| e.to_string())?;
        let log = storage.log().state();
        let snapshot_size = storage.log().latest_snapshot_size();
        Ok(Opened {
            store: QuorumStore {
                inner: Some(storage),
            },
            election,
            log,
            snapshot_size,
        })
    }

    fn get(&mut self) -> Result<&mut FileStorage, String> {
        self.inner.as_mut().ok_or_else(|| CLOSED.to_string())
    }

    /// The values of the data records with offsets in `from..end`
    /// (control records skipped), whole batches, at most about
    /// `max_bytes` but at least one batch; and the offset after the last
    /// batch read, where the next read starts.
    pub fn read_values(
        &mut self,
        from: i64,
        end: i64,
        max_bytes: usize,
    ) -> Result<(Vec<(i64, Bytes)>, i64), String> {
        let read = self
            .get()?
            .log()
            .read_committed(from, end, max_bytes)
            .map_err(|e| e.to_string())?;
        let records = read.records.into_iter().filter(|(o, _)| *o < end).collect();
        Ok((records, read.next_offset))
    }

    /// The first offset the log holds; earlier records are only in the
    /// newest snapshot.
    pub fn log_start_offset(&mut self) -> Result<i64, String> {
        Ok(self.get()?.log().start_offset())
    }

    /// The newest snapshot and the values of its data records.
    pub fn latest_snapshot_values(
        &mut self,
    ) -> Result<Option<(OffsetAndEpoch, Vec<Bytes>)>, String> {
        let storage = self.get()?;
        let Some((id, _)) = storage.log().latest_snapshot() else {
            return Ok(None);
        };
        let reader = SnapshotReader::open_id(storage.log().dir(), id).map_err(|e| e.to_string())?;
        Ok(Some((id, reader.into_records())))
    }

    /// Flushes and closes the files; later calls fail.
    pub fn close(&mut self) -> Result<(), String> {
        match self.inner.take() {
            Some(s) => s.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

impl RaftStorage for QuorumStore {
    fn persist_election(&mut self, state: &ElectionState) -> Result<(), String> {
        self.get()?.persist_election(state)
    }
    fn append(&mut self, batches: &[u8]) -> Result<(), String> {
        self.get()?.append(batches)
    }
    fn truncate(&mut self, end_offset: i64) -> Result<(), String> {
        self.get()?.truncate(end_offset)
    }
    fn flush(&mut self, end_offset: i64) -> Result<(), String> {
        self.get()?.flush(end_offset)
    }
    fn read(&mut self, from: i64, end: i64, max_bytes: usize) -> Result<Bytes, String> {
        RaftStorage::read(self.get()?, from, end, max_bytes)
    }
    fn write_snapshot_chunk(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        bytes: &[u8],
    ) -> Result<(), String> {
        self.get()?.write_snapshot_chunk(id, position, bytes)
    }
    fn install_snapshot(&mut self, id: OffsetAndEpoch) -> Result<(), String> {
        self.get()?.install_snapshot(id)
    }
    fn delete_before(&mut self, offset: i64) -> Result<(), String> {
        self.get()?.delete_before(offset)
    }
    fn read_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        max_bytes: usize,
    ) -> Result<(Bytes, u64), String> {
        self.get()?.read_snapshot(id, position, max_bytes)
    }
    fn write_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        timestamp: i64,
        values: &[Bytes],
    ) -> Result<u64, String> {
        self.get()?.write_snapshot(id, timestamp, values)
    }
}
