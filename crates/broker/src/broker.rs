//! The broker's shared state: configuration, the metadata image, the
//! controller, and the replica manager.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use riffle_metadata::{
    BrokerRegistration, Controller, ControllerConfig, ControllerResult, Endpoint, MetadataImage,
};

use crate::handlers::METADATA_VERSION_FEATURE;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use tokio::sync::{watch, Mutex};
use tracing::{debug, error, info, warn};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::group::coordinator::{coordinator_config, Coordinator};
use crate::meta_properties;
use crate::metadata_log::{Committed, QuorumLog};
use crate::producer_ids::ProducerIdManager;
use crate::replica::ReplicaManager;
use crate::txn::coordinator::{coordinator_config as txn_coordinator_config, TxnCoordinator};

/// How long an admin request waits for its records to be committed.
const COMMIT_TIMEOUT_MS: u64 = 30_000;
/// How many bytes of metadata records are replayed per read.
const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// The configuration as given (file and overrides), for rebuilding the
    /// effective config when dynamic broker configs change.
    static_props: Vec<(String, String)>,
    pub cluster_id: String,
    image: watch::Sender<Arc<MetadataImage>>,
    quorum: Arc<QuorumLog>,
    controller: Mutex<Controller>,
    /// Serialises replay so the image and the logs move together; holds
    /// the next metadata offset to read.
    loader: std::sync::Mutex<i64>,
    /// Metadata bytes applied since the last snapshot, and when it was.
    snapshot_due: std::sync::Mutex<(u64, std::time::Instant)>,
    /// `config` with the image's dynamic broker configs applied.
    effective: std::sync::RwLock<Arc<BrokerConfig>>,
    /// Set when the server starts shutting down; long polls end early.
    shutdown: watch::Sender<bool>,
    pub replicas: ReplicaManager,
    /// The group coordinator of the `__consumer_offsets` partitions this
    /// node leads.
    pub groups: Coordinator,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdManager,
    /// The transaction coordinator of the `__transaction_state` partitions
    /// this node leads.
    pub txns: Arc<TxnCoordinator>,
}

/// Checks the directories and joins the metadata quorum; the first half of
/// start-up, before the controller listener can serve the quorum.
pub fn open_quorum(
    config: &BrokerConfig,
    runtime: tokio::runtime::Handle,
) -> Result<(Arc<QuorumLog>, String), BrokerError> {
    let mut dirs: Vec<PathBuf> = config.log_dirs.clone();
    if !dirs.contains(&config.metadata_log_dir) {
        dirs.push(config.metadata_log_dir.clone());
    }
    let meta = meta_properties::check_at_startup(&dirs, config.node_id, config.auto_format)
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    let cluster_id = meta.cluster_id.clone();
    let quorum = QuorumLog::open(config, &cluster_id, runtime)?;
    Ok((Arc::new(quorum), cluster_id))
}

impl Broker {
    /// Waits until the quorum has a leader and a committed offset, replays
    /// the committed metadata and opens the partition logs. Registration
    /// follows with [`Broker::register`].
    pub async fn open(
        config: BrokerConfig,
        static_props: Vec<(String, String)>,
        quorum: Arc<QuorumLog>,
        cluster_id: String,
    ) -> Result<Broker, BrokerError> {
        let mut role = quorum.role();
        let mut hw = quorum.high_watermark();
        let mut waited = false;
        loop {
            let leader_known = role.borrow().leader_id.is_some();
            let committed = *hw.borrow() > 0;
            if leader_known && committed {
                break;
            }
            if !waited {
                info!(
                    "waiting for the metadata quorum (controller.quorum.voters) to elect a leader"
                );
                waited = true;
            }
            tokio::select! {
                r = role.changed() => r.map_err(|_| BrokerError::ShuttingDown)?,
                r = hw.changed() => r.map_err(|_| BrokerError::ShuttingDown)?,
            }
        }
        let controller = Controller::new(ControllerConfig {
            node_id: config.node_id,
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            auto_create_topics_enable: config.auto_create_topics_enable,
        });
        let (mut image, mut next) = (MetadataImage::empty(), 0i64);
        loop {
            match quorum.read_committed(next, REPLAY_CHUNK_BYTES)? {
                Committed::Nothing => break,
                Committed::Records { records, next: n } => {
                    if !records.is_empty() {
                        image = image
                            .apply(&records)
                            .map_err(|e| BrokerError::Storage(format!("replaying metadata: {e}")))?
                            .0;
                    }
                    next = n;
                }
                Committed::Snapshot {
                    end_offset,
                    records,
                } => {
                    image = MetadataImage::from_snapshot(end_offset, &records).map_err(|e| {
                        BrokerError::Storage(format!("loading metadata snapshot: {e}"))
                    })?;
                    next = end_offset;
                }
            }
        }
        info!(
            offset = image.offset(),
            topics = image.topics().count(),
            "metadata replayed"
        );
        let effective =
            effective_config(&static_props, &image, config.node_id).unwrap_or_else(|e| {
                warn!("ignoring dynamic broker configs: {e}");
                config.clone()
            });
        let replicas = ReplicaManager::open(
            config.node_id,
            &config.log_dirs,
            effective.default_log_config(),
            &image,
        )?;
        let groups = Coordinator::new(
            config.node_id,
            coordinator_config(&effective),
            effective.offsets_load_buffer_size.max(1) as u64,
        );
        groups.on_metadata(&image, &replicas);
        let txns = Arc::new(TxnCoordinator::new(
            config.node_id,
            txn_coordinator_config(&effective),
            effective.transaction_state_log_load_buffer_size.max(1) as u64,
        ));
        txns.on_metadata(&image, &replicas);
        Ok(Broker {
            groups,
            producer_ids: ProducerIdManager::default(),
            txns,
            config,
            static_props,
            cluster_id,
            image: watch::channel(Arc::new(image)).0,
            quorum,
            controller: Mutex::new(controller),
            loader: std::sync::Mutex::new(next),
            snapshot_due: std::sync::Mutex::new((0, std::time::Instant::now())),
            effective: std::sync::RwLock::new(Arc::new(effective)),
            shutdown: watch::channel(false).0,
            replicas,
        })
    }

    /// This node's registration as a broker.
    pub fn registration(&self) -> BrokerRegistration {
        let image = self.image();
        BrokerRegistration {
            id: self.config.node_id,
            incarnation_id: uuid::Uuid::new_v4(),
            epoch: image.broker(self.config.node_id).map_or(0, |b| b.epoch + 1),
            endpoints: self
                .config
                .advertised_listeners
                .iter()
                .map(|l| Endpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    security_protocol: l.security_protocol.id(),
                })
                .collect(),
            rack: self.config.broker_rack.clone(),
            fenced: false,
        }
    }

    /// Registers this broker with the active controller (itself, or over
    /// the controller listener with BrokerRegistration), retrying until it
    /// is in the image.
    pub async fn register(&self) -> Result<(), BrokerError> {
        let registration = self.registration();
        let mut logged = false;
        loop {
            if *self.shutdown.borrow() {
                return Err(BrokerError::ShuttingDown);
            }
            let leader = self.quorum.role().borrow().leader_id;
            let outcome = match leader {
                Some(id) if id == self.config.node_id => {
                    let reg = registration.clone();
                    self.controller_write(move |c, image| ControllerResult {
                        records: c.register_broker(image, reg),
                        response: (),
                    })
                    .await
                }
                Some(id) => match self.quorum.voters.get(&id) {
                    Some(address) => {
                        crate::registration::register_remote(
                            address,
                            &self.cluster_id,
                            &registration,
                            self.config.controller_quorum_request_timeout_ms.max(1) as u64,
                        )
                        .await
                    }
                    None => Err(BrokerError::NotController(format!(
                        "leader {id} is not a voter"
                    ))),
                },
                None => Err(BrokerError::NotController("no quorum leader yet".into())),
            };
            match outcome {
                Ok(()) => {
                    // Wait until the registration is in this node's image.
                    let mut hw = self.quorum.high_watermark();
                    for _ in 0..100 {
                        self.catch_up()?;
                        if self
                            .image()
                            .broker(self.config.node_id)
                            .is_some_and(|b| b.incarnation_id == registration.incarnation_id)
                        {
                            info!(node = self.config.node_id, "broker registered");
                            return Ok(());
                        }
                        let _ =
                            tokio::time::timeout(Duration::from_millis(100), hw.changed()).await;
                    }
                }
                Err(e) => {
                    if !logged {
                        info!("broker registration not done yet, retrying: {e}");
                        logged = true;
                    } else {
                        debug!("broker registration retry: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(
                        self.config.controller_quorum_retry_backoff_ms.max(50) as u64,
                    ))
                    .await;
                }
            }
        }
    }

    pub fn quorum(&self) -> &Arc<QuorumLog> {
        &self.quorum
    }

    /// Becomes true when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells connections and long polls to finish.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// The node the quorum elected, which is the active controller.
    pub fn controller_id(&self) -> Option<i32> {
        self.quorum.role().borrow().leader_id
    }

    /// Replays committed metadata records beyond the image and acts on
    /// them. Safe to call from several places; replay is serialised.
    pub fn catch_up(&self) -> Result<(), BrokerError> {
        let mut next = self.loader.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let current = self.image();
            let (next_image, delta, applied_bytes) =
                match self.quorum.read_committed(*next, REPLAY_CHUNK_BYTES)? {
                    Committed::Nothing => return Ok(()),
                    Committed::Records { records, next: n } => {
                        *next = n;
                        if records.is_empty() {
                            continue;
                        }
                        let bytes: u64 = records.iter().map(|(_, r)| r.encode().len() as u64).sum();
                        let (img, delta) = current
                            .apply(&records)
                            .map_err(|e| BrokerError::Storage(format!("applying metadata: {e}")))?;
                        (img, delta, bytes)
                    }
                    Committed::Snapshot {
                        end_offset,
                        records,
                    } => {
                        info!(
                            end_offset,
                            "loading the metadata snapshot (this node was behind the log start)"
                        );
                        let img =
                            MetadataImage::from_snapshot(end_offset, &records).map_err(|e| {
                                BrokerError::Storage(format!("loading metadata snapshot: {e}"))
                            })?;
                        *next = end_offset;
                        let delta = current.delta_to(&img);
                        (img, delta, 0)
                    }
                };
            if delta.broker_config_changed {
                match effective_config(&self.static_props, &next_image, self.config.node_id) {
                    Ok(c) => {
                        self.replicas
                            .set_default_config(c.default_log_config(), &next_image);
                        *self.effective.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                    }
                    Err(e) => warn!("ignoring dynamic broker configs: {e}"),
                }
            }
            // The records are committed: the image moves on even if a log
            // could not be created or deleted (that partition then answers
            // with an error), so later operations see the committed state.
            if let Err(e) = self.replicas.apply_delta(&next_image, &delta) {
                error!(
                    offset = next_image.offset(),
                    "acting on committed metadata failed: {e}"
                );
            }
            self.groups.on_metadata(&next_image, &self.replicas);
            self.txns.on_metadata(&next_image, &self.replicas);
            if !delta.deleted_topics.is_empty() {
                let deleted: Vec<String> = delta
                    .deleted_topics
                    .iter()
                    .map(|(t, _, _)| t.clone())
                    .collect();
                self.groups.on_topics_deleted(&deleted, &self.replicas);
            }
            debug!(offset = next_image.offset(), "metadata applied");
            self.image.send_replace(Arc::new(next_image));
            let mut due = self.snapshot_due.lock().unwrap_or_else(|p| p.into_inner());
            due.0 += applied_bytes;
        }
    }

    /// The offset the loader reads next (everything before it is applied).
    pub fn applied_end(&self) -> i64 {
        *self.loader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a metadata snapshot when `metadata.log.max.record.bytes.
    /// between.snapshots` bytes were applied since the last one, or
    /// `metadata.log.max.snapshot.interval.ms` passed with new records.
    pub async fn maybe_snapshot(&self) -> Result<(), BrokerError> {
        let (bytes, since) = *self.snapshot_due.lock().unwrap_or_else(|p| p.into_inner());
        let by_bytes = bytes
            >= self
                .config
                .metadata_log_max_record_bytes_between_snapshots
                .max(1) as u64;
        let interval = self.config.metadata_log_max_snapshot_interval_ms;
        let by_time = interval > 0 && bytes > 0 && since.elapsed().as_millis() as i64 >= interval;
        if !(by_bytes || by_time) {
            return Ok(());
        }
        self.snapshot_now().await.map(|_| ())
    }

    /// Writes a snapshot of the current image now.
    pub async fn snapshot_now(&self) -> Result<riffle_raft::OffsetAndEpoch, BrokerError> {
        let (image, end) = {
            let next = self.loader.lock().unwrap_or_else(|p| p.into_inner());
            (self.image(), *next)
        };
        let records = image.to_snapshot_records();
        let id = self.quorum.snapshot(end, &records).await?;
        *self.snapshot_due.lock().unwrap_or_else(|p| p.into_inner()) =
            (0, std::time::Instant::now());
        Ok(id)
    }

    /// Waits until this node is the active controller: quorum leader, with
    /// the record that opened its epoch committed and everything before it
    /// applied. A fresh cluster gets its bootstrap records here.
    async fn ensure_active(&self, controller: &Controller) -> Result<(), BrokerError> {
        let leadership = *self.quorum.raft().leadership().borrow();
        let Some((_epoch, start)) = leadership else {
            let leader = self.controller_id();
            return Err(BrokerError::NotController(match leader {
                Some(id) => format!("the active controller is node {id}"),
                None => "no active controller yet".into(),
            }));
        };
        let mut hw = self.quorum.high_watermark();
        let wait = hw.wait_for(|h| *h > start);
        if tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), wait)
            .await
            .map_or(true, |r| r.is_err())
        {
            return Err(BrokerError::NotController(
                "this node's leadership is not committed yet".into(),
            ));
        }
        self.catch_up()?;
        if self
            .image()
            .feature_level(METADATA_VERSION_FEATURE)
            .is_none()
        {
            info!("bootstrapping the cluster metadata");
            let records = controller.bootstrap_feature_records();
            let offset = self.quorum.commit(&records).await?;
            self.catch_up_through(offset).await?;
        }
        Ok(())
    }

    async fn catch_up_through(&self, offset: i64) -> Result<(), BrokerError> {
        let mut hw = self.quorum.high_watermark();
        loop {
            self.catch_up()?;
            if self.applied_end() > offset {
                return Ok(());
            }
            if tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), hw.changed())
                .await
                .is_err()
            {
                return Err(BrokerError::CommitTimeout(COMMIT_TIMEOUT_MS));
            }
        }
    }

    /// Runs a controller operation: computes its records from the current
    /// image, commits them through the quorum, waits until they are
    /// applied, and returns the response. NOT_CONTROLLER unless this node
    /// is the active controller.
    pub async fn controller_write<R>(
        &self,
        op: impl FnOnce(&Controller, &MetadataImage) -> ControllerResult<R>,
    ) -> Result<R, BrokerError> {
        let controller = self.controller.lock().await;
        self.ensure_active(&controller).await?;
        let image = self.image();
        let result = op(&controller, &image);
        if result.records.is_empty() {
            return Ok(result.response);
        }
        let commit = self.quorum.commit(&result.records);
        let offset =
            match tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), commit).await {
                Ok(r) => r?,
                Err(_) => return Err(BrokerError::CommitTimeout(COMMIT_TIMEOUT_MS)),
            };
        self.catch_up_through(offset).await?;
        drop(controller);
        Ok(result.response)
    }

    /// Creates topics through the active controller: this node's own
    /// controller when it is the active one, otherwise the active
    /// controller over its controller listener (CreateTopics v7), after
    /// which this call waits until the created topics are in this node's
    /// image, so the caller can serve them at once.
    pub async fn create_topics_via_controller(
        &self,
        req: CreateTopicsRequest,
    ) -> Result<CreateTopicsResponse, BrokerError> {
        const VERSION: i16 = 7;
        match self.controller_id() {
            Some(id) if id == self.config.node_id => {
                self.controller_write(|c, image| c.create_topics(image, &req, VERSION))
                    .await
            }
            Some(id) => {
                let address = self.controller_address(id)?;
                let response: CreateTopicsResponse = crate::forward::call(
                    &address,
                    ApiKey::CreateTopics,
                    VERSION,
                    &format!("riffle-broker-{}", self.config.node_id),
                    &req,
                    COMMIT_TIMEOUT_MS,
                )
                .await?;
                let created: Vec<String> = response
                    .topics
                    .iter()
                    .filter(|t| t.error_code == 0)
                    .map(|t| t.name.to_string())
                    .collect();
                self.wait_for_topics(&created).await?;
                Ok(response)
            }
            None => Err(BrokerError::NotController(
                "no active controller yet".into(),
            )),
        }
    }

    /// The controller-listener address of voter `id`.
    pub fn controller_address(&self, id: i32) -> Result<String, BrokerError> {
        self.quorum.voters.get(&id).cloned().ok_or_else(|| {
            BrokerError::NotController(format!("the active controller {id} is not a voter"))
        })
    }

    /// Waits until every topic of `names` is in this node's image.
    async fn wait_for_topics(&self, names: &[String]) -> Result<(), BrokerError> {
        let mut hw = self.quorum.high_watermark();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_TIMEOUT_MS);
        loop {
            self.catch_up()?;
            let image = self.image();
            if names.iter().all(|n| image.topic(n).is_some()) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, hw.changed())
                .await
                .is_err()
            {
                return Err(BrokerError::CommitTimeout(COMMIT_TIMEOUT_MS));
            }
        }
    }

    /// Read-only access to the controller (validation without writes).
    pub async fn controller(&self) -> tokio::sync::MutexGuard<'_, Controller> {
        self.controller.lock().await
    }

    /// The broker config with the dynamic broker configs of the image
    /// applied.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.effective
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Flushes and closes the logs, writing the clean-shutdown markers,
    /// then leaves the quorum (a leader resigns first).
    pub fn close(self) -> Result<(), BrokerError> {
        // Both are attempted; the first error is reported.
        let partitions = self.replicas.close();
        let metadata = self.quorum.close();
        partitions.and(metadata)
    }
}

/// Static config, then cluster-wide dynamic defaults, then this broker's
/// dynamic configs (Kafka's precedence, lowest first).
fn effective_config(
    static_props: &[(String, String)],
    image: &MetadataImage,
    node_id: i32,
) -> Result<BrokerConfig, BrokerError> {
    let mut props = static_props.to_vec();
    props.extend(image.broker_config(None));
    props.extend(image.broker_config(Some(node_id)));
    BrokerConfig::from_properties(props, Vec::new())
        .map(|(c, _)| c)
        .map_err(|e| BrokerError::Config(e.to_string()))
}
