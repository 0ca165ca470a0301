//! The quorum's files: what the driver does when it performs the core's
//! [`Action`](crate::core::Action)s.
//!
//! Everything lives in the metadata log directory's `__cluster_metadata-0`
//! directory, in Kafka's formats, so that a Kafka node's directory and ours
//! hold the same files (see `docs/raft-storage.md`):
//!
//! - [`quorum_state`]: the `quorum-state` file, the durable election state
//!   (Kafka's `FileQuorumStateStore`).
//! - [`snapshot`]: `<end offset>-<epoch>.checkpoint` snapshot files, written
//!   locally ([`SnapshotWriter`]), downloaded in chunks from the leader
//!   ([`SnapshotDownload`]), served in chunks ([`snapshot::read_chunk`]) and
//!   read back by the state machine ([`SnapshotReader`]) (Kafka's
//!   `Snapshots`, `FileRawSnapshotWriter`, `RecordsSnapshotWriter`).
//! - [`file_log`]: [`FileRaftLog`], the replicated log over `riffle_log::Log`
//!   (Kafka's `KafkaMetadataLog`).
//! - [`records`]: decoding the records of a batch for the state machine.
//! - [`FileStorage`]: the quorum-state file plus the log, as the driver's
//!   [`RaftStorage`](crate::driver::RaftStorage).
//!
//! Every call is synchronous: the driver runs them on its raft thread.
//! Every file that must not be torn is written to a temporary name,
//! fsynced, renamed into place, and its directory fsynced.
//!
//! Departures from Kafka: the log start offset is not checkpointed; on
//! open it is moved up to the newest snapshot, which is what the core asks
//! for (`DeleteBefore`) right after every snapshot, and only the newest
//! snapshot is kept (Kafka keeps older ones until `metadata.max.retention.*`).

use std::io;
use std::path::{Path, PathBuf};

pub mod file_log;
pub mod quorum_state;
mod raft_storage;
pub mod records;
pub mod snapshot;

pub use file_log::{CommittedRecords, FileRaftLog, FileRaftLogOptions};
pub use quorum_state::QuorumStateFile;
pub use raft_storage::FileStorage;
pub use records::{decode_batch, LogRecord};
pub use snapshot::{SnapshotDownload, SnapshotReader, SnapshotWriter};

/// The directory of the metadata partition inside `metadata.log.dir`.
pub fn partition_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join(riffle_log::dir::METADATA_LOG_DIR_NAME)
}

/// Why a storage call failed. Every message names the file or directory.
///
/// The variants differ in what the caller does: `Io`, `Corrupt`,
/// `Inconsistent` and `Log` mean the disk cannot be trusted, and the node
/// stops (or refuses to start); `Refused` and `OffsetOutOfRange` mean the
/// caller asked for something that breaks the log's rules, a bug in the
/// caller that also stops the node; `SnapshotNotFound` is answered with
/// Kafka's SNAPSHOT_NOT_FOUND.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file's content cannot be understood (torn, wrong format, bad CRC).
    #[error("corrupt file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The files disagree with each other (a log that starts after the
    /// newest snapshot, for instance).
    #[error("inconsistent metadata log in {path}: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
    /// The call breaks the log's rules (an append that does not continue
    /// the log, a chunk at the wrong position).
    #[error("refused on {path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("offset {offset} is outside the log {path} [{start_offset}, {end_offset}]")]
    OffsetOutOfRange {
        path: PathBuf,
        offset: i64,
        start_offset: i64,
        end_offset: i64,
    },
    #[error("no snapshot file {path}")]
    SnapshotNotFound { path: PathBuf },
    /// An error of the underlying `riffle_log::Log`.
    #[error("metadata log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: riffle_log::LogError,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub(crate) fn refused(path: &Path, reason: impl Into<String>) -> StorageError {
    StorageError::Refused {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// fsyncs a directory so that the renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Milliseconds since the epoch, for segment roll times.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
