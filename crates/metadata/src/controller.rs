//! The controller: validates admin requests against a [`MetadataImage`] and
//! returns the metadata records that carry them out.
//!
//! Sans-IO: every operation takes the current image and a decoded request
//! and returns a [`ControllerResult`]: the records to commit and the response
//! to send once they are committed. Nothing here appends, waits or sends.
//! The caller must apply the committed records to its image before running
//! the next operation, or two operations could both pass validation against
//! the same stale image (two creates of one topic).
//!
//! Behaviour follows Kafka 3.9's `ReplicationControlManager`,
//! `ConfigurationControlManager` and `ControllerApis` (error codes, messages,
//! order of checks). Departures:
//! - Replication across brokers is not implemented yet: a replication
//!   factor or manual assignment with more than one replica is refused with
//!   INVALID_REPLICATION_FACTOR (after Kafka's own broker-count check).
//! - Replica placement is round-robin over unfenced brokers in id order,
//!   not Kafka's randomised striped placer.
//! - CreateTopics returns only the explicitly set configs of a new topic
//!   (source DYNAMIC_TOPIC_CONFIG), not every default.
//! - There are no authorizer, policies or quotas.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{
    alter_configs_response::{AlterConfigsResourceResponse, AlterConfigsResponse},
    create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult},
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    create_topics_response::{CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse},
    delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse},
    incremental_alter_configs_response::{
        AlterConfigsResourceResponse as IncrementalResourceResponse,
        IncrementalAlterConfigsResponse,
    },
    AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::image::{
    BrokerRegistration, MetadataImage, CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC,
};
use crate::records::{
    ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionRecord, ProducerIdsRecord,
    RemoveTopicRecord, TopicRecord, DIRECTORY_UNASSIGNED,
};
use crate::topic_config::{validate_topic_config, validate_topic_configs, LIST_KEYS};

/// Kafka's `Topic.MAX_NAME_LENGTH`.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// The most replicas a partition may have until replication is implemented.
pub const REPLICAS_MAX: usize = 1;

/// The feature that carries the metadata version.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";
/// Kafka 3.9's `MetadataVersion.IBP_3_9_IV0` ("3.9-IV0").
pub const METADATA_VERSION_3_9_IV0: i16 = 21;

/// Kafka's internal topics (`Topic.isInternal`).
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// How many producer ids one AllocateProducerIds hands out (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// IncrementalAlterConfigs operations (Kafka's `AlterConfigOp.OpType`).
pub mod op_type {
    pub const SET: i8 = 0;
    pub const DELETE: i8 = 1;
    pub const APPEND: i8 = 2;
    pub const SUBTRACT: i8 = 3;
}

/// Kafka's `DescribeConfigsResponse.ConfigSource.DYNAMIC_TOPIC_CONFIG`.
const CONFIG_SOURCE_DYNAMIC_TOPIC: i8 = 1;

/// Validates one dynamic broker config `(key, value)`; an error message
/// means INVALID_CONFIG. The broker supplies it from its config
/// definitions: a key that is not dynamically updatable is an error.
pub type BrokerConfigValidator<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

/// The controller's settings (Kafka's names: `node.id`, `num.partitions`,
/// `default.replication.factor`, `auto.create.topics.enable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub node_id: i32,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            node_id: 1,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
        }
    }
}

/// Records to commit and the response to send once they are committed.
#[must_use = "the records must be committed before the response is sent"]
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerResult<R> {
    pub records: Vec<MetadataRecord>,
    pub response: R,
}

/// The sans-IO controller. It holds only its configuration: all state is in
/// the image passed to each call.
#[derive(Debug, Clone)]
pub struct Controller {
    config: ControllerConfig,
}

/// An error for one topic or resource: Kafka error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    code: i16,
    message: String,
}

fn api_error(error: ResponseError, message: impl Into<String>) -> ApiError {
    ApiError {
        code: error.code(),
        message: message.into(),
    }
}

fn unknown_topic() -> ApiError {
    api_error(
        ResponseError::UnknownTopicOrPartition,
        "This server does not host this topic-partition.",
    )
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's `Topic.validate`: the reason a name is not a valid topic name.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        Some("the empty string is not allowed".to_string())
    } else if name == "." {
        Some("'.' is not allowed".to_string())
    } else if name == ".." {
        Some("'..' is not allowed".to_string())
    } else if name.encode_utf16().count() > TOPIC_NAME_LENGTH_MAX {
        Some(format!(
            "the length of '{name}' is longer than the max allowed length {TOPIC_NAME_LENGTH_MAX}"
        ))
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        Some(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        ))
    } else {
        None
    };
    match reason {
        Some(r) => Err(format!("Topic name is invalid: {r}")),
        None => Ok(()),
    }
}

/// Kafka's `Topic.isInternal`.
pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The most records one admin request may produce, as Kafka's controller
/// bounds a user operation (`MAX_RECORDS_PER_USER_OP`): a CreateTopics or
/// CreatePartitions asking for more partitions is refused with
/// POLICY_VIOLATION instead of allocating them.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

fn too_large() -> ApiError {
    api_error(
        ResponseError::PolicyViolation,
        format!(
            "Unable to perform excessively large batch operation: one request may create at most {MAX_RECORDS_PER_USER_OP} partitions."
        ),
    )
}

/// Kafka's `Topic.unifyCollisionChars`: '.' and '_' collide in metric names.
fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// Names appearing more than once, each once, in first-seen order.
fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut dups = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            dups.insert(n.to_string());
        }
    }
    dups
}

/// The new partitions of one topic: (partition id, replicas, isr).
type NewPartitions = Vec<(i32, Vec<i32>, Vec<i32>)>;

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        Controller { config }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The records a freshly formatted node writes first: the metadata
    /// version (3.9-IV0) and this node's registration, unfenced.
    /// The records a new cluster's first active controller writes before
    /// anything else: the `metadata.version` feature level.
    pub fn bootstrap_feature_records(&self) -> Vec<MetadataRecord> {
        vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: METADATA_VERSION_FEATURE.to_string(),
            feature_level: METADATA_VERSION_3_9_IV0,
        })]
    }

    pub fn bootstrap_records(&self, broker: BrokerRegistration) -> Vec<MetadataRecord> {
        let mut registration = broker.to_record();
        registration.fenced = false;
        vec![
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: METADATA_VERSION_FEATURE.to_string(),
                feature_level: METADATA_VERSION_3_9_IV0,
            }),
            MetadataRecord::RegisterBroker(registration),
        ]
    }

    /// Re-registration of a broker at restart: its new incarnation (the one
    /// in `broker`) with the broker epoch one past the registered one.
    /// Registering the same incarnation with the same endpoints and rack
    /// again is a no-op, as in Kafka.
    pub fn register_broker(
        &self,
        image: &MetadataImage,
        broker: BrokerRegistration,
    ) -> Vec<MetadataRecord> {
        let mut record = broker.to_record();
        record.fenced = false;
        if let Some(existing) = image.broker(broker.id) {
            if existing.incarnation_id == broker.incarnation_id
                && existing.endpoints == broker.endpoints
                && existing.rack == broker.rack
                && !existing.fenced
            {
                return Vec::new();
            }
            record.broker_epoch = existing.epoch.saturating_add(1).max(broker.epoch);
        }
        vec![MetadataRecord::RegisterBroker(record)]
    }

    /// AllocateProducerIds: the next block of [`PRODUCER_ID_BLOCK_SIZE`]
    /// producer ids for broker `broker_id`. Ids come from the metadata log
    /// (`ProducerIdsRecord`), so they stay unique across restarts and
    /// controller changes. A broker that is not registered, or registered
    /// with another epoch, gets STALE_BROKER_EPOCH (Kafka checks the same);
    /// -1 skips the epoch check (a combined node asking itself).
    pub fn allocate_producer_ids(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        broker_epoch: i64,
    ) -> ControllerResult<Result<(i64, i32), ResponseError>> {
        let refuse = |e| ControllerResult {
            records: Vec::new(),
            response: Err(e),
        };
        match image.broker(broker_id) {
            None => return refuse(ResponseError::BrokerIdNotRegistered),
            Some(b) if broker_epoch != -1 && b.epoch != broker_epoch => {
                return refuse(ResponseError::StaleBrokerEpoch)
            }
            Some(_) => {}
        }
        let first = image.next_producer_id();
        let Some(next) = first.checked_add(i64::from(PRODUCER_ID_BLOCK_SIZE)) else {
            return refuse(ResponseError::UnknownServerError);
        };
        ControllerResult {
            records: vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id,
                broker_epoch,
                next_producer_id: next,
            })],
            response: Ok((first, PRODUCER_ID_BLOCK_SIZE)),
        }
    }

    fn unfenced_brokers(&self, image: &MetadataImage) -> Vec<i32> {
        image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// Kafka's striped placer's checks (and the bound on records one request
    /// may create), then round-robin placement of
    /// `count` partitions starting at `first` (one broker per partition).
    fn place(
        &self,
        image: &MetadataImage,
        first: i32,
        count: i32,
        replication_factor: i16,
    ) -> Result<NewPartitions, ApiError> {
        if count > MAX_RECORDS_PER_USER_OP as i32 {
            return Err(too_large());
        }
        let unfenced = self.unfenced_brokers(image);
        let registered = image.brokers().count();
        let fail = |reason: String| {
            api_error(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {replication_factor} time(s): {reason}"),
            )
        };
        let rf = replication_factor.max(0) as usize;
        if unfenced.is_empty() && registered > 0 {
            return Err(fail("All brokers are currently fenced.".to_string()));
        }
        if rf > unfenced.len() {
            return Err(fail(format!(
                "The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                unfenced.len()
            )));
        }
        if rf > REPLICAS_MAX {
            return Err(fail(format!(
                "replication across brokers is not available yet; the replication factor must be {REPLICAS_MAX}."
            )));
        }
        let n = unfenced.len();
        Ok((0..count)
            .map(|i| {
                let p = first + i;
                let replicas: Vec<i32> = (0..rf).map(|j| unfenced[(p as usize + j) % n]).collect();
                (p, replicas.clone(), replicas)
            })
            .collect())
    }

    /// Kafka's `validateManualPartitionAssignment` plus the ISR check, then
    /// Riffle's one-replica limit.
    fn check_manual_assignment(
        &self,
        image: &MetadataImage,
        partition: i32,
        broker_ids: &[i32],
        replication_factor: Option<usize>,
    ) -> Result<Vec<i32>, ApiError> {
        let invalid = |m: String| api_error(ResponseError::InvalidReplicaAssignment, m);
        if broker_ids.is_empty() {
            return Err(invalid(
                "The manual partition assignment includes an empty replica list.".to_string(),
            ));
        }
        let mut sorted = broker_ids.to_vec();
        sorted.sort_unstable();
        let mut prev = None;
        for &b in &sorted {
            if image.broker(b).is_none() {
                return Err(invalid(format!(
                    "The manual partition assignment includes broker {b}, but no such broker is registered."
                )));
            }
            if prev == Some(b) {
                return Err(invalid(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                )));
            }
            prev = Some(b);
        }
        if let Some(rf) = replication_factor {
            if sorted.len() != rf {
                return Err(invalid(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                    sorted.len()
                )));
            }
        }
        if broker_ids.len() > REPLICAS_MAX {
            return Err(api_error(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "The manual partition assignment for partition {partition} has {} replicas, but replication across brokers is not available yet; each partition must have {REPLICAS_MAX} replica.",
                    broker_ids.len()
                ),
            ));
        }
        let isr: Vec<i32> = broker_ids
            .iter()
            .copied()
            .filter(|b| image.broker(*b).is_some_and(|r| !r.fenced))
            .collect();
        if isr.is_empty() {
            return Err(invalid(format!(
                "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
            )));
        }
        Ok(isr)
    }

    fn partition_records(topic_id: Uuid, parts: &NewPartitions) -> Vec<MetadataRecord> {
        parts
            .iter()
            .map(|(p, replicas, isr)| {
                MetadataRecord::Partition(PartitionRecord {
                    partition_id: *p,
                    topic_id,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: isr.first().copied().unwrap_or(-1),
                    leader_epoch: 0,
                    partition_epoch: 0,
                    directories: vec![DIRECTORY_UNASSIGNED; replicas.len()],
                    ..PartitionRecord::default()
                })
            })
            .collect()
    }

    /// A fresh topic id as Kafka's `Uuid.randomUuid` picks them: never the
    /// zero or metadata-topic id, never one whose base64 starts with '-',
    /// and not one in use.
    fn new_topic_id(image: &MetadataImage, taken: &BTreeSet<Uuid>) -> Uuid {
        loop {
            let id = Uuid::new_v4();
            let bytes = id.as_bytes();
            let metadata_topic_id = Uuid::from_u64_pair(0, 1);
            if id.is_nil()
                || id == metadata_topic_id
                || bytes[0] >> 2 == 62
                || taken.contains(&id)
                || image.topic_by_id(id).is_some()
            {
                continue;
            }
            return id;
        }
    }

    /// The partitions of one new topic, or why it cannot be created.
    fn plan_topic(
        &self,
        image: &MetadataImage,
        topic: &CreatableTopic,
    ) -> Result<NewPartitions, ApiError> {
        if !topic.assignments.is_empty() {
            if topic.replication_factor != -1 {
                return Err(api_error(
                    ResponseError::InvalidRequest,
                    "A manual partition assignment was specified, but replication factor was not set to -1.",
                ));
            }
            if topic.num_partitions != -1 {
                return Err(api_error(
                    ResponseError::InvalidRequest,
                    "A manual partition assignment was specified, but numPartitions was not set to -1.",
                ));
            }
            let mut parts: BTreeMap<i32, (Vec<i32>, Vec<i32>)> = BTreeMap::new();
            let mut rf = None;
            for a in &topic.assignments {
                if parts.contains_key(&a.partition_index) {
                    return Err(api_error(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Found multiple manual partition assignments for partition {}",
                            a.partition_index
                        ),
                    ));
                }
                let brokers: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
                let isr = self.check_manual_assignment(image, a.partition_index, &brokers, rf)?;
                rf = Some(brokers.len());
                parts.insert(a.partition_index, (brokers, isr));
            }
            if parts.keys().copied().ne(0..parts.len() as i32) {
                return Err(api_error(
                    ResponseError::InvalidReplicaAssignment,
                    "partitions should be a consecutive 0-based integer sequence",
                ));
            }
            return Ok(parts
                .into_iter()
                .map(|(p, (replicas, isr))| (p, replicas, isr))
                .collect());
        }
        if topic.replication_factor < -1 || topic.replication_factor == 0 {
            return Err(api_error(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        if topic.num_partitions < -1 || topic.num_partitions == 0 {
            return Err(api_error(
                ResponseError::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.",
            ));
        }
        let num_partitions = if topic.num_partitions == -1 {
            self.config.num_partitions
        } else {
            topic.num_partitions
        };
        let replication_factor = if topic.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            topic.replication_factor
        };
        self.place(image, 0, num_partitions, replication_factor)
    }

    /// CreateTopics (v2-7), with Kafka's checks in Kafka's order: duplicate
    /// names, topic name, existing topic, configs, then partitions and
    /// replication.
    pub fn create_topics(
        &self,
        image: &MetadataImage,
        req: &CreateTopicsRequest,
        version: i16,
    ) -> ControllerResult<CreateTopicsResponse> {
        let dups = duplicates(req.topics.iter().map(|t| t.name.0.as_str()));
        let mut records = Vec::new();
        let mut results = Vec::new();
        let mut created_names: BTreeSet<String> = BTreeSet::new();
        let mut taken_ids = BTreeSet::new();
        let error_result = |name: &TopicName, e: ApiError| {
            CreatableTopicResult::default()
                .with_name(name.clone())
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(&e.message)))
                .with_configs(Some(Vec::new()))
        };
        for topic in &req.topics {
            let name = topic.name.0.as_str();
            if dups.contains(name) {
                continue;
            }
            let outcome = if records.len() >= MAX_RECORDS_PER_USER_OP {
                Err(too_large())
            } else {
                self.create_one_topic(image, topic, &created_names)
            };
            match outcome {
                Err(e) => results.push(error_result(&topic.name, e)),
                Ok((parts, configs)) => {
                    let topic_id = Self::new_topic_id(image, &taken_ids);
                    taken_ids.insert(topic_id);
                    created_names.insert(name.to_string());
                    records.push(MetadataRecord::Topic(TopicRecord {
                        name: name.to_string(),
                        topic_id,
                    }));
                    // As Kafka: configs after the TopicRecord, before the
                    // PartitionRecords.
                    for (k, v) in &configs {
                        records.push(MetadataRecord::Config(ConfigRecord {
                            resource_type: CONFIG_RESOURCE_TOPIC,
                            resource_name: name.to_string(),
                            name: k.clone(),
                            value: Some(v.clone()),
                        }));
                    }
                    records.extend(Self::partition_records(topic_id, &parts));
                    let mut result = CreatableTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_error_code(0)
                        .with_error_message(None);
                    if version >= 5 {
                        result.num_partitions = parts.len() as i32;
                        result.replication_factor =
                            parts.first().map(|p| p.1.len() as i16).unwrap_or(-1);
                        result.configs = Some(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(str_bytes(k))
                                        .with_value(Some(str_bytes(v)))
                                        .with_read_only(false)
                                        .with_config_source(CONFIG_SOURCE_DYNAMIC_TOPIC)
                                        .with_is_sensitive(false)
                                })
                                .collect(),
                        );
                    }
                    if version >= 7 {
                        result.topic_id = topic_id;
                    }
                    results.push(result);
                }
            }
        }
        for name in &dups {
            results.push(error_result(
                &TopicName(str_bytes(name)),
                api_error(ResponseError::InvalidRequest, "Duplicate topic name."),
            ));
        }
        if req.validate_only {
            records.clear();
        }
        ControllerResult {
            records,
            response: CreateTopicsResponse::default()
                .with_throttle_time_ms(0)
                .with_topics(results),
        }
    }

    fn create_one_topic(
        &self,
        image: &MetadataImage,
        topic: &CreatableTopic,
        created_in_request: &BTreeSet<String>,
    ) -> Result<(NewPartitions, BTreeMap<String, String>), ApiError> {
        let name = topic.name.0.as_str();
        validate_topic_name(name)
            .map_err(|m| api_error(ResponseError::InvalidTopicException, m))?;
        if image.topic(name).is_some() || created_in_request.contains(name) {
            return Err(api_error(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        let unified = unify_collision_chars(name);
        if let Some(other) = image
            .topics()
            .find(|t| t.name != name && unify_collision_chars(&t.name) == unified)
        {
            return Err(api_error(
                ResponseError::InvalidTopicException,
                format!(
                    "Topic '{name}' collides with existing topic: {}",
                    other.name
                ),
            ));
        }
        let configs = creation_configs(&topic.configs)?;
        let parts = self.plan_topic(image, topic)?;
        Ok((parts, configs))
    }

    /// Creates a topic with the defaults for Metadata auto-creation. An
    /// existing topic is `Ok` with no records. The group and transaction
    /// coordinators create their internal topics with their own settings
    /// through [`create_topics`](Self::create_topics).
    pub fn auto_create_topic(
        &self,
        image: &MetadataImage,
        name: &str,
    ) -> ControllerResult<Result<(), (i16, String)>> {
        let fail = |e: ApiError| ControllerResult {
            records: Vec::new(),
            response: Err((e.code, e.message)),
        };
        if let Err(m) = validate_topic_name(name) {
            return fail(api_error(ResponseError::InvalidTopicException, m));
        }
        if image.topic(name).is_some() {
            return ControllerResult {
                records: Vec::new(),
                response: Ok(()),
            };
        }
        if !self.config.auto_create_topics_enable {
            return fail(unknown_topic());
        }
        let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)]);
        let result = self.create_topics(image, &req, 7);
        let response = match result.response.topics.first() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) => Err((
                t.error_code,
                t.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )),
            None => Err((
                ResponseError::UnknownServerError.code(),
                "no result for the topic".to_string(),
            )),
        };
        ControllerResult {
            records: result.records,
            response,
        }
    }

    /// DeleteTopics (v1-6): by name (`topic_names`, and `topics[].name` at
    /// v6) or by id (v6). Checks follow Kafka's `ControllerApis.deleteTopics`.
    pub fn delete_topics(
        &self,
        image: &MetadataImage,
        req: &DeleteTopicsRequest,
        version: i16,
    ) -> ControllerResult<DeleteTopicsResponse> {
        let mut responses = Vec::new();
        let mut push = |name: Option<&str>, id: Uuid, error: Option<ApiError>| {
            let mut r =
                DeletableTopicResult::default().with_name(name.map(|n| TopicName(str_bytes(n))));
            if version >= 6 {
                r.topic_id = id;
            }
            if let Some(e) = error {
                r.error_code = e.code;
                if version >= 5 {
                    r.error_message = Some(str_bytes(&e.message));
                }
            }
            responses.push(r);
        };
        // Collect names and ids in request order; remember duplicates.
        let mut names: Vec<String> = Vec::new();
        let mut ids: Vec<Uuid> = Vec::new();
        let mut dup_names = BTreeSet::new();
        let mut dup_ids = BTreeSet::new();
        let mut add_name = |n: &str, names: &mut Vec<String>| {
            if names.iter().any(|x| x == n) {
                dup_names.insert(n.to_string());
            } else {
                names.push(n.to_string());
            }
        };
        for n in &req.topic_names {
            add_name(n.0.as_str(), &mut names);
        }
        for t in &req.topics {
            match (&t.name, t.topic_id.is_nil()) {
                (None, true) => push(
                    None,
                    Uuid::nil(),
                    Some(api_error(
                        ResponseError::InvalidRequest,
                        "Neither topic name nor id were specified.",
                    )),
                ),
                (None, false) => {
                    if ids.contains(&t.topic_id) {
                        dup_ids.insert(t.topic_id);
                    } else {
                        ids.push(t.topic_id);
                    }
                }
                (Some(n), true) => add_name(n.0.as_str(), &mut names),
                (Some(n), false) => push(
                    Some(n.0.as_str()),
                    t.topic_id,
                    Some(api_error(
                        ResponseError::InvalidRequest,
                        "You may not specify both topic name and topic id.",
                    )),
                ),
            }
        }
        names.retain(|n| !dup_names.contains(n));
        ids.retain(|i| !dup_ids.contains(i));
        for n in &dup_names {
            push(
                Some(n),
                Uuid::nil(),
                Some(api_error(
                    ResponseError::InvalidRequest,
                    "Duplicate topic name.",
                )),
            );
        }
        for i in &dup_ids {
            push(
                None,
                *i,
                Some(api_error(
                    ResponseError::InvalidRequest,
                    "Duplicate topic id.",
                )),
            );
        }
        let mut deleted = BTreeSet::new();
        let mut records = Vec::new();
        for id in ids {
            match image.topic_by_id(id) {
                None => push(
                    None,
                    id,
                    Some(api_error(
                        ResponseError::UnknownTopicId,
                        "This server does not host this topic ID.",
                    )),
                ),
                Some(t) => {
                    if deleted.insert(t.id) {
                        records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                            topic_id: t.id,
                        }));
                    }
                    push(Some(&t.name), t.id, None);
                }
            }
        }
        for name in names {
            match image.topic(&name) {
                None => push(Some(&name), Uuid::nil(), Some(unknown_topic())),
                Some(t) => {
                    if deleted.insert(t.id) {
                        records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                            topic_id: t.id,
                        }));
                    }
                    push(Some(&name), t.id, None);
                }
            }
        }
        ControllerResult {
            records,
            response: DeleteTopicsResponse::default()
                .with_throttle_time_ms(0)
                .with_responses(responses),
        }
    }

    /// CreatePartitions (v0-3), as Kafka's `createPartitions`.
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        req: &CreatePartitionsRequest,
        _version: i16,
    ) -> ControllerResult<CreatePartitionsResponse> {
        let dups = duplicates(req.topics.iter().map(|t| t.name.0.as_str()));
        let mut records = Vec::new();
        let mut results = Vec::new();
        for topic in &req.topics {
            let name = topic.name.0.as_str();
            if dups.contains(name) {
                continue;
            }
            let planned = if records.len() >= MAX_RECORDS_PER_USER_OP {
                Err(too_large())
            } else {
                self.plan_partitions(image, topic)
            };
            let outcome = planned.map(|(id, parts)| {
                records.extend(Self::partition_records(id, &parts));
            });
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(outcome.as_ref().err().map(|e| e.code).unwrap_or(0))
                    .with_error_message(outcome.err().map(|e| str_bytes(&e.message))),
            );
        }
        for name in &dups {
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("Duplicate topic name."))),
            );
        }
        if req.validate_only {
            records.clear();
        }
        ControllerResult {
            records,
            response: CreatePartitionsResponse::default()
                .with_throttle_time_ms(0)
                .with_results(results),
        }
    }

    fn plan_partitions(
        &self,
        image: &MetadataImage,
        topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
    ) -> Result<(Uuid, NewPartitions), ApiError> {
        let name = topic.name.0.as_str();
        let existing = image.topic(name).ok_or_else(unknown_topic)?;
        let current = existing.partitions.len() as i32;
        let invalid = |m: String| api_error(ResponseError::InvalidPartitions, m);
        if topic.count == current {
            return Err(invalid(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        if topic.count < current {
            return Err(invalid(format!(
                "The topic {name} currently has {current} partition(s); {} would not be an increase.",
                topic.count
            )));
        }
        let additional = topic.count - current;
        let Some(first) = existing.partitions.values().next() else {
            return Err(api_error(
                ResponseError::UnknownServerError,
                format!("Invalid state: topic {name} appears to have no partitions."),
            ));
        };
        let replication_factor = first.replicas.len();
        match &topic.assignments {
            Some(assignments) => {
                if assignments.len() as i64 != i64::from(additional) {
                    return Err(api_error(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                            assignments.len()
                        ),
                    ));
                }
                let mut parts = Vec::new();
                for (i, a) in assignments.iter().enumerate() {
                    let p = current + i as i32;
                    let brokers: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
                    let isr =
                        self.check_manual_assignment(image, p, &brokers, Some(replication_factor))?;
                    parts.push((p, brokers, isr));
                }
                Ok((existing.id, parts))
            }
            None => Ok((
                existing.id,
                self.place(image, current, additional, replication_factor as i16)?,
            )),
        }
    }

    /// AlterConfigs (v0-2): replaces the whole set of configs of each
    /// resource. Topic resources are validated as at creation; broker
    /// resources ("" for the cluster default, or a node id) by
    /// `broker_config_validator`.
    pub fn alter_configs(
        &self,
        image: &MetadataImage,
        req: &AlterConfigsRequest,
        _version: i16,
        broker_config_validator: BrokerConfigValidator<'_>,
    ) -> ControllerResult<AlterConfigsResponse> {
        let dups = duplicates_resources(
            req.resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        let mut records = Vec::new();
        let mut responses = Vec::new();
        for resource in &req.resources {
            let key = (resource.resource_type, resource.resource_name.to_string());
            let outcome = if dups.contains(&key) {
                Err(api_error(
                    ResponseError::InvalidRequest,
                    "Duplicate resource.",
                ))
            } else {
                let wanted: Vec<(String, Option<String>)> = resource
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                self.check_resource(image, resource.resource_type, &resource.resource_name)
                    .and_then(|()| {
                        check_duplicate_keys(wanted.iter().map(|(k, _)| k.as_str()))?;
                        let current = image.config(resource.resource_type, &resource.resource_name);
                        let new: BTreeMap<String, String> = wanted
                            .into_iter()
                            .filter_map(|(k, v)| v.map(|v| (k, v)))
                            .collect();
                        let mut changes: Vec<(String, Option<String>)> = Vec::new();
                        for (k, v) in &new {
                            if current.get(k) != Some(v)
                                || resource.resource_type == CONFIG_RESOURCE_BROKER
                            {
                                changes.push((k.clone(), Some(v.clone())));
                            }
                        }
                        for k in current.keys() {
                            if !new.contains_key(k) {
                                changes.push((k.clone(), None));
                            }
                        }
                        self.validate_new_configs(
                            resource.resource_type,
                            &new,
                            &changes,
                            broker_config_validator,
                        )?;
                        Ok(changes)
                    })
                    .map(|changes| {
                        records.extend(config_records(
                            resource.resource_type,
                            &resource.resource_name,
                            changes,
                        ))
                    })
            };
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(outcome.as_ref().err().map(|e| e.code).unwrap_or(0))
                    .with_error_message(outcome.err().map(|e| str_bytes(&e.message)))
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone()),
            );
        }
        if req.validate_only {
            records.clear();
        }
        ControllerResult {
            records,
            response: AlterConfigsResponse::default()
                .with_throttle_time_ms(0)
                .with_responses(responses),
        }
    }

    /// IncrementalAlterConfigs (v0-1): SET, DELETE, APPEND and SUBTRACT
    /// (the last two only on list configs), as Kafka's
    /// `incrementalAlterConfigResource`.
    pub fn incremental_alter_configs(
        &self,
        image: &MetadataImage,
        req: &IncrementalAlterConfigsRequest,
        _version: i16,
        broker_config_validator: BrokerConfigValidator<'_>,
    ) -> ControllerResult<IncrementalAlterConfigsResponse> {
        let dups = duplicates_resources(
            req.resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        let mut records = Vec::new();
        let mut responses = Vec::new();
        for resource in &req.resources {
            let rtype = resource.resource_type;
            let rname = resource.resource_name.as_str();
            let outcome = if dups.contains(&(rtype, rname.to_string())) {
                Err(api_error(
                    ResponseError::InvalidRequest,
                    "Duplicate resource.",
                ))
            } else {
                self.check_resource(image, rtype, rname)
                    .and_then(|()| {
                        check_duplicate_keys(resource.configs.iter().map(|c| c.name.as_str()))?;
                        let current = image.config(rtype, rname);
                        let mut all = current.clone();
                        let mut changes = Vec::new();
                        for c in &resource.configs {
                            let key = c.name.to_string();
                            let value = c.value.as_ref().map(|v| v.to_string());
                            let old = current.get(&key).cloned();
                            let new =
                                apply_op(rtype, &key, c.config_operation, old.as_deref(), value)?;
                            if new != old || rtype == CONFIG_RESOURCE_BROKER {
                                changes.push((key.clone(), new.clone()));
                            }
                            match new {
                                Some(v) => all.insert(key, v),
                                None => all.remove(&key),
                            };
                        }
                        self.validate_new_configs(rtype, &all, &changes, broker_config_validator)?;
                        Ok(changes)
                    })
                    .map(|changes| records.extend(config_records(rtype, rname, changes)))
            };
            responses.push(
                IncrementalResourceResponse::default()
                    .with_error_code(outcome.as_ref().err().map(|e| e.code).unwrap_or(0))
                    .with_error_message(outcome.err().map(|e| str_bytes(&e.message)))
                    .with_resource_type(rtype)
                    .with_resource_name(resource.resource_name.clone()),
            );
        }
        if req.validate_only {
            records.clear();
        }
        ControllerResult {
            records,
            response: IncrementalAlterConfigsResponse::default()
                .with_throttle_time_ms(0)
                .with_responses(responses),
        }
    }

    /// Kafka's `ConfigResourceExistenceChecker`, plus the resource types the
    /// controller stores.
    fn check_resource(&self, image: &MetadataImage, rtype: i8, name: &str) -> Result<(), ApiError> {
        match rtype {
            CONFIG_RESOURCE_TOPIC => {
                if image.topic(name).is_none() {
                    return Err(api_error(
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    ));
                }
                Ok(())
            }
            CONFIG_RESOURCE_BROKER => {
                if name.is_empty() {
                    return Ok(());
                }
                let id: i32 = name.parse().map_err(|_| {
                    api_error(
                        ResponseError::InvalidRequest,
                        format!("Invalid broker name {name}"),
                    )
                })?;
                if image.broker(id).is_none() && id != self.config.node_id {
                    return Err(api_error(
                        ResponseError::BrokerIdNotRegistered,
                        format!("No node with id {id} found."),
                    ));
                }
                Ok(())
            }
            other => Err(api_error(
                ResponseError::InvalidRequest,
                format!("Unexpected resource type {other}."),
            )),
        }
    }

    /// Validates the resulting configs of a resource: a topic's whole set,
    /// a broker's changed values through the caller's validator.
    fn validate_new_configs(
        &self,
        rtype: i8,
        all: &BTreeMap<String, String>,
        changes: &[(String, Option<String>)],
        broker_config_validator: BrokerConfigValidator<'_>,
    ) -> Result<(), ApiError> {
        let invalid = |m: String| api_error(ResponseError::InvalidConfig, m);
        if rtype == CONFIG_RESOURCE_TOPIC {
            return validate_topic_configs(all).map_err(invalid);
        }
        for (k, v) in changes {
            if let Some(v) = v {
                broker_config_validator(k, v).map_err(invalid)?;
            }
        }
        Ok(())
    }
}

/// CreateTopics configs: null values are refused as in Kafka's
/// `computeConfigChanges`, then each is validated.
fn creation_configs(
    configs: &[CreatableTopicConfig],
) -> Result<BTreeMap<String, String>, ApiError> {
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(api_error(
            ResponseError::InvalidConfig,
            format!(
                "Null value not supported for topic configs: {}",
                nulls.join(",")
            ),
        ));
    }
    let map: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    validate_topic_configs(&map).map_err(|m| api_error(ResponseError::InvalidConfig, m))?;
    Ok(map)
}

fn duplicates_resources<'a>(
    resources: impl IntoIterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, String)> {
    let mut seen = BTreeSet::new();
    let mut dups = BTreeSet::new();
    for (t, n) in resources {
        if !seen.insert((t, n)) {
            dups.insert((t, n.to_string()));
        }
    }
    dups
}

fn check_duplicate_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
    if duplicates(keys).is_empty() {
        Ok(())
    } else {
        Err(api_error(
            ResponseError::InvalidRequest,
            "Error due to duplicate config keys",
        ))
    }
}

/// Broker configs of type LIST that APPEND and SUBTRACT apply to.
const BROKER_LIST_KEYS: &[&str] = &[
    "log.cleanup.policy",
    "listeners",
    "ssl.cipher.suites",
    "ssl.enabled.protocols",
    "sasl.enabled.mechanisms",
];

/// One IncrementalAlterConfigs operation on the current explicit value.
fn apply_op(
    rtype: i8,
    key: &str,
    op: i8,
    old: Option<&str>,
    value: Option<String>,
) -> Result<Option<String>, ApiError> {
    match op {
        op_type::SET => match value {
            Some(v) => Ok(Some(v)),
            None => Err(api_error(
                ResponseError::InvalidRequest,
                format!("Null value not supported for : {key}"),
            )),
        },
        op_type::DELETE => Ok(None),
        op_type::APPEND | op_type::SUBTRACT => {
            let op_name = if op == op_type::APPEND {
                "APPEND"
            } else {
                "SUBTRACT"
            };
            let is_list = if rtype == CONFIG_RESOURCE_TOPIC {
                LIST_KEYS.contains(&key)
            } else {
                BROKER_LIST_KEYS.contains(&key)
            };
            if !is_list {
                return Err(api_error(
                    ResponseError::InvalidConfig,
                    format!("Can't {op_name} to key {key} because its type is not LIST."),
                ));
            }
            // An unset list starts from its default, as Kafka's getParts.
            let base = match old {
                Some(v) => v.to_string(),
                None if key == "cleanup.policy" => "delete".to_string(),
                None => String::new(),
            };
            let mut parts: Vec<String> = base
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let operand = value.unwrap_or_default();
            for v in operand.split(',') {
                if op == op_type::APPEND {
                    if !parts.iter().any(|p| p == v) {
                        parts.push(v.to_string());
                    }
                } else {
                    parts.retain(|p| p != v);
                }
            }
            Ok(Some(parts.join(",")))
        }
        other => Err(api_error(
            ResponseError::InvalidRequest,
            format!("Unknown alter config operation type {other}"),
        )),
    }
}

fn config_records(
    rtype: i8,
    rname: &str,
    changes: Vec<(String, Option<String>)>,
) -> Vec<MetadataRecord> {
    changes
        .into_iter()
        .map(|(name, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: rtype,
                resource_name: rname.to_string(),
                name,
                value,
            })
        })
        .collect()
}

/// Whether `key` is a topic config Kafka knows (for DescribeConfigs).
pub fn is_topic_config(key: &str) -> bool {
    crate::topic_config::is_topic_config(key)
}

/// Validates one topic config value as CreateTopics and AlterConfigs do.
pub fn check_topic_config(key: &str, value: &str) -> Result<(), String> {
    validate_topic_config(key, value)
}
