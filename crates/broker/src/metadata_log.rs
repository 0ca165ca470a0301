//! The seam between the controller and the metadata quorum.
//!
//! The controller hands its records to the [`QuorumLog`], which proposes
//! them to the KRaft quorum (`riffle-raft`) as one batch and returns once
//! they are committed: appended and fsynced on a majority of the voters.
//! A node that is not the quorum leader refuses with NOT_CONTROLLER.
//!
//! Whatever the role, the broker never applies a record before it is
//! committed: the metadata loader follows the high watermark and replays
//! committed records (or, when the log start has moved past what it has
//! applied, the newest snapshot) into the `MetadataImage`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use riffle_metadata::MetadataRecord;
use riffle_raft::driver::{DriverError, RaftHandle};
use riffle_raft::store::{Opened, QuorumStore};
use riffle_raft::{OffsetAndEpoch, RaftConfig, RoleInfo};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Committed metadata, as the loader reads it.
#[derive(Debug)]
pub enum Committed {
    /// Nothing committed beyond the requested offset.
    Nothing,
    /// Committed records in order. `next` is the offset to read from next
    /// (past trailing control records too).
    Records {
        records: Vec<(i64, MetadataRecord)>,
        next: i64,
    },
    /// The log no longer holds the requested offset: replace the image by
    /// this snapshot (every record below `end_offset`).
    Snapshot {
        end_offset: i64,
        records: Vec<MetadataRecord>,
    },
}

/// The storage the quorum runs on (`riffle_raft::storage`).
type Store = Arc<Mutex<QuorumStore>>;

/// The metadata log over the KRaft quorum.
pub struct QuorumLog {
    raft: RaftHandle,
    store: Store,
    node_id: i32,
    /// Voter id → controller listener address.
    pub voters: BTreeMap<i32, String>,
}

impl std::fmt::Debug for QuorumLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumLog")
            .field("node_id", &self.node_id)
            .field("voters", &self.voters)
            .finish_non_exhaustive()
    }
}

fn driver_error(e: DriverError) -> BrokerError {
    match e {
        DriverError::NotLeader { .. } | DriverError::LeadershipLost => {
            BrokerError::NotController(e.to_string())
        }
        DriverError::TooLarge(_) => BrokerError::Storage(e.to_string()),
        DriverError::Stopped(_) => BrokerError::ShuttingDown,
        DriverError::Snapshot(_) => BrokerError::Storage(e.to_string()),
    }
}

/// Kafka's quorum settings from the broker config.
pub fn raft_config(config: &BrokerConfig, cluster_id: &str) -> RaftConfig {
    let voters = config
        .controller_quorum_voters
        .iter()
        .map(|v| v.id)
        .collect();
    let mut raft = RaftConfig::new(config.node_id, cluster_id, voters);
    let ms = |v: i32| v.max(0) as u64;
    raft.election_timeout_ms = ms(config.controller_quorum_election_timeout_ms);
    raft.fetch_timeout_ms = ms(config.controller_quorum_fetch_timeout_ms);
    raft.election_backoff_max_ms = ms(config.controller_quorum_election_backoff_max_ms);
    raft.append_linger_ms = ms(config.controller_quorum_append_linger_ms);
    raft.request_timeout_ms = ms(config.controller_quorum_request_timeout_ms);
    raft.retry_backoff_ms = ms(config.controller_quorum_retry_backoff_ms);
    raft.random_seed ^= std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    raft
}

impl QuorumLog {
    /// Opens the metadata log directory and joins the quorum.
    pub fn open(
        config: &BrokerConfig,
        cluster_id: &str,
        runtime: tokio::runtime::Handle,
    ) -> Result<QuorumLog, BrokerError> {
        if config.controller_quorum_voters.is_empty() {
            return Err(BrokerError::Config(
                "controller.quorum.bootstrap.servers without controller.quorum.voters (a dynamic quorum, KIP-853) is not supported yet; set controller.quorum.voters=id@host:port,...".into(),
            ));
        }
        let Opened {
            store,
            election: persisted,
            log,
            snapshot_size,
        } = QuorumStore::open(&config.metadata_log_dir).map_err(BrokerError::Storage)?;
        let voters: BTreeMap<i32, String> = config
            .controller_quorum_voters
            .iter()
            .map(|v| (v.id, format!("{}:{}", v.host, v.port)))
            .collect();
        let store: Store = Arc::new(Mutex::new(store));
        let raft = RaftHandle::start(
            raft_config(config, cluster_id),
            voters.clone(),
            store.clone() as Arc<Mutex<dyn riffle_raft::driver::RaftStorage>>,
            persisted,
            log,
            snapshot_size,
            runtime,
        );
        Ok(QuorumLog {
            raft,
            store,
            node_id: config.node_id,
            voters,
        })
    }

    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    /// Commits `records` as one batch through the quorum leader; returns
    /// the offset of the last one once it is committed.
    pub async fn commit(&self, records: &[MetadataRecord]) -> Result<i64, BrokerError> {
        let values: Vec<Bytes> = records.iter().map(|r| r.encode()).collect();
        self.raft.propose(values).await.map_err(driver_error)
    }

    /// The exclusive end of the committed records.
    pub fn high_watermark(&self) -> watch::Receiver<i64> {
        self.raft.high_watermark()
    }

    pub fn role(&self) -> watch::Receiver<RoleInfo> {
        self.raft.role()
    }

    /// Committed metadata from offset `from`, at most about `max_bytes`.
    pub fn read_committed(&self, from: i64, max_bytes: usize) -> Result<Committed, BrokerError> {
        let end = *self.raft.high_watermark().borrow();
        if from >= end {
            return Ok(Committed::Nothing);
        }
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let log_start = store.log_start_offset().map_err(BrokerError::Storage)?;
        if from < log_start {
            let Some((id, values)) = store
                .latest_snapshot_values()
                .map_err(BrokerError::Storage)?
            else {
                return Err(BrokerError::Storage(format!(
                    "the metadata log starts at {log_start} but there is no snapshot for offset {from}"
                )));
            };
            let records = values
                .iter()
                .map(|v| MetadataRecord::decode(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BrokerError::Storage(format!("snapshot {id:?}: {e}")))?;
            return Ok(Committed::Snapshot {
                end_offset: id.offset,
                records,
            });
        }
        let (values, next) = store
            .read_values(from, end, max_bytes)
            .map_err(BrokerError::Storage)?;
        drop(store);
        let mut records = Vec::with_capacity(values.len());
        for (offset, value) in values {
            let record = MetadataRecord::decode(&value).map_err(|e| {
                BrokerError::Storage(format!("metadata record at offset {offset}: {e}"))
            })?;
            records.push((offset, record));
        }
        // Control records (LeaderChange) take offsets too: the next read
        // starts after the last batch examined.
        let next = next.min(end).max(from + 1);
        Ok(Committed::Records { records, next })
    }

    /// Writes a snapshot of `records` (the image at `end_offset`).
    pub async fn snapshot(
        &self,
        end_offset: i64,
        records: &[MetadataRecord],
    ) -> Result<OffsetAndEpoch, BrokerError> {
        let values: Vec<Bytes> = records.iter().map(|r| r.encode()).collect();
        self.raft
            .snapshot(end_offset, values)
            .await
            .map_err(driver_error)
    }

    /// Resigns if leader, stops the quorum member and closes the files.
    pub fn close(&self) -> Result<(), BrokerError> {
        self.raft.shutdown();
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .close()
            .map_err(BrokerError::Storage)
    }
}
