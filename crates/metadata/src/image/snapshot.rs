//! Metadata snapshots (KIP-630): an image written out as the records that
//! rebuild it, loaded back, and compared with the image it replaces.
//!
//! - [`MetadataImage::to_snapshot_records`] lists the records in the order
//!   of Kafka's `MetadataImage.write`: feature levels (`metadata.version`
//!   first, as a reader may need it to decode what follows), broker
//!   registrations, each topic followed by its partitions, then configs.
//! - [`MetadataImage::from_snapshot`] replays them onto the empty image and
//!   stamps the image with the snapshot's last contained offset, so that the
//!   log is read again from the snapshot's end offset.
//! - [`MetadataImage::delta_to`] is the [`MetadataDelta`] a broker acts on
//!   when it swaps its image for one loaded from a snapshot.
//!
//! Departures from Kafka:
//! - Kafka's loader replays a snapshot onto a delta of the current image in
//!   "snapshot mode" and reports every partition of the snapshot as touched;
//!   here the new image is built on its own and `delta_to` compares the two,
//!   so only what differs is reported.
//! - The image keeps no replica directories, so partitions are written as
//!   `PartitionRecord` v1 with every directory `DIRECTORY_UNASSIGNED`, as the
//!   controller writes new partitions. Likewise only the registration fields
//!   the image keeps are written (no supported features or log dirs).
//! - Topics are written in name order, not in Kafka's (hash) order of ids.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{inconsistent, ConfigKey, MetadataDelta, MetadataImage, TopicImage};
use crate::controller::METADATA_VERSION_FEATURE;
use crate::image::{CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC};
use crate::records::{
    ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionRecord, ProducerIdsRecord,
    TopicRecord, DIRECTORY_UNASSIGNED,
};
use crate::MetadataError;

impl MetadataImage {
    /// The records that rebuild this image from [`empty`](Self::empty), in
    /// Kafka's snapshot order: feature levels (`metadata.version` first),
    /// broker registrations by id, each topic (by name) followed by its
    /// partitions by id, then configs by resource type, resource name and
    /// key, then the next producer id. Only `FeatureLevel`, `RegisterBroker`,
    /// `Topic`, `Partition`, `Config` records with a value and one
    /// `ProducerIds` (once a block was handed out) appear.
    ///
    /// The image's offset is not a record: the snapshot's id carries it
    /// (see [`from_snapshot`](Self::from_snapshot)).
    pub fn to_snapshot_records(&self) -> Vec<MetadataRecord> {
        let partitions: usize = self.topics.values().map(|t| t.partitions.len()).sum();
        let configs: usize = self.configs.values().map(|c| c.len()).sum();
        let mut out = Vec::with_capacity(
            self.features.len() + self.brokers.len() + self.topics.len() + partitions + configs,
        );

        let feature = |name: &str, level: i16| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.to_string(),
                feature_level: level,
            })
        };
        if let Some(level) = self.features.get(METADATA_VERSION_FEATURE) {
            out.push(feature(METADATA_VERSION_FEATURE, *level));
        }
        for (name, level) in self.features.iter() {
            if name != METADATA_VERSION_FEATURE {
                out.push(feature(name, *level));
            }
        }

        for broker in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(broker.to_record()));
        }

        for topic in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id,
            }));
            for (id, p) in &topic.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    version: 1,
                    partition_id: *id,
                    topic_id: topic.id,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    directories: vec![DIRECTORY_UNASSIGNED; p.replicas.len()],
                    ..PartitionRecord::default()
                }));
            }
        }

        for ((resource_type, resource_name), entries) in self.configs.iter() {
            for (name, value) in entries {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }

        if self.next_producer_id > 0 {
            // As Kafka's image writes it: no broker, only the next id.
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        out
    }

    /// The image a snapshot holds: `records` (as written by
    /// [`to_snapshot_records`](Self::to_snapshot_records), or by Kafka)
    /// replayed onto the empty image, with its offset set to the snapshot's
    /// last contained offset, `end_offset - 1`. `end_offset` is the offset in
    /// the snapshot's id (`<end offset>-<epoch>.checkpoint`): the first log
    /// offset the snapshot does not contain, where the caller resumes
    /// applying the log.
    ///
    /// A negative `end_offset` is an error. A record that contradicts the
    /// records before it is [`MetadataError::Inconsistent`] with the
    /// record's index in the snapshot (its offset within the snapshot file)
    /// as the offset.
    pub fn from_snapshot(
        end_offset: i64,
        records: &[MetadataRecord],
    ) -> Result<MetadataImage, MetadataError> {
        if end_offset < 0 {
            return Err(inconsistent(
                end_offset,
                "a snapshot's end offset cannot be negative".to_string(),
            ));
        }
        let mut image = MetadataImage::empty();
        // What the records changed relative to nothing is of no use: the
        // caller compares images with `delta_to`.
        let mut ignored = MetadataDelta::default();
        for (index, record) in records.iter().enumerate() {
            let index = i64::try_from(index).unwrap_or(i64::MAX);
            image.replay(index, record, &mut ignored)?;
        }
        image.offset = end_offset - 1;
        Ok(image)
    }

    /// What changed from this image to `newer`, as one [`apply`](Self::apply)
    /// of the records between them would report it, for a broker that
    /// replaces this image with `newer` (typically loaded with
    /// [`from_snapshot`](Self::from_snapshot)) and acts on the delta as on
    /// any other.
    ///
    /// A topic is the same topic in both images only with the same id and
    /// name. So a topic deleted and re-created under its name between the
    /// images appears in `deleted_topics` with its old id and in
    /// `created_partitions` with its new one. Unlike `apply`, what came and
    /// went between the two images (a topic created and deleted again)
    /// leaves no trace, and a partition counts as changed only if its
    /// registration differs (replicas, ISR, leader, leader or partition
    /// epoch). Lists are in name order; partitions of a topic in id order.
    pub fn delta_to(&self, newer: &MetadataImage) -> MetadataDelta {
        let mut delta = MetadataDelta::default();
        if !Arc::ptr_eq(&self.topics, &newer.topics) {
            self.topics_delta_to(newer, &mut delta);
        }
        if !Arc::ptr_eq(&self.configs, &newer.configs) {
            let keys: BTreeSet<&ConfigKey> =
                self.configs.keys().chain(newer.configs.keys()).collect();
            for key in keys {
                if self.configs.get(key) == newer.configs.get(key) {
                    continue;
                }
                match key.0 {
                    CONFIG_RESOURCE_TOPIC => delta.note_topic_config(&key.1),
                    CONFIG_RESOURCE_BROKER => delta.broker_config_changed = true,
                    _ => {}
                }
            }
        }
        delta
    }

    fn topics_delta_to(&self, newer: &MetadataImage, delta: &mut MetadataDelta) {
        for old in self.topics.values() {
            if same_topic(newer, old).is_none() {
                delta.deleted_topics.push((
                    old.name.clone(),
                    old.id,
                    old.partitions.keys().copied().collect(),
                ));
            }
        }
        for new in newer.topics.values() {
            let old = same_topic(self, new);
            for (id, partition) in &new.partitions {
                match old.and_then(|o| o.partitions.get(id)) {
                    None => delta
                        .created_partitions
                        .push((new.name.clone(), new.id, *id)),
                    Some(before) if before != partition => {
                        delta.changed_partitions.push((new.name.clone(), *id))
                    }
                    Some(_) => {}
                }
            }
            // No record removes a partition, so a partition of the same topic
            // missing from the newer image would mean a corrupt snapshot; the
            // delta has no way to say it and the broker keeps the log.
        }
    }
}

/// `t` as `image` holds it: the topic with `t`'s name, if it has `t`'s id.
fn same_topic<'a>(image: &'a MetadataImage, t: &TopicImage) -> Option<&'a TopicImage> {
    image.topics.get(&t.name).filter(|other| other.id == t.id)
}
