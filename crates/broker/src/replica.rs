//! The replica manager: the partitions this node hosts and their logs.
//!
//! Each log directory is one [`LogDir`] behind a mutex. The lock is held
//! for index lookups and the append `write`, never while fetched bytes are
//! copied out: a read returns a [`riffle_log::FileSlice`] and the copy (or
//! for a fetch, the `sendfile`) happens after the lock is released.
//!
//! With one node every partition has a single replica, so the high
//! watermark is the log end offset and acks=all completes with the local
//! append.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use riffle_log::{
    AbortedTxn, AppendInfo, FileSlice, Log, LogConfig, LogDir, ProducerView, TimestampAndOffset,
    TopicPartition, TxnMarker,
};
use riffle_metadata::{MetadataDelta, MetadataImage};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::error::BrokerError;
use crate::util::now_ms;

/// A per-partition refusal: the Kafka error and an optional message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl PartitionError {
    pub fn new(code: ResponseError) -> Self {
        PartitionError {
            code,
            message: None,
        }
    }
    pub fn with_message(code: ResponseError, message: impl Into<String>) -> Self {
        PartitionError {
            code,
            message: Some(message.into()),
        }
    }
}

impl From<riffle_log::LogError> for PartitionError {
    fn from(e: riffle_log::LogError) -> Self {
        let code = e.error_code();
        if code == ResponseError::KafkaStorageError {
            warn!("log error: {e}");
        }
        PartitionError::with_message(code, e.to_string())
    }
}

/// What the broker knows about a partition it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedPartition {
    pub topic_id: Uuid,
    /// Index into the log directories.
    pub dir: usize,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// A fetch read of one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
    /// For a read_committed read: the aborted transactions overlapping the
    /// records returned, so the consumer can drop their batches.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Copies a slice of a segment file into memory; a failed or short read is
/// KAFKA_STORAGE_ERROR.
pub fn slice_bytes(slice: &FileSlice) -> Result<Bytes, PartitionError> {
    slice
        .read_to_vec()
        .map(Bytes::from)
        .map_err(|e| PartitionError::with_message(ResponseError::KafkaStorageError, e.to_string()))
}

/// A read that leaves the records in their segment file.
#[derive(Debug)]
pub struct SliceRead {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub slice: Option<FileSlice>,
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Sizes of one partition's log, for DescribeLogDirs.
#[derive(Debug, Clone)]
pub struct PartitionSize {
    pub tp: TopicPartition,
    pub size_bytes: u64,
}

#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    dir_paths: Vec<PathBuf>,
    dirs: Vec<Mutex<LogDir>>,
    partitions: RwLock<HashMap<TopicPartition, HostedPartition>>,
    default_config: RwLock<LogConfig>,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
}

/// Builds a topic's log config: the broker defaults with the topic's own
/// configs on top. Topic configs the log does not read (compression.type,
/// min.insync.replicas...) are skipped here.
pub fn topic_log_config(default: &LogConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut config = default.clone();
    for (key, value) in overrides {
        if riffle_log::config::KEYS.contains(&key.as_str()) {
            if let Err(e) = config.set(key, value) {
                // Values were validated by the controller; an old record that
                // no longer parses keeps the default.
                warn!("ignoring topic config {key}={value}: {e}");
            }
        }
    }
    config
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a log lock is a bug; the data structure is
    // still the best information available.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplicaManager {
    /// Opens every log directory and hosts the partitions of `image` that
    /// are assigned to this node, creating missing logs.
    pub fn open(
        node_id: i32,
        log_dirs: &[PathBuf],
        default_config: LogConfig,
        image: &MetadataImage,
    ) -> Result<ReplicaManager, BrokerError> {
        let now = now_ms();
        let mut dirs = Vec::new();
        for path in log_dirs {
            let dir = LogDir::open(
                path,
                |tp| topic_log_config(&default_config, &image.topic_config(&tp.topic)),
                now,
            )
            .map_err(|e| BrokerError::Storage(format!("log dir {}: {e}", path.display())))?;
            dirs.push(Mutex::new(dir));
        }
        let rm = ReplicaManager {
            node_id,
            dir_paths: log_dirs.to_vec(),
            dirs,
            partitions: RwLock::new(HashMap::new()),
            default_config: RwLock::new(default_config),
            appended: watch::channel(0).0,
        };
        rm.host_all(image)?;
        Ok(rm)
    }

    fn default_config(&self) -> LogConfig {
        self.default_config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hosts every partition of `image` led by this node, finding its log
    /// in whichever directory holds it.
    fn host_all(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let mut hosted = HashMap::new();
        for topic in image.topics() {
            for (&p, part) in &topic.partitions {
                if !part.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), p);
                let dir = self.ensure_log(&tp, image)?;
                hosted.insert(
                    tp,
                    HostedPartition {
                        topic_id: topic.id,
                        dir,
                        leader: part.leader,
                        leader_epoch: part.leader_epoch,
                    },
                );
            }
        }
        // Logs on disk that the metadata does not know are left in place
        // (never deleted on a guess) and not served.
        for (i, dir) in self.dirs.iter().enumerate() {
            for tp in lock(dir).partitions() {
                if !hosted.contains_key(tp) {
                    warn!(
                        partition = %tp.dir_name(),
                        dir = %self.dir_paths[i].display(),
                        "log is not in the cluster metadata; leaving it unserved"
                    );
                }
            }
        }
        *self.partitions.write().unwrap_or_else(|p| p.into_inner()) = hosted;
        Ok(())
    }

    /// The directory holding `tp`'s log, creating the log in the directory
    /// with the fewest partitions when there is none.
    fn ensure_log(&self, tp: &TopicPartition, image: &MetadataImage) -> Result<usize, BrokerError> {
        for (i, dir) in self.dirs.iter().enumerate() {
            if lock(dir).get(tp).is_some() {
                return Ok(i);
            }
        }
        let (i, _) = self
            .dirs
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| lock(d).partitions().count())
            .ok_or_else(|| BrokerError::Config("log.dirs is empty".into()))?;
        let config = topic_log_config(&self.default_config(), &image.topic_config(&tp.topic));
        lock(&self.dirs[i])
            .get_or_create(tp, config, now_ms())
            .map_err(|e| BrokerError::Storage(format!("creating log {}: {e}", tp.dir_name())))?;
        Ok(i)
    }

    /// Acts on a metadata change: creates logs of new partitions, deletes
    /// logs of deleted topics, applies topic config changes.
    pub fn apply_delta(
        &self,
        image: &MetadataImage,
        delta: &MetadataDelta,
    ) -> Result<(), BrokerError> {
        for (topic, id, partitions) in &delta.deleted_topics {
            for p in partitions {
                let tp = TopicPartition::new(topic.clone(), *p);
                let removed = {
                    let mut hosted = self.partitions.write().unwrap_or_else(|e| e.into_inner());
                    if hosted.get(&tp).is_some_and(|h| h.topic_id == *id) {
                        hosted.remove(&tp)
                    } else {
                        None
                    }
                };
                if let Some(h) = removed {
                    lock(&self.dirs[h.dir]).delete(&tp).map_err(|e| {
                        BrokerError::Storage(format!("deleting {}: {e}", tp.dir_name()))
                    })?;
                    info!(partition = %tp.dir_name(), "deleted log");
                }
            }
        }
        let mut touched: Vec<(String, i32)> = delta
            .created_partitions
            .iter()
            .map(|(t, _, p)| (t.clone(), *p))
            .collect();
        touched.extend(delta.changed_partitions.iter().cloned());
        for (topic, p) in touched {
            let Some(t) = image.topic(&topic) else {
                continue;
            };
            let Some(part) = t.partitions.get(&p) else {
                continue;
            };
            if !part.replicas.contains(&self.node_id) {
                continue;
            }
            let tp = TopicPartition::new(topic.clone(), p);
            let dir = self.ensure_log(&tp, image)?;
            self.partitions
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    tp,
                    HostedPartition {
                        topic_id: t.id,
                        dir,
                        leader: part.leader,
                        leader_epoch: part.leader_epoch,
                    },
                );
        }
        for topic in &delta.topic_config_changes {
            self.reconfigure_topic(image, topic);
        }
        if delta.broker_config_changed {
            for topic in image.topics() {
                self.reconfigure_topic(image, &topic.name);
            }
        }
        Ok(())
    }

    /// Changes the broker-level log defaults (a dynamic broker config
    /// change) and reconfigures every log.
    pub fn set_default_config(&self, config: LogConfig, image: &MetadataImage) {
        *self
            .default_config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = config;
        for topic in image.topics() {
            self.reconfigure_topic(image, &topic.name);
        }
    }

    fn reconfigure_topic(&self, image: &MetadataImage, topic: &str) {
        let config = topic_log_config(&self.default_config(), &image.topic_config(topic));
        let hosted: Vec<(TopicPartition, usize)> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(tp, _)| tp.topic == topic)
            .map(|(tp, h)| (tp.clone(), h.dir))
            .collect();
        for (tp, dir) in hosted {
            if let Some(log) = lock(&self.dirs[dir]).get_mut(&tp) {
                log.set_config(config.clone());
            }
        }
    }

    fn hosted(&self, tp: &TopicPartition) -> Result<HostedPartition, PartitionError> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tp)
            .cloned()
            .ok_or_else(|| PartitionError::new(ResponseError::UnknownTopicOrPartition))
    }

    /// Runs `f` on the log of `tp`, which this node must lead.
    fn with_leader_log<T>(
        &self,
        tp: &TopicPartition,
        f: impl FnOnce(&mut Log, &HostedPartition) -> Result<T, PartitionError>,
    ) -> Result<T, PartitionError> {
        let hosted = self.hosted(tp)?;
        if hosted.leader != self.node_id {
            return Err(PartitionError::new(ResponseError::NotLeaderOrFollower));
        }
        let mut dir = lock(&self.dirs[hosted.dir]);
        let log = dir
            .get_mut(tp)
            .ok_or_else(|| PartitionError::new(ResponseError::UnknownTopicOrPartition))?;
        f(log, &hosted)
    }

    /// The topic id and leader epoch of a hosted partition.
    pub fn partition_info(&self, tp: &TopicPartition) -> Option<HostedPartition> {
        self.hosted(tp).ok()
    }

    /// Validates and appends produced records as the leader. A retried
    /// batch of an idempotent producer is not written again: the answer
    /// carries the offsets it got the first time (`duplicate` is set).
    pub fn append(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<AppendInfo, PartitionError> {
        self.append_with(tp, records, Log::append_as_leader)
    }

    /// Appends records a coordinator built (TxnOffsetCommit's transactional
    /// batches): validated like a produce, without the producer sequence
    /// checks, as Kafka's coordinator appends.
    pub fn append_coordinator(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<AppendInfo, PartitionError> {
        self.append_with(tp, records, Log::append_as_coordinator)
    }

    fn append_with(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        append: fn(
            &mut Log,
            riffle_log::ValidatedBatches,
            i32,
            i64,
        ) -> riffle_log::error::Result<AppendInfo>,
    ) -> Result<AppendInfo, PartitionError> {
        let now = now_ms();
        let info = self.with_leader_log(tp, |log, hosted| {
            let validation = log.config().validation();
            let validated =
                riffle_log::validate_produce(BytesMut::from(&records[..]), &validation, now)
                    .map_err(|e| PartitionError::with_message(e.error_code(), e.to_string()))?;
            let info = append(log, validated, hosted.leader_epoch, now)?;
            Self::after_append(log, now)?;
            Ok(info)
        })?;
        if !info.duplicate {
            self.appended.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(info)
    }

    /// With one replica the high watermark is the log end offset: a
    /// completed transaction is stable as soon as its marker is written.
    fn after_append(log: &mut Log, now: i64) -> Result<(), PartitionError> {
        let hw = log.log_end_offset();
        log.on_high_watermark_updated(hw);
        log.maybe_flush(now)?;
        Ok(())
    }

    /// Writes a transaction marker (COMMIT or ABORT control batch) as the
    /// leader of `tp`.
    pub fn write_txn_marker(
        &self,
        tp: &TopicPartition,
        marker: &TxnMarker,
    ) -> Result<AppendInfo, PartitionError> {
        let now = now_ms();
        let info = self.with_leader_log(tp, |log, hosted| {
            let info = log.append_txn_marker(marker, hosted.leader_epoch, now)?;
            Self::after_append(log, now)?;
            Ok(info)
        })?;
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(info)
    }

    /// The producers with state in `tp` (DescribeProducers).
    pub fn producers(&self, tp: &TopicPartition) -> Result<Vec<ProducerView>, PartitionError> {
        self.with_leader_log(tp, |log, _| Ok(log.producers()))
    }

    /// A receiver that changes after every append.
    pub fn appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Reads from `offset` up to the high watermark, transactional data
    /// included (the coordinators' loaders read this way).
    pub fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: u64,
        min_one: bool,
    ) -> Result<ReadResult, PartitionError> {
        self.read_isolated(tp, offset, max_bytes, min_one, false)
    }

    /// Reads from `offset` for a consumer: up to the high watermark, or
    /// for `read_committed` up to the last stable offset, with the aborted
    /// transactions the returned records overlap.
    pub fn read_isolated(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: u64,
        min_one: bool,
        read_committed: bool,
    ) -> Result<ReadResult, PartitionError> {
        let r = self.read_slice(tp, offset, max_bytes, min_one, read_committed)?;
        let records = match r.slice {
            Some(slice) => slice_bytes(&slice)?,
            None => Bytes::new(),
        };
        Ok(ReadResult {
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            log_start_offset: r.log_start_offset,
            records,
            aborted: r.aborted,
        })
    }

    /// [`Self::read_isolated`] without copying the records: the region of
    /// the segment file that holds them, for the fetch path to send with
    /// `sendfile`.
    pub fn read_slice(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: u64,
        min_one: bool,
        read_committed: bool,
    ) -> Result<SliceRead, PartitionError> {
        let (slice, hw, lso, start, aborted) = self.with_leader_log(tp, |log, _| {
            let hw = log.log_end_offset();
            let lso = log.last_stable_offset(hw);
            let start = log.log_start_offset();
            let upper = if read_committed { lso } else { hw };
            let slice = log.read(offset, max_bytes, upper, min_one)?;
            let aborted = match (&slice, read_committed) {
                (Some(s), true) => Some(log.aborted_transactions(offset, s.last_offset + 1)?),
                (None, true) => Some(Vec::new()),
                (_, false) => None,
            };
            Ok((slice, hw, lso, start, aborted))
        })?;
        Ok(SliceRead {
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: start,
            slice,
            aborted,
        })
    }

    /// (log start offset, high watermark, last stable offset) of a
    /// partition.
    pub fn stable_offsets(&self, tp: &TopicPartition) -> Result<(i64, i64, i64), PartitionError> {
        self.with_leader_log(tp, |log, _| {
            let hw = log.log_end_offset();
            Ok((log.log_start_offset(), hw, log.last_stable_offset(hw)))
        })
    }

    /// (log start offset, high watermark, log end offset) of a partition.
    pub fn offsets(&self, tp: &TopicPartition) -> Result<(i64, i64, i64), PartitionError> {
        self.with_leader_log(tp, |log, _| {
            Ok((
                log.log_start_offset(),
                log.log_end_offset(),
                log.log_end_offset(),
            ))
        })
    }

    /// ListOffsets by timestamp (first record with timestamp >= `ts`).
    pub fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        ts: i64,
    ) -> Result<Option<TimestampAndOffset>, PartitionError> {
        self.with_leader_log(tp, |log, _| Ok(log.offset_for_timestamp(ts)?))
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734).
    pub fn max_timestamp(
        &self,
        tp: &TopicPartition,
    ) -> Result<Option<TimestampAndOffset>, PartitionError> {
        self.with_leader_log(tp, |log, _| Ok(log.max_timestamp()?))
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1 means the
    /// high watermark). Returns the new low watermark.
    pub fn delete_records(&self, tp: &TopicPartition, offset: i64) -> Result<i64, PartitionError> {
        self.with_leader_log(tp, |log, _| {
            let hw = log.log_end_offset();
            let target = if offset == -1 { hw } else { offset };
            if target < 0 || target > hw {
                return Err(PartitionError::with_message(
                    ResponseError::OffsetOutOfRange,
                    format!(
                        "cannot delete records before offset {target}: the high watermark is {hw}"
                    ),
                ));
            }
            log.advance_log_start_offset(target, now_ms())?;
            Ok(log.log_start_offset())
        })
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) for `epoch`.
    pub fn end_offset_for_epoch(
        &self,
        tp: &TopicPartition,
        epoch: i32,
    ) -> Result<(i32, i64, i32), PartitionError> {
        self.with_leader_log(tp, |log, hosted| {
            let (e, o) = log.end_offset_for_epoch(epoch);
            Ok((e, o, hosted.leader_epoch))
        })
    }

    /// Per directory: its path and the sizes of its partitions' logs.
    pub fn log_dir_sizes(&self) -> Vec<(PathBuf, Vec<PartitionSize>)> {
        self.dirs
            .iter()
            .zip(&self.dir_paths)
            .map(|(dir, path)| {
                let dir = lock(dir);
                let sizes = dir
                    .partitions()
                    .filter_map(|tp| {
                        dir.get(tp).map(|log| PartitionSize {
                            tp: tp.clone(),
                            size_bytes: log.size_bytes(),
                        })
                    })
                    .collect();
                (path.clone(), sizes)
            })
            .collect()
    }

    /// Periodic work: time-based flushes, retention, compaction and the
    /// directory checkpoints.
    ///
    /// `producer_expiration_ms`, when given, also forgets the state of
    /// producers idle that long (`producer.id.expiration.ms`).
    pub fn maintain(&self, retention: bool, producer_expiration_ms: Option<i64>) {
        let now = now_ms();
        for (i, dir) in self.dirs.iter().enumerate() {
            let tps: Vec<TopicPartition> = lock(dir).partitions().cloned().collect();
            // The directory lock is taken per partition, so produce and
            // fetch on other partitions get in between.
            for tp in tps {
                let mut dir = lock(dir);
                let Some(log) = dir.get_mut(&tp) else {
                    continue;
                };
                if let Err(e) = log.maybe_flush(now) {
                    warn!(partition = %tp.dir_name(), "flush failed: {e}");
                }
                if let Some(ms) = producer_expiration_ms {
                    log.remove_expired_producers(now, ms);
                }
                if retention {
                    let hw = log.log_end_offset();
                    match log.delete_old_segments(now, hw) {
                        Ok(0) => {}
                        Ok(n) => {
                            info!(partition = %tp.dir_name(), segments = n, "retention deleted segments")
                        }
                        Err(e) => warn!(partition = %tp.dir_name(), "retention failed: {e}"),
                    }
                    if let Err(e) = log.maybe_compact(now, hw) {
                        warn!(partition = %tp.dir_name(), "compaction failed: {e}");
                    }
                }
            }
            if let Err(e) = lock(dir).checkpoint() {
                warn!(dir = %self.dir_paths[i].display(), "checkpoint failed: {e}");
            }
        }
    }

    /// Flushes every log, writes the checkpoints and the clean-shutdown
    /// marker.
    pub fn close(self) -> Result<(), BrokerError> {
        let now = now_ms();
        for (dir, path) in self.dirs.into_iter().zip(self.dir_paths) {
            let dir = dir.into_inner().unwrap_or_else(|p| p.into_inner());
            dir.close(now)
                .map_err(|e| BrokerError::Storage(format!("closing {}: {e}", path.display())))?;
        }
        Ok(())
    }
}
