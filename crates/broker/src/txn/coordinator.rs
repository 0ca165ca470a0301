//! The driver of the transaction coordinator: it owns the sans-IO
//! [`TransactionCoordinator`] behind a mutex, appends its records to
//! `__transaction_state` through the replica manager, takes producer ids
//! from the broker's [`ProducerIdManager`], loads partitions when this node
//! becomes their leader (the partition's leader epoch is the coordinator
//! epoch), writes the markers of decided transactions ([`super::markers`])
//! and reports them written, and runs the core's timers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use riffle_log::batch::BatchIter;
use riffle_log::TopicPartition;
use riffle_metadata::MetadataImage;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use super::markers::{self, MarkerJob};
use super::state::{Output, ProducerIds, TransactionCoordinator, TxnCoordinatorConfig, TxnLog};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::group::records as group_records;
use crate::producer_ids::ProducerIdManager;
use crate::replica::ReplicaManager;
use crate::util::now_ms;

/// Kafka's name for the transaction log topic.
pub const TXN_TOPIC: &str = "__transaction_state";

/// How often the timer loop looks at the core when nothing is due.
const IDLE_TICK: Duration = Duration::from_millis(1000);

/// Appends to `__transaction_state` through the replica manager.
struct StateLog<'a> {
    replicas: &'a ReplicaManager,
}

impl TxnLog for StateLog<'_> {
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        let batch = group_records::build_batch(&records, now_ms());
        let tp = TopicPartition::new(TXN_TOPIC.to_string(), partition);
        self.replicas.append(&tp, batch).map(|_| ()).map_err(|e| {
            warn!(
                partition,
                "writing to {TXN_TOPIC} failed: {:?} {:?}", e.code, e.message
            );
            e.code
        })
    }
}

struct Ids<'a>(&'a ProducerIdManager);

impl ProducerIds for Ids<'_> {
    fn next_producer_id(&mut self) -> Result<i64, ResponseError> {
        self.0.try_next()
    }
}

/// The coordinator settings of a broker config.
pub fn coordinator_config(config: &BrokerConfig) -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        num_partitions: config.transaction_state_log_num_partitions.max(1),
        max_timeout_ms: config.transaction_max_timeout_ms,
        transactional_id_expiration_ms: i64::from(config.transactional_id_expiration_ms),
        abort_timed_out_interval_ms: i64::from(
            config
                .transaction_abort_timed_out_transaction_cleanup_interval_ms
                .max(1),
        ),
        remove_expired_interval_ms: i64::from(
            config
                .transaction_remove_expired_transaction_cleanup_interval_ms
                .max(1),
        ),
    }
}

/// The transaction coordinator of a broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    node_id: i32,
    /// `transaction.state.log.load.buffer.size`.
    load_buffer_bytes: u64,
    core: Mutex<TransactionCoordinator>,
    /// The leader epoch each owned partition was loaded at: a new epoch on
    /// this node (a re-election) reloads the partition, as Kafka does.
    loaded_epochs: Mutex<HashMap<i32, i32>>,
    /// Woken when a deadline may have moved closer.
    wake: Notify,
    /// Decided transactions whose markers are to be written.
    jobs: mpsc::UnboundedSender<MarkerJob>,
    pending_jobs: Mutex<Option<mpsc::UnboundedReceiver<MarkerJob>>>,
}

impl TxnCoordinator {
    pub fn new(node_id: i32, config: TxnCoordinatorConfig, load_buffer_bytes: u64) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        TxnCoordinator {
            node_id,
            load_buffer_bytes: load_buffer_bytes.max(1),
            core: Mutex::new(TransactionCoordinator::new(config)),
            loaded_epochs: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            jobs,
            pending_jobs: Mutex::new(Some(rx)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TransactionCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dispatch(&self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::WriteMarkers {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                } => {
                    let _ = self.jobs.send(MarkerJob {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        commit,
                        partitions,
                    });
                }
            }
        }
    }

    /// Runs `f` on the core with a log writer, producer ids and an output
    /// list; writes the markers the outputs ask for.
    pub fn with_core<T>(
        &self,
        replicas: &ReplicaManager,
        ids: &ProducerIdManager,
        f: impl FnOnce(
            &mut TransactionCoordinator,
            &mut dyn TxnLog,
            &mut dyn ProducerIds,
            &mut Vec<Output>,
        ) -> T,
    ) -> T {
        let mut out = Vec::new();
        let result = {
            let mut core = self.lock();
            let mut log = StateLog { replicas };
            let mut ids = Ids(ids);
            f(&mut core, &mut log, &mut ids, &mut out)
        };
        self.dispatch(out);
        // A deadline may have moved closer.
        self.wake.notify_one();
        result
    }

    /// Read-only access to the core.
    pub fn read<T>(&self, f: impl FnOnce(&TransactionCoordinator) -> T) -> T {
        f(&self.lock())
    }

    /// Follows the leadership of `__transaction_state` partitions in
    /// `image`: loads the partitions this node now leads (their leader
    /// epoch is the coordinator epoch), unloads the others.
    pub fn on_metadata(&self, image: &MetadataImage, replicas: &ReplicaManager) {
        let led: Vec<(i32, i32)> = image
            .topic(TXN_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == self.node_id)
                    .map(|(&i, p)| (i, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default();
        let led_ids: BTreeSet<i32> = led.iter().map(|(p, _)| *p).collect();
        let owned: BTreeSet<i32> = self.read(|c| c.owned_partitions().into_iter().collect());
        let mut epochs = self.loaded_epochs.lock().unwrap_or_else(|p| p.into_inner());
        for &p in owned.difference(&led_ids) {
            self.lock().unload_partition(p);
            epochs.remove(&p);
            info!(
                partition = p,
                "no longer the transaction coordinator of this {TXN_TOPIC} partition"
            );
        }
        for (p, epoch) in led {
            if owned.contains(&p) && epochs.get(&p) == Some(&epoch) {
                continue;
            }
            if owned.contains(&p) {
                self.lock().unload_partition(p);
            }
            self.lock().begin_load(p);
            epochs.insert(p, epoch);
            match load_records(replicas, p, self.load_buffer_bytes) {
                Ok(records) => {
                    let out = self.lock().load_partition(p, epoch, records, now_ms());
                    debug!(
                        partition = p,
                        coordinator_epoch = epoch,
                        "loaded {TXN_TOPIC} partition"
                    );
                    self.dispatch(out);
                }
                // The partition stays "loading": its ids answer
                // COORDINATOR_LOAD_IN_PROGRESS rather than forgetting what
                // the log holds.
                Err(e) => warn!(partition = p, "loading {TXN_TOPIC} failed: {e}"),
            }
        }
    }

    /// The timer loop and the marker writer, until `shutdown` fires. Each
    /// transaction's markers are written by a task of its own (so one slow
    /// partition does not hold up the others), owned here and aborted at
    /// shutdown, so nothing outlives the server.
    pub async fn run(
        self: &Arc<Self>,
        broker: Arc<Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(mut jobs) = self
            .pending_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            warn!("the transaction coordinator is already running");
            return;
        };
        let mut writers = tokio::task::JoinSet::new();
        loop {
            let now = now_ms();
            let mut out = Vec::new();
            let next = {
                let mut core = self.lock();
                if core.next_deadline().is_some_and(|d| d <= now) {
                    let mut log = StateLog {
                        replicas: &broker.replicas,
                    };
                    out = core.tick(now, &mut log);
                }
                core.next_deadline()
            };
            self.dispatch(out);
            let wait = next
                .map(|d| Duration::from_millis((d - now).clamp(1, 1000) as u64))
                .unwrap_or(IDLE_TICK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                Some(job) = jobs.recv() => {
                    debug!(
                        transactional_id = %job.transactional_id,
                        commit = job.commit,
                        partitions = job.partitions.len(),
                        "writing transaction markers"
                    );
                    let (b, c) = (broker.clone(), self.clone());
                    writers.spawn(async move {
                        if markers::write_all(&b, &job).await {
                            debug!(transactional_id = %job.transactional_id, "transaction markers written");
                            c.with_core(&b.replicas, &b.producer_ids, |core, log, _, _| {
                                core.markers_written(
                                    &job.transactional_id,
                                    job.producer_id,
                                    job.producer_epoch,
                                    job.coordinator_epoch,
                                    now_ms(),
                                    log,
                                )
                            });
                        }
                    });
                }
                Some(_) = writers.join_next(), if !writers.is_empty() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        writers.abort_all();
        while writers.join_next().await.is_some() {}
    }
}

/// Reads a whole `__transaction_state` partition: its records' keys and
/// values in log order.
fn load_records(
    replicas: &ReplicaManager,
    partition: i32,
    buffer_bytes: u64,
) -> Result<Vec<(Bytes, Option<Bytes>)>, String> {
    let tp = TopicPartition::new(TXN_TOPIC.to_string(), partition);
    let (start, _hw, end) = replicas.offsets(&tp).map_err(|e| format!("{e:?}"))?;
    let mut offset = start;
    let mut max_bytes = buffer_bytes;
    let mut out = Vec::new();
    while offset < end {
        let read = replicas
            .read(&tp, offset, max_bytes, true)
            .map_err(|e| format!("reading at offset {offset}: {e:?}"))?;
        if read.records.is_empty() {
            break;
        }
        let mut next = None;
        for batch in BatchIter::new(&read.records) {
            match batch {
                Ok((_, header, _)) => next = Some(header.next_offset()),
                // A partial batch ends the read.
                Err(_) => break,
            }
        }
        let records = group_records::read_records(&read.records).map_err(|e| e.to_string())?;
        out.extend(records.into_iter().map(|(_, k, v)| (k, v)));
        match next {
            Some(n) if n > offset => offset = n,
            _ if max_bytes >= 1 << 30 => {
                return Err(format!("no whole batch at offset {offset} within 1 GiB"))
            }
            _ => max_bytes = max_bytes.saturating_mul(2),
        }
    }
    Ok(out)
}
