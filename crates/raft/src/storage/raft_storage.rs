//! [`FileStorage`]: the files of one quorum member, as the driver's
//! [`RaftStorage`].

use std::path::Path;

use bytes::Bytes;

use super::file_log::{FileRaftLog, FileRaftLogOptions};
use super::quorum_state::QuorumStateFile;
use super::Result;
use crate::driver::RaftStorage;
use crate::types::{ElectionState, OffsetAndEpoch};

/// The `quorum-state` file and the log of `__cluster_metadata-0`.
#[derive(Debug)]
pub struct FileStorage {
    quorum_state: QuorumStateFile,
    log: FileRaftLog,
}

impl FileStorage {
    /// Opens the log in `metadata_log_dir` and reads the persisted
    /// election state (None on first start). Either failing stops the
    /// start: the error names the file.
    pub fn open(metadata_log_dir: &Path) -> Result<(FileStorage, Option<ElectionState>)> {
        FileStorage::open_with(metadata_log_dir, &FileRaftLogOptions::default())
    }

    pub fn open_with(
        metadata_log_dir: &Path,
        options: &FileRaftLogOptions,
    ) -> Result<(FileStorage, Option<ElectionState>)> {
        let log = FileRaftLog::open_with(metadata_log_dir, options)?;
        let quorum_state = QuorumStateFile::new(log.dir());
        let persisted = quorum_state.read()?;
        Ok((FileStorage { quorum_state, log }, persisted))
    }

    pub fn log(&self) -> &FileRaftLog {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut FileRaftLog {
        &mut self.log
    }

    pub fn quorum_state(&self) -> &QuorumStateFile {
        &self.quorum_state
    }

    pub fn close(self) -> Result<()> {
        self.log.close()
    }
}

impl RaftStorage for FileStorage {
    fn persist_election(&mut self, state: &ElectionState) -> Result<(), String> {
        self.quorum_state.write(state).map_err(|e| e.to_string())
    }

    fn append(&mut self, batches: &[u8]) -> Result<(), String> {
        self.log.append(batches).map_err(|e| e.to_string())
    }

    fn truncate(&mut self, end_offset: i64) -> Result<(), String> {
        self.log.truncate(end_offset).map_err(|e| e.to_string())
    }

    fn flush(&mut self, end_offset: i64) -> Result<(), String> {
        self.log.flush(end_offset).map_err(|e| e.to_string())
    }

    fn read(&mut self, from: i64, end: i64, max_bytes: usize) -> Result<Bytes, String> {
        self.log
            .read(from, end, max_bytes)
            .map_err(|e| e.to_string())
    }

    fn write_snapshot_chunk(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        bytes: &[u8],
    ) -> Result<(), String> {
        self.log
            .write_snapshot_chunk(id, position, bytes)
            .map_err(|e| e.to_string())
    }

    fn install_snapshot(&mut self, id: OffsetAndEpoch) -> Result<(), String> {
        self.log.install_snapshot(id).map_err(|e| e.to_string())
    }

    fn delete_before(&mut self, offset: i64) -> Result<(), String> {
        self.log.delete_before(offset).map_err(|e| e.to_string())
    }

    fn read_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        max_bytes: usize,
    ) -> Result<(Bytes, u64), String> {
        self.log
            .read_snapshot_chunk(id, position, max_bytes)
            .map_err(|e| e.to_string())
    }

    fn write_snapshot(
        &mut self,
        id: OffsetAndEpoch,
        timestamp: i64,
        values: &[Bytes],
    ) -> Result<u64, String> {
        let write = || -> Result<u64> {
            let mut writer = self.log.create_snapshot(id, timestamp, timestamp)?;
            writer.append(values)?;
            writer.finish()
        };
        write().map_err(|e| e.to_string())
    }
}
