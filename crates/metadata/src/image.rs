//! The immutable metadata image: what committed metadata records say about
//! the cluster at one offset.
//!
//! An image is never changed in place. [`MetadataImage::apply`] replays
//! committed records onto a copy and returns the new image together with a
//! [`MetadataDelta`] saying what changed, which the broker acts on (create or
//! delete logs, change leadership). The big maps sit behind `Arc`s so that
//! cloning an image to hand it to request handlers is cheap; `apply` copies a
//! map only when a record touches it.
//!
//! Like Kafka's `MetadataDelta`, a `RemoveTopicRecord` also removes the
//! topic's configs. Unlike Kafka's image loader, a record that contradicts
//! the image (a partition of an unknown topic, removing an unknown topic, a
//! second topic with a taken name) is an error rather than a logged skip:
//! on a single node it can only mean a bug or a corrupt log.
//!
//! Snapshots of the image (KIP-630) live in `image/snapshot.rs`:
//! [`MetadataImage::to_snapshot_records`] (the records that rebuild an
//! image), [`MetadataImage::from_snapshot`] (loading them) and
//! [`MetadataImage::delta_to`] (what a broker acts on when it swaps images).

mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{
    ConfigRecord, Endpoint, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    RegisterBrokerRecord, NO_LEADER_CHANGE,
};
use crate::MetadataError;

/// Kafka's `ConfigResource.Type.TOPIC`.
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type.BROKER`.
pub const CONFIG_RESOURCE_BROKER: i8 = 4;

/// One partition's replica assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// One topic: its name, id and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation_id: Uuid,
    /// The broker epoch: the offset of its registration record in Kafka; a
    /// counter bumped at each registration here.
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The record that registers this broker (`RegisterBrokerRecord` v3).
    pub fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            end_points: self.endpoints.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            ..RegisterBrokerRecord::default()
        }
    }

    fn from_record(r: &RegisterBrokerRecord) -> BrokerRegistration {
        BrokerRegistration {
            id: r.broker_id,
            incarnation_id: r.incarnation_id,
            epoch: r.broker_epoch,
            endpoints: r.end_points.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
        }
    }
}

/// What one [`MetadataImage::apply`] changed. A broker should handle
/// `deleted_topics` before `created_partitions`: a topic deleted and created
/// again under the same name in one apply appears in both, with different
/// ids. A topic created and deleted within one apply appears only in
/// `deleted_topics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// (topic, topic id, partition) of every partition that is new.
    pub created_partitions: Vec<(String, Uuid, i32)>,
    /// (topic, topic id, its partitions) of every removed topic.
    pub deleted_topics: Vec<(String, Uuid, Vec<i32>)>,
    /// (topic, partition) of partitions whose replicas, ISR or leader changed.
    pub changed_partitions: Vec<(String, i32)>,
    /// Topics whose configs changed (each named once).
    pub topic_config_changes: Vec<String>,
    /// Whether any broker config (cluster default or per broker) changed.
    pub broker_config_changed: bool,
}

impl MetadataDelta {
    /// Whether nothing the broker acts on changed.
    pub fn is_empty(&self) -> bool {
        self == &MetadataDelta::default()
    }
}

type ConfigKey = (i8, String);

/// The cluster metadata at one offset. Cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataImage {
    offset: i64,
    /// Topics by name.
    topics: Arc<BTreeMap<String, TopicImage>>,
    /// Topic names by id.
    topic_names: Arc<BTreeMap<Uuid, String>>,
    brokers: Arc<BTreeMap<i32, BrokerRegistration>>,
    /// Explicitly set configs by (resource type, resource name).
    configs: Arc<BTreeMap<ConfigKey, BTreeMap<String, String>>>,
    features: Arc<BTreeMap<String, i16>>,
    /// The first producer id of the next block the controller hands out
    /// (`ProducerIdsRecord`); 0 before the first.
    next_producer_id: i64,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage::empty()
    }
}

fn inconsistent(offset: i64, what: String) -> MetadataError {
    MetadataError::Inconsistent { offset, what }
}

impl MetadataImage {
    /// The image before any record.
    pub fn empty() -> MetadataImage {
        MetadataImage {
            offset: -1,
            topics: Arc::default(),
            topic_names: Arc::default(),
            brokers: Arc::default(),
            configs: Arc::default(),
            features: Arc::default(),
            next_producer_id: 0,
        }
    }

    /// The offset of the last applied record, -1 when empty.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// All topics, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// All registered brokers, in id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// The explicitly set configs of a topic (not the defaults).
    pub fn topic_config(&self, name: &str) -> BTreeMap<String, String> {
        self.config(CONFIG_RESOURCE_TOPIC, name)
    }

    /// The dynamic configs of one broker, or with `None` the cluster-wide
    /// defaults (resource name "").
    pub fn broker_config(&self, id: Option<i32>) -> BTreeMap<String, String> {
        let name = id.map(|i| i.to_string()).unwrap_or_default();
        self.config(CONFIG_RESOURCE_BROKER, &name)
    }

    /// The configs of any resource, by Kafka resource type.
    pub fn config(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The finalized level of a feature (`metadata.version`, ...).
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }

    /// All finalized features.
    /// The first producer id of the next block (0 before any).
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    pub fn features(&self) -> impl Iterator<Item = (&str, i16)> {
        self.features.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Replays committed records (with their log offsets, increasing and
    /// after [`offset`](Self::offset)) onto a copy of this image.
    pub fn apply(
        &self,
        records: &[(i64, MetadataRecord)],
    ) -> Result<(MetadataImage, MetadataDelta), MetadataError> {
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        for (offset, record) in records {
            let offset = *offset;
            if offset <= next.offset {
                return Err(inconsistent(
                    offset,
                    format!("record is not after offset {}", next.offset),
                ));
            }
            next.replay(offset, record, &mut delta)?;
            next.offset = offset;
        }
        Ok((next, delta))
    }

    fn replay(
        &mut self,
        offset: i64,
        record: &MetadataRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                Arc::make_mut(&mut self.brokers)
                    .insert(r.broker_id, BrokerRegistration::from_record(r));
            }
            MetadataRecord::UnregisterBroker(r) => {
                if Arc::make_mut(&mut self.brokers)
                    .remove(&r.broker_id)
                    .is_none()
                {
                    return Err(inconsistent(
                        offset,
                        format!("unregistering unknown broker {}", r.broker_id),
                    ));
                }
            }
            MetadataRecord::Topic(r) => {
                if self.topics.contains_key(&r.name) {
                    return Err(inconsistent(
                        offset,
                        format!("topic {} already exists", r.name),
                    ));
                }
                if let Some(other) = self.topic_names.get(&r.topic_id) {
                    return Err(inconsistent(
                        offset,
                        format!(
                            "topic id {} of {} is already used by {other}",
                            r.topic_id, r.name
                        ),
                    ));
                }
                Arc::make_mut(&mut self.topic_names).insert(r.topic_id, r.name.clone());
                Arc::make_mut(&mut self.topics).insert(
                    r.name.clone(),
                    TopicImage {
                        name: r.name.clone(),
                        id: r.topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition(r) => self.replay_partition(offset, r, delta)?,
            MetadataRecord::PartitionChange(r) => self.replay_partition_change(offset, r, delta)?,
            MetadataRecord::Config(r) => self.replay_config(r, delta),
            MetadataRecord::RemoveTopic(r) => {
                let Some(name) = Arc::make_mut(&mut self.topic_names).remove(&r.topic_id) else {
                    return Err(inconsistent(
                        offset,
                        format!("removing unknown topic id {}", r.topic_id),
                    ));
                };
                let topic = Arc::make_mut(&mut self.topics)
                    .remove(&name)
                    .ok_or_else(|| {
                        inconsistent(offset, format!("topic {name} has an id but no image"))
                    })?;
                let key = (CONFIG_RESOURCE_TOPIC, name.clone());
                if self.configs.contains_key(&key) {
                    Arc::make_mut(&mut self.configs).remove(&key);
                    delta.note_topic_config(&name);
                }
                delta
                    .created_partitions
                    .retain(|(_, id, _)| *id != topic.id);
                delta.changed_partitions.retain(|(n, _)| *n != name);
                delta.deleted_topics.push((
                    name,
                    topic.id,
                    topic.partitions.keys().copied().collect(),
                ));
            }
            MetadataRecord::FeatureLevel(r) => {
                let features = Arc::make_mut(&mut self.features);
                if r.feature_level == 0 {
                    features.remove(&r.name);
                } else {
                    features.insert(r.name.clone(), r.feature_level);
                }
            }
            MetadataRecord::ProducerIds(r) => {
                if r.next_producer_id <= self.next_producer_id {
                    return Err(inconsistent(
                        offset,
                        format!(
                            "next producer id {} is not above the current {}",
                            r.next_producer_id, self.next_producer_id
                        ),
                    ));
                }
                self.next_producer_id = r.next_producer_id;
            }
            MetadataRecord::NoOp(_) => {}
        }
        Ok(())
    }

    fn topic_mut(&mut self, offset: i64, id: Uuid) -> Result<&mut TopicImage, MetadataError> {
        let name = self
            .topic_names
            .get(&id)
            .ok_or_else(|| inconsistent(offset, format!("partition of unknown topic id {id}")))?
            .clone();
        Arc::make_mut(&mut self.topics)
            .get_mut(&name)
            .ok_or_else(|| inconsistent(offset, format!("topic {name} has an id but no image")))
    }

    fn replay_partition(
        &mut self,
        offset: i64,
        r: &PartitionRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), MetadataError> {
        if r.partition_id < 0 {
            return Err(inconsistent(
                offset,
                format!("partition id {} is negative", r.partition_id),
            ));
        }
        let topic = self.topic_mut(offset, r.topic_id)?;
        let image = PartitionImage {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
        };
        // Kafka treats a PartitionRecord for an existing partition as a
        // replacement of its registration.
        let existed = topic.partitions.insert(r.partition_id, image).is_some();
        let entry = (topic.name.clone(), r.partition_id);
        if existed {
            delta.note_changed(entry);
        } else {
            delta.created_partitions.push((entry.0, topic.id, entry.1));
        }
        Ok(())
    }

    fn replay_partition_change(
        &mut self,
        offset: i64,
        r: &PartitionChangeRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), MetadataError> {
        let topic = self.topic_mut(offset, r.topic_id)?;
        let name = topic.name.clone();
        let p = topic.partitions.get_mut(&r.partition_id).ok_or_else(|| {
            inconsistent(
                offset,
                format!("change of unknown partition {name}-{}", r.partition_id),
            )
        })?;
        // As Kafka's PartitionRegistration.merge: the partition epoch moves
        // on every change, the leader epoch only with a new leader.
        if let Some(replicas) = &r.replicas {
            p.replicas = replicas.clone();
        }
        if let Some(isr) = &r.isr {
            p.isr = isr.clone();
        }
        if r.leader != NO_LEADER_CHANGE {
            p.leader = r.leader;
            p.leader_epoch += 1;
        }
        p.partition_epoch += 1;
        delta.note_changed((name, r.partition_id));
        Ok(())
    }

    fn replay_config(&mut self, r: &ConfigRecord, delta: &mut MetadataDelta) {
        // Kafka writes a topic's ConfigRecords before its TopicRecord, so a
        // config of a topic that does not exist (yet) is accepted.
        let key = (r.resource_type, r.resource_name.clone());
        let configs = Arc::make_mut(&mut self.configs);
        match &r.value {
            Some(v) => {
                configs
                    .entry(key)
                    .or_default()
                    .insert(r.name.clone(), v.clone());
            }
            None => {
                if let Some(m) = configs.get_mut(&key) {
                    m.remove(&r.name);
                    if m.is_empty() {
                        configs.remove(&key);
                    }
                }
            }
        }
        match r.resource_type {
            CONFIG_RESOURCE_TOPIC => delta.note_topic_config(&r.resource_name),
            CONFIG_RESOURCE_BROKER => delta.broker_config_changed = true,
            _ => {}
        }
    }
}

impl MetadataDelta {
    fn note_topic_config(&mut self, name: &str) {
        if !self.topic_config_changes.iter().any(|n| n == name) {
            self.topic_config_changes.push(name.to_string());
        }
    }

    fn note_changed(&mut self, entry: (String, i32)) {
        let is_new = self
            .created_partitions
            .iter()
            .any(|(n, _, p)| *n == entry.0 && *p == entry.1);
        if !is_new && !self.changed_partitions.contains(&entry) {
            self.changed_partitions.push(entry);
        }
    }
}
