//! The broker's shared state: configuration, the metadata image, the
//! controller, and the replica manager.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use riffle_metadata::{
    BrokerRegistration, Controller, ControllerConfig, ControllerResult, Endpoint, MetadataImage,
};
use tokio::sync::{watch, Mutex};
use tracing::{debug, error, info, warn};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::meta_properties;
use crate::metadata_log::{LocalMetadataLog, MetadataLog};
use crate::replica::ReplicaManager;

/// How long an admin request waits for its records to be committed.
const COMMIT_TIMEOUT_MS: u64 = 30_000;
/// How many bytes of metadata records are replayed per read.
const REPLAY_CHUNK_BYTES: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// The configuration as given (file and overrides), for rebuilding the
    /// effective config when dynamic broker configs change.
    static_props: Vec<(String, String)>,
    pub cluster_id: String,
    image: watch::Sender<Arc<MetadataImage>>,
    metadata_log: Arc<dyn MetadataLog>,
    controller: Mutex<Controller>,
    /// Serialises replay so the image and the logs move together.
    loader: std::sync::Mutex<()>,
    /// `config` with the image's dynamic broker configs applied.
    effective: std::sync::RwLock<Arc<BrokerConfig>>,
    /// Set when the server starts shutting down; long polls end early.
    shutdown: watch::Sender<bool>,
    pub replicas: ReplicaManager,
}

impl Broker {
    /// Formats the directories on first start, replays the metadata log,
    /// registers this node and opens the partition logs.
    pub fn open(
        config: BrokerConfig,
        static_props: Vec<(String, String)>,
    ) -> Result<Broker, BrokerError> {
        let mut dirs: Vec<PathBuf> = config.log_dirs.clone();
        if !dirs.contains(&config.metadata_log_dir) {
            dirs.push(config.metadata_log_dir.clone());
        }
        let meta = meta_properties::check_at_startup(&dirs, config.node_id, config.auto_format)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        let cluster_id = meta.cluster_id.clone();

        let metadata_log: Arc<dyn MetadataLog> =
            Arc::new(LocalMetadataLog::open(&config.metadata_log_dir)?);
        let mut image = MetadataImage::empty();
        loop {
            let records = metadata_log.read_committed(image.offset() + 1, REPLAY_CHUNK_BYTES)?;
            if records.is_empty() {
                break;
            }
            image = image
                .apply(&records)
                .map_err(|e| BrokerError::Storage(format!("replaying metadata: {e}")))?
                .0;
        }
        info!(
            offset = image.offset(),
            topics = image.topics().count(),
            "metadata replayed"
        );

        let controller = Controller::new(ControllerConfig {
            node_id: config.node_id,
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            auto_create_topics_enable: config.auto_create_topics_enable,
        });
        let registration = BrokerRegistration {
            id: config.node_id,
            incarnation_id: uuid::Uuid::new_v4(),
            epoch: image.broker(config.node_id).map_or(0, |b| b.epoch + 1),
            endpoints: config
                .advertised_listeners
                .iter()
                .map(|l| Endpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    security_protocol: l.security_protocol.id(),
                })
                .collect(),
            rack: config.broker_rack.clone(),
            fenced: false,
        };
        let records = if image.offset() < 0 {
            controller.bootstrap_records(registration)
        } else {
            controller.register_broker(&image, registration)
        };
        let last = metadata_log.append(&records)?;
        let records = metadata_log.read_committed(image.offset() + 1, u64::MAX)?;
        image = image
            .apply(&records)
            .map_err(|e| BrokerError::Storage(format!("registering broker: {e}")))?
            .0;
        debug_assert_eq!(image.offset(), last);

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
        Ok(Broker {
            config,
            static_props,
            cluster_id,
            image: watch::channel(Arc::new(image)).0,
            metadata_log,
            controller: Mutex::new(controller),
            loader: std::sync::Mutex::new(()),
            effective: std::sync::RwLock::new(Arc::new(effective)),
            shutdown: watch::channel(false).0,
            replicas,
        })
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

    /// Replays committed metadata records beyond the image and acts on
    /// them. Safe to call from several places; replay is serialised.
    pub fn catch_up(&self) -> Result<(), BrokerError> {
        let _guard = self.loader.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let current = self.image();
            let records = self
                .metadata_log
                .read_committed(current.offset() + 1, REPLAY_CHUNK_BYTES)?;
            if records.is_empty() {
                return Ok(());
            }
            let (next, delta) = current
                .apply(&records)
                .map_err(|e| BrokerError::Storage(format!("applying metadata: {e}")))?;
            if delta.broker_config_changed {
                match effective_config(&self.static_props, &next, self.config.node_id) {
                    Ok(c) => {
                        self.replicas
                            .set_default_config(c.default_log_config(), &next);
                        *self.effective.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                    }
                    Err(e) => warn!("ignoring dynamic broker configs: {e}"),
                }
            }
            // The records are committed: the image moves on even if a log
            // could not be created or deleted (that partition then answers
            // with an error), so later operations see the committed state.
            if let Err(e) = self.replicas.apply_delta(&next, &delta) {
                error!(
                    offset = next.offset(),
                    "acting on committed metadata failed: {e}"
                );
            }
            debug!(offset = next.offset(), "metadata applied");
            self.image.send_replace(Arc::new(next));
        }
    }

    /// Runs a controller operation: computes its records from the current
    /// image, commits them, waits until they are applied, and returns the
    /// response.
    pub async fn controller_write<R>(
        &self,
        op: impl FnOnce(&Controller, &MetadataImage) -> ControllerResult<R>,
    ) -> Result<R, BrokerError> {
        let controller = self.controller.lock().await;
        let image = self.image();
        let result = op(&controller, &image);
        if result.records.is_empty() {
            return Ok(result.response);
        }
        let offset = self.metadata_log.append(&result.records)?;
        let mut committed = self.metadata_log.committed();
        let wait = committed.wait_for(|c| *c >= offset);
        if tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), wait)
            .await
            .is_err()
        {
            return Err(BrokerError::CommitTimeout(COMMIT_TIMEOUT_MS));
        }
        self.catch_up()?;
        drop(controller);
        Ok(result.response)
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

    /// Flushes and closes the logs, writing the clean-shutdown markers.
    pub fn close(self) -> Result<(), BrokerError> {
        // Both are attempted; the first error is reported.
        let metadata = self.metadata_log.close();
        let partitions = self.replicas.close();
        metadata.and(partitions)
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
