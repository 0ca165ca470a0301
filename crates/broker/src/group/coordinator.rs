//! The driver of the group coordinator: it owns the sans-IO
//! [`GroupCoordinator`] behind a mutex, turns its parked answers into
//! futures for the request handlers, appends its records to
//! `__consumer_offsets` through the replica manager, loads partitions when
//! this node becomes their leader, runs its timers, and hears from the
//! transaction-marker path when a transaction with offsets ends
//! ([`Coordinator::complete_transaction`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use riffle_log::TopicPartition;
use riffle_metadata::MetadataImage;
use tokio::sync::{oneshot, Notify};
use tracing::{info, warn};

use super::records;
use super::state::{
    CoordinatorConfig, GroupCoordinator, GroupLog, JoinRequest, JoinResult, Output, ReplyId,
    SyncRequest, SyncResult, TxnCommitRequest,
};
use crate::config::BrokerConfig;
use crate::replica::ReplicaManager;
use crate::util::now_ms;

/// Kafka's name for the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often the timer loop looks at the core when nothing is due.
const IDLE_TICK: Duration = Duration::from_millis(1000);

#[derive(Debug)]
enum Reply {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

#[derive(Debug)]
struct Inner {
    core: GroupCoordinator,
    replies: HashMap<ReplyId, Reply>,
    next_reply: ReplyId,
}

/// The group coordinator of a broker.
#[derive(Debug)]
pub struct Coordinator {
    node_id: i32,
    /// `offsets.load.buffer.size`: the size of the reads that load a
    /// partition.
    load_buffer_bytes: u64,
    inner: Mutex<Inner>,
    /// Woken when a deadline may have moved closer.
    wake: Notify,
}

/// Appends to `__consumer_offsets` through the replica manager.
struct OffsetsLog<'a> {
    replicas: &'a ReplicaManager,
}

impl OffsetsLog<'_> {
    /// Appends a batch; `transactional` ones go through the replica
    /// manager's coordinator path (Kafka's `AppendOrigin.COORDINATOR`),
    /// which skips the producer sequence checks (the batch has none) but
    /// still refuses a stale producer epoch, and opens the producer's
    /// transaction in the partition until its marker.
    fn append_batch(
        &mut self,
        partition: i32,
        batch: Bytes,
        transactional: bool,
    ) -> Result<i64, ResponseError> {
        let tp = TopicPartition::new(OFFSETS_TOPIC.to_string(), partition);
        let appended = if transactional {
            self.replicas.append_coordinator(&tp, batch)
        } else {
            self.replicas.append(&tp, batch)
        };
        appended.map(|info| info.first_offset).map_err(|e| {
            warn!(
                partition,
                "writing to {OFFSETS_TOPIC} failed: {:?} {:?}", e.code, e.message
            );
            e.code
        })
    }
}

impl GroupLog for OffsetsLog<'_> {
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError> {
        let batch = records::build_batch(&records, now_ms());
        self.append_batch(partition, batch, false)
    }

    fn append_transactional(
        &mut self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, ResponseError> {
        let batch =
            records::build_transactional_batch(&records, producer_id, producer_epoch, now_ms());
        self.append_batch(partition, batch, true)
    }
}

/// The coordinator settings of a broker config.
pub fn coordinator_config(config: &BrokerConfig) -> CoordinatorConfig {
    CoordinatorConfig {
        num_partitions: config.offsets_topic_num_partitions.max(1),
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms.max(0),
        max_size: config.group_max_size,
        offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        offsets_retention_ms: config.offsets_retention_minutes.max(1) as i64 * 60_000,
    }
}

impl Coordinator {
    pub fn new(node_id: i32, config: CoordinatorConfig, load_buffer_bytes: u64) -> Coordinator {
        Coordinator {
            node_id,
            load_buffer_bytes: load_buffer_bytes.max(1),
            inner: Mutex::new(Inner {
                core: GroupCoordinator::new(config),
                replies: HashMap::new(),
                next_reply: 1,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core with a log writer; delivers its outputs.
    pub fn with_core<T>(
        &self,
        replicas: &ReplicaManager,
        f: impl FnOnce(&mut GroupCoordinator, &mut dyn GroupLog) -> T,
    ) -> T {
        let mut inner = self.lock();
        let mut log = OffsetsLog { replicas };
        let result = f(&mut inner.core, &mut log);
        self.run_due(&mut inner, replicas);
        result
    }

    /// Read-only access to the core.
    pub fn read<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.lock().core)
    }

    fn deliver(inner: &mut Inner, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Join(id, result) => match inner.replies.remove(&id) {
                    Some(Reply::Join(tx)) => {
                        let _ = tx.send(result);
                    }
                    other => warn!(reply = id, "no parked JoinGroup for an answer ({other:?})"),
                },
                Output::Sync(id, result) => match inner.replies.remove(&id) {
                    Some(Reply::Sync(tx)) => {
                        let _ = tx.send(result);
                    }
                    other => warn!(reply = id, "no parked SyncGroup for an answer ({other:?})"),
                },
            }
        }
    }

    /// Runs the core's timers that are already due (a zero initial delay
    /// completes a join at once) and wakes the timer loop.
    fn run_due(&self, inner: &mut Inner, replicas: &ReplicaManager) {
        let now = now_ms();
        if inner.core.next_deadline().is_some_and(|d| d <= now) {
            let mut log = OffsetsLog { replicas };
            let out = inner.core.tick(now, &mut log);
            Self::deliver(inner, out);
        }
        self.wake.notify_one();
    }

    /// Hands a request that may be parked to the core under a new reply
    /// id; the receiver resolves when the core answers it.
    fn park<R>(
        &self,
        replicas: &ReplicaManager,
        reply: impl FnOnce(oneshot::Sender<R>) -> Reply,
        run: impl FnOnce(&mut GroupCoordinator, ReplyId, &mut dyn GroupLog) -> Vec<Output>,
    ) -> oneshot::Receiver<R> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next_reply;
        inner.next_reply += 1;
        inner.replies.insert(id, reply(tx));
        let mut log = OffsetsLog { replicas };
        let out = run(&mut inner.core, id, &mut log);
        Self::deliver(&mut inner, out);
        self.run_due(&mut inner, replicas);
        rx
    }

    /// JoinGroup; resolves when the core answers.
    pub fn join(
        &self,
        replicas: &ReplicaManager,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinResult> {
        self.park(replicas, Reply::Join, |core, id, log| {
            core.join(req, id, now_ms(), log)
        })
    }

    /// SyncGroup; resolves when the core answers.
    pub fn sync(
        &self,
        replicas: &ReplicaManager,
        req: SyncRequest,
    ) -> oneshot::Receiver<SyncResult> {
        self.park(replicas, Reply::Sync, |core, id, log| {
            core.sync(req, id, now_ms(), log)
        })
    }

    /// Runs `f` (which may produce parked answers) and delivers them.
    pub fn with_outputs<T>(
        &self,
        replicas: &ReplicaManager,
        f: impl FnOnce(&mut GroupCoordinator, &mut dyn GroupLog) -> (T, Vec<Output>),
    ) -> T {
        let mut inner = self.lock();
        let mut log = OffsetsLog { replicas };
        let (result, out) = f(&mut inner.core, &mut log);
        Self::deliver(&mut inner, out);
        self.run_due(&mut inner, replicas);
        result
    }

    /// Follows the leadership of `__consumer_offsets` partitions in
    /// `image`: loads the partitions this node now leads, unloads the
    /// others.
    pub fn on_metadata(&self, image: &MetadataImage, replicas: &ReplicaManager) {
        let led: BTreeSet<i32> = image
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == self.node_id)
                    .map(|(&i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        let owned: BTreeSet<i32> = self.read(|c| c.owned_partitions().into_iter().collect());
        for &p in owned.difference(&led) {
            let mut inner = self.lock();
            let out = inner.core.unload_partition(p);
            Self::deliver(&mut inner, out);
            info!(
                partition = p,
                "no longer the group coordinator of this {OFFSETS_TOPIC} partition"
            );
        }
        for &p in led.difference(&owned) {
            self.lock().core.begin_load(p);
            let loaded = load_records(replicas, p, self.load_buffer_bytes);
            let mut inner = self.lock();
            match loaded {
                Ok(recs) => inner.core.load_partition(p, recs, now_ms()),
                Err(e) => {
                    // The partition stays "loading": its groups answer
                    // COORDINATOR_LOAD_IN_PROGRESS rather than forgetting
                    // what the log holds.
                    warn!(partition = p, "loading {OFFSETS_TOPIC} failed: {e}");
                }
            }
        }
    }

    /// TxnOffsetCommit: `Err` applies to every partition; otherwise one
    /// result per partition of `req`. See
    /// [`GroupCoordinator::txn_offset_commit`].
    pub fn txn_offset_commit(
        &self,
        replicas: &ReplicaManager,
        req: &TxnCommitRequest,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.with_core(replicas, |c, log| c.txn_offset_commit(req, now_ms(), log))
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` was written to
    /// `partition` of `__consumer_offsets`: the producer's pending offsets
    /// in that partition's groups become committed or are dropped. Returns
    /// how many offsets became committed. See
    /// [`GroupCoordinator::complete_transaction`].
    ///
    /// Call it after the marker is stored, and without holding a lock of
    /// the replica manager: it takes the coordinator's lock, which is held
    /// while the coordinator appends to `__consumer_offsets`. It writes
    /// nothing itself and does not wait for anything else.
    pub fn complete_transaction(
        &self,
        _replicas: &ReplicaManager,
        partition: i32,
        producer_id: i64,
        commit: bool,
    ) -> usize {
        self.lock()
            .core
            .complete_transaction(partition, producer_id, commit)
    }

    /// Topics were deleted: their committed offsets go too.
    pub fn on_topics_deleted(&self, topics: &[String], replicas: &ReplicaManager) {
        self.with_core(replicas, |c, log| c.remove_offsets_of_topics(topics, log));
    }

    /// The timer loop: runs the core's timeouts until `shutdown` fires.
    pub async fn run_timers(
        &self,
        replicas: &ReplicaManager,
        retention_check_ms: i64,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut next_retention = now_ms() + retention_check_ms.max(1);
        loop {
            let now = now_ms();
            if now >= next_retention {
                let mut log = OffsetsLog { replicas };
                self.lock().core.expire_offsets(now, &mut log);
                next_retention = now + retention_check_ms.max(1);
            }
            let wait = {
                let mut inner = self.lock();
                let mut log = OffsetsLog { replicas };
                let out = inner.core.tick(now, &mut log);
                Self::deliver(&mut inner, out);
                inner
                    .core
                    .next_deadline()
                    .map(|d| Duration::from_millis((d - now).clamp(1, 1000) as u64))
                    .unwrap_or(IDLE_TICK)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Reads a whole `__consumer_offsets` partition and decodes its records and
/// transaction markers.
fn load_records(
    replicas: &ReplicaManager,
    partition: i32,
    buffer_bytes: u64,
) -> Result<Vec<records::LogEntry>, String> {
    let tp = TopicPartition::new(OFFSETS_TOPIC.to_string(), partition);
    let (start, _hw, end) = replicas.offsets(&tp).map_err(|e| format!("{e:?}"))?;
    let mut offset = start;
    let mut max_bytes = buffer_bytes;
    let mut out = Vec::new();
    let mut skipped = 0usize;
    while offset < end {
        let read = replicas
            .read(&tp, offset, max_bytes, true)
            .map_err(|e| format!("reading at offset {offset}: {e:?}"))?;
        if read.records.is_empty() {
            break;
        }
        let batch = records::read_log(&read.records).map_err(|e| e.to_string())?;
        for entry in batch.batches.iter().flat_map(|b| b.entries()) {
            match entry {
                Ok(e) => out.push(e),
                Err((at, e)) => {
                    skipped += 1;
                    warn!(
                        partition,
                        "skipping an unreadable {OFFSETS_TOPIC} record at offset {at}: {e}"
                    );
                }
            }
        }
        match batch.next_offset {
            Some(next) if next > offset => offset = next,
            _ if max_bytes >= 1 << 30 => {
                return Err(format!("no whole batch at offset {offset} within 1 GiB"))
            }
            _ => max_bytes = max_bytes.saturating_mul(2),
        }
    }
    if skipped > 0 {
        warn!(
            partition,
            skipped, "records of {OFFSETS_TOPIC} skipped while loading"
        );
    }
    Ok(out)
}
