//! The seam between the controller and the metadata quorum.
//!
//! The controller hands its records to a [`MetadataLog`], which appends
//! them as one batch and later reports them committed. On one node
//! ([`LocalMetadataLog`]) "committed" means written and fsynced to the local
//! `__cluster_metadata-0` log. The KRaft issue implements the same trait
//! over the Raft quorum: append on the leader, commit on a majority.
//!
//! Whatever the implementation, the broker never applies a record before it
//! is committed: the metadata loader follows [`MetadataLog::committed`] and
//! replays committed records into the `MetadataImage`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use riffle_log::batch::BatchIter;
use riffle_log::{LoadState, Log, LogConfig, ValidationConfig};
use riffle_metadata::MetadataRecord;
use tokio::sync::watch;

use crate::error::BrokerError;
use crate::util::now_ms;

/// The metadata log as the controller and the loader see it.
pub trait MetadataLog: Send + Sync + std::fmt::Debug {
    /// Appends `records` as one atomic batch. Returns the offset of the
    /// last record; it is committed once [`MetadataLog::committed`] reaches
    /// it.
    fn append(&self, records: &[MetadataRecord]) -> Result<i64, BrokerError>;

    /// The offset of the last committed record (-1 when none).
    fn committed(&self) -> watch::Receiver<i64>;

    /// Committed records with offsets in `from..=committed`, in order, at
    /// most about `max_bytes` of them (always at least one batch).
    fn read_committed(
        &self,
        from: i64,
        max_bytes: u64,
    ) -> Result<Vec<(i64, MetadataRecord)>, BrokerError>;

    /// Flushes and closes the log.
    fn close(&self) -> Result<(), BrokerError>;
}

/// The single-node metadata log: `<metadata.log.dir>/__cluster_metadata-0`.
#[derive(Debug)]
pub struct LocalMetadataLog {
    dir: PathBuf,
    log: Mutex<Option<Log>>,
    committed: watch::Sender<i64>,
}

/// The metadata log keeps everything: retention never applies to it.
fn metadata_log_config() -> LogConfig {
    let mut config = LogConfig::default();
    config.retention_ms = -1;
    config.retention_bytes = -1;
    config.segment_bytes = 8 * 1024 * 1024;
    config
}

impl LocalMetadataLog {
    /// Opens the metadata log under `metadata_dir`, re-validating every
    /// batch (the log is small and is the source of truth for the cluster).
    pub fn open(metadata_dir: &Path) -> Result<LocalMetadataLog, BrokerError> {
        let dir = metadata_dir.join(riffle_log::dir::METADATA_LOG_DIR_NAME);
        let log = Log::open(&dir, metadata_log_config(), LoadState::unclean(now_ms()))
            .map_err(|e| BrokerError::Storage(format!("metadata log {}: {e}", dir.display())))?;
        let committed = log.log_end_offset() - 1;
        Ok(LocalMetadataLog {
            dir,
            log: Mutex::new(Some(log)),
            committed: watch::channel(committed).0,
        })
    }

    fn with_log<T>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let mut guard = self
            .log
            .lock()
            .map_err(|_| BrokerError::Storage("metadata log lock poisoned".into()))?;
        match guard.as_mut() {
            Some(log) => f(log),
            None => Err(BrokerError::ShuttingDown),
        }
    }
}

impl MetadataLog for LocalMetadataLog {
    fn append(&self, records: &[MetadataRecord]) -> Result<i64, BrokerError> {
        if records.is_empty() {
            return Ok(*self.committed.borrow());
        }
        let now = now_ms();
        let last = self.with_log(|log| {
            let batch = riffle_metadata::encode_batch(records, now);
            let validation = ValidationConfig {
                max_message_bytes: usize::MAX,
                segment_bytes: usize::MAX,
                ..ValidationConfig::default()
            };
            let validated = riffle_log::validate_produce(batch, &validation, now)
                .map_err(|e| BrokerError::Storage(format!("metadata batch refused: {e}")))?;
            let info = log
                .append_as_leader(validated, 0, now)
                .map_err(|e| BrokerError::Storage(format!("metadata log append: {e}")))?;
            // Metadata is the cluster's source of truth: durable before it
            // counts as committed.
            log.flush(now)
                .map_err(|e| BrokerError::Storage(format!("metadata log flush: {e}")))?;
            // Published under the log lock, so the committed offset
            // never goes backwards.
            self.committed.send_replace(info.last_offset);
            Ok(info.last_offset)
        })?;
        Ok(last)
    }

    fn committed(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    fn read_committed(
        &self,
        from: i64,
        max_bytes: u64,
    ) -> Result<Vec<(i64, MetadataRecord)>, BrokerError> {
        let committed = *self.committed.borrow();
        if from > committed {
            return Ok(Vec::new());
        }
        let slice = self.with_log(|log| {
            log.read(from, max_bytes, committed + 1, true)
                .map_err(|e| BrokerError::Storage(format!("metadata log read: {e}")))
        })?;
        let Some(slice) = slice else {
            return Ok(Vec::new());
        };
        let bytes = slice
            .read_to_vec()
            .map_err(|e| BrokerError::Storage(format!("metadata log read: {e}")))?;
        // Make sure whole batches were read before decoding.
        if BatchIter::new(&bytes).any(|b| b.is_err()) {
            return Err(BrokerError::Storage(format!(
                "metadata log {} holds a corrupt batch at or after offset {from}",
                self.dir.display()
            )));
        }
        let records = riffle_metadata::decode_batches(&bytes).map_err(|e| {
            BrokerError::Storage(format!(
                "metadata log {}: undecodable record at or after offset {from}: {e}",
                self.dir.display()
            ))
        })?;
        Ok(records
            .into_iter()
            .filter(|(offset, _)| *offset >= from && *offset <= committed)
            .collect())
    }

    fn close(&self) -> Result<(), BrokerError> {
        let mut guard = self
            .log
            .lock()
            .map_err(|_| BrokerError::Storage("metadata log lock poisoned".into()))?;
        if let Some(log) = guard.take() {
            log.close(now_ms())
                .map_err(|e| BrokerError::Storage(format!("metadata log close: {e}")))?;
        }
        Ok(())
    }
}
