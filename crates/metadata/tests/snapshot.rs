//! Metadata snapshots (KIP-630): writing an image as records, loading it
//! back, and the delta a broker acts on when it swaps its image for one
//! loaded from a snapshot.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request as inc;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use riffle_metadata::controller::op_type;
use riffle_metadata::records::{NoOpRecord, NO_LEADER_CHANGE};
use riffle_metadata::*;
use uuid::Uuid;

/// The broker whose actions the model in the proptest follows.
const NODE: i32 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn controller() -> Controller {
    Controller::new(ControllerConfig::default())
}

fn broker(id: i32, incarnation: u128, fenced: bool) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation_id: Uuid::from_u128(incarnation),
        epoch: 0,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: format!("host-{id}"),
            port: 9092,
            security_protocol: 0,
        }],
        rack: None,
        fenced,
    }
}

fn topic(name: &str, id: u128) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id: Uuid::from_u128(id),
    })
}

fn partition(id: u128, p: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: p,
        topic_id: Uuid::from_u128(id),
        isr: replicas.clone(),
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![Uuid::nil(); replicas.len()],
        replicas,
        ..PartitionRecord::default()
    })
}

fn remove(id: u128) -> MetadataRecord {
    MetadataRecord::RemoveTopic(RemoveTopicRecord {
        topic_id: Uuid::from_u128(id),
    })
}

fn config(rtype: i8, rname: &str, k: &str, v: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: rtype,
        resource_name: rname.to_string(),
        name: k.to_string(),
        value: v.map(str::to_string),
    })
}

fn feature(name: &str, level: i16) -> MetadataRecord {
    MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: name.to_string(),
        feature_level: level,
    })
}

/// Applies `records` at the offsets after `image`'s.
fn commit(image: &MetadataImage, records: Vec<MetadataRecord>) -> (MetadataImage, MetadataDelta) {
    image
        .apply(&at(image.offset() + 1, records))
        .expect("apply")
}

fn at(first: i64, records: Vec<MetadataRecord>) -> Vec<(i64, MetadataRecord)> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (first + i as i64, r))
        .collect()
}

/// Writes `image` as a snapshot, through the on-disk record encoding, and
/// loads it back.
fn reload(image: &MetadataImage) -> MetadataImage {
    let bytes = encode_batch(&image.to_snapshot_records(), 0);
    let records: Vec<MetadataRecord> = decode_batches(&bytes)
        .expect("decode snapshot")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    MetadataImage::from_snapshot(image.offset() + 1, &records).expect("load snapshot")
}

/// Kafka's `MetadataImage.write` order: features, cluster, topics, configs.
fn section(r: &MetadataRecord) -> u8 {
    match r {
        MetadataRecord::FeatureLevel(_) => 0,
        MetadataRecord::RegisterBroker(_) => 1,
        MetadataRecord::Topic(_) | MetadataRecord::Partition(_) => 2,
        MetadataRecord::Config(_) => 3,
        other => panic!("a snapshot holds no {other:?}"),
    }
}

/// The snapshot order rules: sections in Kafka's order, `metadata.version`
/// first, every partition right after its topic's TopicRecord or a sibling,
/// every config with a value.
fn check_snapshot_order(image: &MetadataImage, records: &[MetadataRecord]) {
    let sections: Vec<u8> = records.iter().map(section).collect();
    assert!(sections.windows(2).all(|w| w[0] <= w[1]), "{sections:?}");
    if image.feature_level("metadata.version").is_some() {
        assert!(
            matches!(&records[0], MetadataRecord::FeatureLevel(f) if f.name == "metadata.version"),
            "{:?}",
            records[0]
        );
    }
    let mut current_topic = None;
    for r in records {
        match r {
            MetadataRecord::Topic(t) => current_topic = Some(t.topic_id),
            MetadataRecord::Partition(p) => assert_eq!(Some(p.topic_id), current_topic),
            MetadataRecord::Config(c) => assert!(c.value.is_some(), "{c:?}"),
            _ => {}
        }
    }
}

#[test]
fn snapshot_writes_features_first_then_brokers_topics_and_configs() {
    let (image, _) = commit(
        &MetadataImage::empty(),
        vec![
            feature("kraft.version", 1),
            MetadataRecord::RegisterBroker(broker(2, 20, true).to_record()),
            config(CONFIG_RESOURCE_TOPIC, "b", "retention.ms", Some("5")),
            topic("b", 2),
            partition(2, 1, vec![2]),
            partition(2, 0, vec![1]),
            topic("a", 1),
            partition(1, 0, vec![1]),
            feature("metadata.version", 21),
            MetadataRecord::RegisterBroker(broker(1, 10, false).to_record()),
            config(CONFIG_RESOURCE_BROKER, "", "log.retention.ms", Some("7")),
        ],
    );
    let records = image.to_snapshot_records();
    let expected = vec![
        feature("metadata.version", 21),
        feature("kraft.version", 1),
        MetadataRecord::RegisterBroker(broker(1, 10, false).to_record()),
        MetadataRecord::RegisterBroker(broker(2, 20, true).to_record()),
        topic("a", 1),
        partition(1, 0, vec![1]),
        topic("b", 2),
        partition(2, 0, vec![1]),
        partition(2, 1, vec![2]),
        config(CONFIG_RESOURCE_TOPIC, "b", "retention.ms", Some("5")),
        config(CONFIG_RESOURCE_BROKER, "", "log.retention.ms", Some("7")),
    ];
    assert_eq!(records, expected);
    check_snapshot_order(&image, &records);
}

#[test]
fn the_empty_image_is_the_empty_snapshot() {
    assert!(MetadataImage::empty().to_snapshot_records().is_empty());
    assert_eq!(
        MetadataImage::from_snapshot(0, &[]).expect("load"),
        MetadataImage::empty()
    );
}

#[test]
fn a_loaded_snapshot_ends_before_its_end_offset_and_the_log_resumes_there() {
    let c = controller();
    let (image, _) = commit(
        &MetadataImage::empty(),
        c.bootstrap_records(broker(1, 10, false)),
    );
    let (image, _) = commit(
        &image,
        c.create_topics(
            &image,
            &CreateTopicsRequest::default().with_topics(vec![creatable("a", 2)]),
            7,
        )
        .records,
    );
    // The snapshot file of this image is named after the first offset it
    // does not contain.
    let end_offset = image.offset() + 1;
    let loaded =
        MetadataImage::from_snapshot(end_offset, &image.to_snapshot_records()).expect("load");
    assert_eq!(loaded.offset(), end_offset - 1);
    assert_eq!(loaded, image);

    // The next committed record is at the end offset; an earlier one is
    // already in the snapshot.
    let next = config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("9"));
    assert!(loaded.apply(&[(end_offset - 1, next.clone())]).is_err());
    let (after, delta) = loaded.apply(&[(end_offset, next)]).expect("resume");
    assert_eq!(after.offset(), end_offset);
    assert_eq!(delta.topic_config_changes, vec!["a".to_string()]);
}

#[test]
fn a_snapshot_with_a_negative_end_offset_or_a_contradiction_is_an_error() {
    assert!(matches!(
        MetadataImage::from_snapshot(-1, &[]),
        Err(MetadataError::Inconsistent { offset: -1, .. })
    ));
    // The second record is a partition of a topic the snapshot never
    // created: the error names its index in the snapshot.
    let records = vec![topic("a", 1), partition(2, 0, vec![1])];
    assert!(matches!(
        MetadataImage::from_snapshot(10, &records),
        Err(MetadataError::Inconsistent { offset: 1, .. })
    ));
}

#[test]
fn delta_to_the_same_image_is_empty() {
    let (image, _) = commit(
        &MetadataImage::empty(),
        vec![
            topic("a", 1),
            partition(1, 0, vec![1]),
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("5")),
            config(CONFIG_RESOURCE_BROKER, "", "log.retention.ms", Some("7")),
        ],
    );
    assert!(image.delta_to(&image).is_empty());
    assert!(image.delta_to(&reload(&image)).is_empty());
}

#[test]
fn delta_to_a_snapshot_with_a_recreated_topic_deletes_the_old_id_and_creates_the_new() {
    let (old, _) = commit(
        &MetadataImage::empty(),
        vec![
            topic("a", 1),
            partition(1, 0, vec![1]),
            partition(1, 1, vec![1]),
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("5")),
            topic("b", 3),
            partition(3, 0, vec![1]),
        ],
    );
    // Between the two images "a" was deleted and created again with one
    // partition, "b" was deleted and "c" came and went.
    let (new, _) = commit(
        &old,
        vec![
            remove(1),
            remove(3),
            topic("c", 4),
            partition(4, 0, vec![1]),
            remove(4),
            topic("a", 2),
            partition(2, 0, vec![1]),
        ],
    );
    let new = reload(&new);
    let delta = old.delta_to(&new);
    assert_eq!(
        delta.deleted_topics,
        vec![
            ("a".to_string(), Uuid::from_u128(1), vec![0, 1]),
            ("b".to_string(), Uuid::from_u128(3), vec![0]),
        ]
    );
    assert_eq!(
        delta.created_partitions,
        vec![("a".to_string(), Uuid::from_u128(2), 0)]
    );
    assert!(delta.changed_partitions.is_empty());
    // The old incarnation's configs went with it.
    assert_eq!(delta.topic_config_changes, vec!["a".to_string()]);
    assert!(!delta.broker_config_changed);
}

#[test]
fn delta_to_reports_only_partitions_and_configs_that_differ() {
    let (old, _) = commit(
        &MetadataImage::empty(),
        vec![
            topic("a", 1),
            partition(1, 0, vec![1]),
            partition(1, 1, vec![1]),
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("5")),
            config(CONFIG_RESOURCE_TOPIC, "a", "segment.ms", Some("6")),
        ],
    );
    let (new, _) = commit(
        &old,
        vec![
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: Uuid::from_u128(1),
                partition_id: 1,
                leader: 2,
                ..PartitionChangeRecord::default()
            }),
            partition(1, 2, vec![1]),
            // Set to another value and back: no net change.
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("8")),
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("5")),
            config(CONFIG_RESOURCE_BROKER, "1", "log.retention.ms", Some("1")),
        ],
    );
    let delta = old.delta_to(&reload(&new));
    assert!(delta.deleted_topics.is_empty());
    assert_eq!(
        delta.created_partitions,
        vec![("a".to_string(), Uuid::from_u128(1), 2)]
    );
    assert_eq!(delta.changed_partitions, vec![("a".to_string(), 1)]);
    assert!(delta.topic_config_changes.is_empty());
    assert!(delta.broker_config_changed);
}

#[test]
fn a_fenced_re_registered_broker_survives_a_snapshot() {
    let c = controller();
    let (image, _) = commit(
        &MetadataImage::empty(),
        c.bootstrap_records(broker(1, 10, false)),
    );
    let mut restarted = broker(1, 11, false);
    restarted.rack = Some("r1".into());
    let (image, _) = commit(&image, c.register_broker(&image, restarted));
    let mut fenced = image.broker(1).expect("registered").to_record();
    fenced.fenced = true;
    fenced.broker_epoch += 1;
    let (image, _) = commit(&image, vec![MetadataRecord::RegisterBroker(fenced)]);
    let loaded = reload(&image);
    let b = loaded.broker(1).expect("broker 1");
    assert!(b.fenced);
    assert_eq!(b.epoch, 2);
    assert_eq!(b.incarnation_id, Uuid::from_u128(11));
    assert_eq!(b.rack.as_deref(), Some("r1"));
    assert_eq!(loaded, image);
}

// ---------------------------------------------------------------------------
// The proptest: random histories through the controller and raw records.

fn creatable(name: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

const TOPICS: &[&str] = &["a", "b", "c", "d"];
const TOPIC_KEYS: &[&str] = &["retention.ms", "segment.ms", "cleanup.policy"];
const BROKER_KEYS: &[&str] = &["log.retention.ms", "log.cleaner.threads"];
const FEATURES: &[&str] = &["metadata.version", "kraft.version", "group.version"];

/// One step of a history: an admin request through the controller, or a
/// record the controller does not write yet (fencing, unregistration,
/// partition changes, features, other config resources). `topic` names a
/// topic of `TOPICS` to create, and the `topic`-th existing topic (counting
/// round) otherwise.
#[derive(Debug, Clone)]
enum Op {
    CreateTopic {
        topic: usize,
        partitions: i32,
        retention_ms: Option<u16>,
    },
    CreatePartitions {
        topic: usize,
        more: i32,
    },
    DeleteTopic {
        topic: usize,
    },
    /// Delete and create again in one apply.
    RecreateTopic {
        topic: usize,
        partitions: i32,
    },
    TopicConfig {
        topic: usize,
        key: usize,
        value: Option<u16>,
    },
    /// `broker: None` is the cluster-wide default.
    BrokerConfig {
        broker: Option<i32>,
        key: usize,
        value: Option<u16>,
    },
    /// A resource type the broker does not act on (BROKER_LOGGER 8,
    /// CLIENT_METRICS 16).
    OtherConfig {
        resource_type: i8,
        name: usize,
        value: Option<u16>,
    },
    RegisterBroker {
        id: i32,
        incarnation: u8,
        port: u16,
        rack: Option<u8>,
        fenced: bool,
    },
    UnregisterBroker {
        id: i32,
    },
    Feature {
        name: usize,
        level: i16,
    },
    PartitionChange {
        topic: usize,
        partition: usize,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
    },
    NoOpRecord,
}

fn op() -> impl Strategy<Value = Op> {
    use proptest::option::of;
    let topic = 0..TOPICS.len();
    let value = of(0u16..4);
    let brokers = proptest::collection::vec(1i32..5, 0..4);
    let create = (topic.clone(), 1i32..4, value.clone());
    let more = (topic.clone(), 1i32..3);
    let recreate = (topic.clone(), 1i32..3);
    let topic_config = (topic.clone(), 0..TOPIC_KEYS.len(), value.clone());
    let broker_config = (of(1i32..4), 0..BROKER_KEYS.len(), value.clone());
    let other_config = (prop_oneof![Just(8i8), Just(16i8)], 0usize..2, value);
    let register = (1i32..4, 0u8..3, 9092u16..9094, of(0u8..2), any::<bool>());
    let feature = (0..FEATURES.len(), 0i16..3);
    let change = (
        topic.clone(),
        0usize..4,
        of(-1i32..4),
        of(brokers.clone()),
        of(brokers),
    );
    prop_oneof![
        4 => create.prop_map(|(topic, partitions, retention_ms)| Op::CreateTopic {
            topic,
            partitions,
            retention_ms,
        }),
        2 => more.prop_map(|(topic, more)| Op::CreatePartitions { topic, more }),
        2 => topic.prop_map(|topic| Op::DeleteTopic { topic }),
        2 => recreate.prop_map(|(topic, partitions)| Op::RecreateTopic { topic, partitions }),
        3 => topic_config.prop_map(|(topic, key, value)| Op::TopicConfig { topic, key, value }),
        2 => broker_config.prop_map(|(broker, key, value)| Op::BrokerConfig {
            broker,
            key,
            value,
        }),
        1 => other_config.prop_map(|(resource_type, name, value)| Op::OtherConfig {
            resource_type,
            name,
            value,
        }),
        2 => register.prop_map(|(id, incarnation, port, rack, fenced)| Op::RegisterBroker {
            id,
            incarnation,
            port,
            rack,
            fenced,
        }),
        1 => (2i32..4).prop_map(|id| Op::UnregisterBroker { id }),
        1 => feature.prop_map(|(name, level)| Op::Feature { name, level }),
        3 => change.prop_map(|(topic, partition, leader, isr, replicas)| Op::PartitionChange {
            topic,
            partition,
            leader,
            isr,
            replicas,
        }),
        1 => Just(Op::NoOpRecord),
    ]
}

fn history_ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..40)
}

fn accept_any_broker_config(_: &str, _: &str) -> Result<(), String> {
    Ok(())
}

fn alter_config(
    image: &MetadataImage,
    rtype: i8,
    rname: &str,
    key: &str,
    value: Option<String>,
) -> Vec<MetadataRecord> {
    let (op, value) = match value {
        Some(v) => (op_type::SET, Some(s(&v))),
        None => (op_type::DELETE, None),
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        inc::AlterConfigsResource::default()
            .with_resource_type(rtype)
            .with_resource_name(s(rname))
            .with_configs(vec![inc::AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(op)
                .with_value(value)]),
    ]);
    controller()
        .incremental_alter_configs(image, &req, 1, &accept_any_broker_config)
        .records
}

fn create_topic(
    image: &MetadataImage,
    name: &str,
    partitions: i32,
    retention_ms: Option<u16>,
) -> Vec<MetadataRecord> {
    let mut t = creatable(name, partitions);
    if let Some(ms) = retention_ms {
        t.configs = vec![CreatableTopicConfig::default()
            .with_name(s("retention.ms"))
            .with_value(Some(s(&ms.to_string())))];
    }
    controller()
        .create_topics(
            image,
            &CreateTopicsRequest::default().with_topics(vec![t]),
            7,
        )
        .records
}

fn delete_topic(image: &MetadataImage, name: &str) -> Vec<MetadataRecord> {
    let req = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(TopicName(s(name))))
    ]);
    controller().delete_topics(image, &req, 6).records
}

/// The `i`-th existing topic, counting round: ops that act on a topic act
/// on one that exists.
fn existing_topic(image: &MetadataImage, i: usize) -> Option<&TopicImage> {
    match image.topics().count() {
        0 => None,
        n => image.topics().nth(i % n),
    }
}

/// The records one op commits against `image` (possibly none).
fn records_of(image: &MetadataImage, op: &Op) -> Vec<MetadataRecord> {
    match op {
        Op::CreateTopic {
            topic,
            partitions,
            retention_ms,
        } => create_topic(image, TOPICS[*topic], *partitions, *retention_ms),
        Op::CreatePartitions { topic, more } => {
            let Some(t) = existing_topic(image, *topic) else {
                return Vec::new();
            };
            let req = CreatePartitionsRequest::default().with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(s(&t.name)))
                    .with_count(t.partitions.len() as i32 + more)
                    .with_assignments(None),
            ]);
            controller().create_partitions(image, &req, 3).records
        }
        Op::DeleteTopic { topic } => match existing_topic(image, *topic) {
            Some(t) => delete_topic(image, &t.name),
            None => Vec::new(),
        },
        Op::RecreateTopic { topic, partitions } => {
            let Some(name) = existing_topic(image, *topic).map(|t| t.name.clone()) else {
                return Vec::new();
            };
            let mut records = delete_topic(image, &name);
            if records.is_empty() {
                return records;
            }
            let (without, _) = commit(image, records.clone());
            records.extend(create_topic(&without, &name, *partitions, None));
            records
        }
        Op::TopicConfig { topic, key, value } => {
            let key = TOPIC_KEYS[*key];
            let value = value.map(|v| {
                if key == "cleanup.policy" {
                    ["delete", "compact", "compact,delete", "delete"][v as usize].to_string()
                } else {
                    (1000 + u32::from(v)).to_string()
                }
            });
            match existing_topic(image, *topic) {
                Some(t) => alter_config(image, CONFIG_RESOURCE_TOPIC, &t.name, key, value),
                None => Vec::new(),
            }
        }
        Op::BrokerConfig { broker, key, value } => {
            let name = broker.map(|b| b.to_string()).unwrap_or_default();
            alter_config(
                image,
                CONFIG_RESOURCE_BROKER,
                &name,
                BROKER_KEYS[*key],
                value.map(|v| v.to_string()),
            )
        }
        Op::OtherConfig {
            resource_type,
            name,
            value,
        } => vec![config(
            *resource_type,
            ["x", "y"][*name],
            "level",
            value.map(|v| v.to_string()).as_deref(),
        )],
        Op::RegisterBroker {
            id,
            incarnation,
            port,
            rack,
            fenced,
        } => {
            let mut b = broker(*id, u128::from(*incarnation) + 100, *fenced);
            b.endpoints[0].port = *port;
            b.rack = rack.map(|r| format!("rack-{r}"));
            if *fenced {
                // The controller does not fence brokers yet: write what
                // Kafka's would, the registration fenced at the next epoch.
                b.epoch = image.broker(*id).map(|e| e.epoch + 1).unwrap_or(0);
                vec![MetadataRecord::RegisterBroker(b.to_record())]
            } else {
                controller().register_broker(image, b)
            }
        }
        Op::UnregisterBroker { id } => match image.broker(*id) {
            Some(b) => vec![MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: *id,
                broker_epoch: b.epoch,
            })],
            None => Vec::new(),
        },
        Op::Feature { name, level } => vec![feature(FEATURES[*name], *level)],
        Op::PartitionChange {
            topic,
            partition,
            leader,
            isr,
            replicas,
        } => {
            let Some(t) = existing_topic(image, *topic) else {
                return Vec::new();
            };
            let Some(partition_id) = t
                .partitions
                .keys()
                .nth(partition % t.partitions.len().max(1))
            else {
                return Vec::new();
            };
            vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: t.id,
                partition_id: *partition_id,
                leader: leader.unwrap_or(NO_LEADER_CHANGE),
                isr: isr.clone(),
                replicas: replicas.clone(),
                ..PartitionChangeRecord::default()
            })]
        }
        Op::NoOpRecord => vec![MetadataRecord::NoOp(NoOpRecord)],
    }
}

/// A history: `images[0]` is empty, `images[k + 1]` is `images[k]` after the
/// committed `chunks[k]`, which `apply` reported as `deltas[k]`.
struct History {
    images: Vec<MetadataImage>,
    chunks: Vec<Vec<(i64, MetadataRecord)>>,
    deltas: Vec<MetadataDelta>,
}

fn history(ops: &[Op]) -> History {
    let mut h = History {
        images: vec![MetadataImage::empty()],
        chunks: Vec::new(),
        deltas: Vec::new(),
    };
    let bootstrap = controller().bootstrap_records(broker(NODE, 100, false));
    let steps = std::iter::once(None).chain(ops.iter().map(Some));
    for step in steps {
        let image = h.images.last().expect("at least the empty image").clone();
        let records = match step {
            None => bootstrap.clone(),
            Some(op) => records_of(&image, op),
        };
        if records.is_empty() {
            continue;
        }
        let chunk = at(image.offset() + 1, records);
        let (next, delta) = image
            .apply(&chunk)
            .expect("a controller-made history applies");
        h.images.push(next);
        h.chunks.push(chunk);
        h.deltas.push(delta);
    }
    h
}

/// The configs a hosted log runs with: the topic's own, the cluster
/// default and this broker's.
type LogConfigs = [BTreeMap<String, String>; 3];

fn log_configs(image: &MetadataImage, topic: &str) -> LogConfigs {
    [
        image.topic_config(topic),
        image.broker_config(None),
        image.broker_config(Some(NODE)),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct HostedLog {
    topic_id: Uuid,
    leader: i32,
    leader_epoch: i32,
    configs: LogConfigs,
}

/// What `apply_delta` (crates/broker/src/replica.rs) does with a delta, on
/// the logs of broker `NODE`: delete the logs of deleted
/// topics (only of the deleted id), create or update the hosted new and
/// changed partitions this broker is a replica of, and reconfigure logs
/// whose topic or broker configs changed.
#[derive(Debug, Clone, Default, PartialEq)]
struct BrokerModel {
    logs: BTreeMap<(String, i32), HostedLog>,
}

impl BrokerModel {
    /// The logs of the partitions `image` makes this broker a replica of.
    /// `apply_delta` keeps the log of a partition moved off this broker
    /// (Kafka would stop and delete the replica), so a broker that replayed
    /// the log can hold stale logs that one loading a snapshot never made;
    /// only these logs must agree.
    fn replica_logs(&self, image: &MetadataImage) -> BTreeMap<(String, i32), HostedLog> {
        self.logs
            .iter()
            .filter(|((topic, p), log)| {
                image.topic(topic).is_some_and(|t| {
                    t.id == log.topic_id
                        && t.partitions
                            .get(p)
                            .is_some_and(|part| part.replicas.contains(&NODE))
                })
            })
            .map(|(k, log)| (k.clone(), log.clone()))
            .collect()
    }

    fn act(&mut self, image: &MetadataImage, delta: &MetadataDelta) {
        for (topic, id, partitions) in &delta.deleted_topics {
            for p in partitions {
                let key = (topic.clone(), *p);
                if self.logs.get(&key).is_some_and(|l| l.topic_id == *id) {
                    self.logs.remove(&key);
                }
            }
        }
        let touched = delta
            .created_partitions
            .iter()
            .map(|(t, _, p)| (t.clone(), *p))
            .chain(delta.changed_partitions.iter().cloned());
        for (topic, p) in touched {
            let Some(t) = image.topic(&topic) else {
                continue;
            };
            let Some(part) = t.partitions.get(&p) else {
                continue;
            };
            if !part.replicas.contains(&NODE) {
                continue;
            }
            let configs = match self.logs.get(&(topic.clone(), p)) {
                Some(existing) => existing.configs.clone(),
                None => log_configs(image, &topic),
            };
            self.logs.insert(
                (topic, p),
                HostedLog {
                    topic_id: t.id,
                    leader: part.leader,
                    leader_epoch: part.leader_epoch,
                    configs,
                },
            );
        }
        for ((topic, _), log) in self.logs.iter_mut() {
            if delta.broker_config_changed || delta.topic_config_changes.contains(topic) {
                log.configs = log_configs(image, topic);
            }
        }
    }
}

/// The broker config resources the histories use.
fn broker_configs(image: &MetadataImage) -> Vec<BTreeMap<String, String>> {
    std::iter::once(None)
        .chain((1..5).map(Some))
        .map(|b| image.broker_config(b))
        .collect()
}

/// `delta_to(a, b)` against the deltas `apply` reported from `a` to `b`:
/// the same deletions of topics that `a` knew, the same creations of
/// partitions that `b` still has, and the changes (partitions, configs) that
/// `apply` reported and that left a net difference.
fn check_delta_against_apply(
    a: &MetadataImage,
    b: &MetadataImage,
    applied: &[MetadataDelta],
) -> Result<(), TestCaseError> {
    let d = a.delta_to(b);
    let same_topic = |name: &str| match (a.topic(name), b.topic(name)) {
        (Some(x), Some(y)) => x.id == y.id,
        _ => false,
    };

    let deleted: BTreeSet<(String, Uuid)> = d
        .deleted_topics
        .iter()
        .map(|(n, id, _)| (n.clone(), *id))
        .collect();
    prop_assert_eq!(
        deleted.len(),
        d.deleted_topics.len(),
        "no topic deleted twice"
    );
    let expected: BTreeSet<(String, Uuid)> = applied
        .iter()
        .flat_map(|u| &u.deleted_topics)
        .filter(|(n, id, _)| a.topic(n).is_some_and(|t| t.id == *id))
        .map(|(n, id, _)| (n.clone(), *id))
        .collect();
    prop_assert_eq!(&deleted, &expected, "deleted topics");
    for (n, id, partitions) in &d.deleted_topics {
        let t = a
            .topic_by_id(*id)
            .expect("deleted topic is in the older image");
        prop_assert_eq!(&t.name, n);
        prop_assert!(partitions.iter().copied().eq(t.partitions.keys().copied()));
    }

    let created: BTreeSet<(String, Uuid, i32)> = d.created_partitions.iter().cloned().collect();
    prop_assert_eq!(
        created.len(),
        d.created_partitions.len(),
        "no partition created twice"
    );
    let expected: BTreeSet<(String, Uuid, i32)> = applied
        .iter()
        .flat_map(|u| &u.created_partitions)
        .filter(|(n, id, p)| {
            b.topic(n)
                .is_some_and(|t| t.id == *id && t.partitions.contains_key(p))
        })
        .cloned()
        .collect();
    prop_assert_eq!(&created, &expected, "created partitions");

    let changed: BTreeSet<(String, i32)> = d.changed_partitions.iter().cloned().collect();
    prop_assert_eq!(
        changed.len(),
        d.changed_partitions.len(),
        "no partition changed twice"
    );
    let expected: BTreeSet<(String, i32)> = applied
        .iter()
        .flat_map(|u| &u.changed_partitions)
        .filter(|(n, p)| {
            let before = a.topic(n).and_then(|t| t.partitions.get(p));
            same_topic(n)
                && before.is_some()
                && before != b.topic(n).and_then(|t| t.partitions.get(p))
        })
        .cloned()
        .collect();
    prop_assert_eq!(&changed, &expected, "changed partitions");

    let configs: BTreeSet<String> = d.topic_config_changes.iter().cloned().collect();
    prop_assert_eq!(
        configs.len(),
        d.topic_config_changes.len(),
        "each topic named once"
    );
    let expected: BTreeSet<String> = applied
        .iter()
        .flat_map(|u| &u.topic_config_changes)
        .filter(|n| a.topic_config(n) != b.topic_config(n))
        .cloned()
        .collect();
    prop_assert_eq!(&configs, &expected, "topic config changes");

    let broker_changed = broker_configs(a) != broker_configs(b);
    prop_assert_eq!(
        d.broker_config_changed,
        broker_changed,
        "broker config changed"
    );
    prop_assert!(!broker_changed || applied.iter().any(|u| u.broker_config_changed));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every image of a random history survives a snapshot, through the
    /// on-disk encoding, in Kafka's order; and the log resumes after the
    /// snapshot's end offset to the same next image.
    #[test]
    fn every_image_survives_its_snapshot(ops in history_ops()) {
        let h = history(&ops);
        for (k, image) in h.images.iter().enumerate() {
            let records = image.to_snapshot_records();
            check_snapshot_order(image, &records);
            let loaded = reload(image);
            prop_assert_eq!(&loaded, image);
            if let Some(chunk) = h.chunks.get(k) {
                let (next, _) = loaded.apply(chunk).expect("the log resumes at the end offset");
                prop_assert_eq!(&next, &h.images[k + 1]);
            }
        }
    }

    /// KIP-630: a broker that loads a snapshot instead of replaying the log
    /// must end up acting as if it had replayed it. `delta_to` matches the
    /// deltas `apply` reported in between, and acting on it leaves the
    /// broker's logs (which exist, their topic id, leader and configs) as
    /// acting on each of those deltas does.
    #[test]
    fn a_snapshot_delta_drives_the_same_actions_as_the_log(ops in history_ops()) {
        let h = history(&ops);
        let loaded_images: Vec<MetadataImage> = h.images.iter().map(reload).collect();
        let mut before = BrokerModel::default();
        for (i, a) in h.images.iter().enumerate() {
            let mut replayed = before.clone();
            prop_assert!(a.delta_to(a).is_empty());
            let later = h.images.iter().zip(&loaded_images).enumerate().skip(i + 1);
            for (j, (b, loaded_b)) in later {
                replayed.act(b, &h.deltas[j - 1]);
                check_delta_against_apply(a, b, &h.deltas[i..j])?;
                let mut loaded = before.clone();
                loaded.act(loaded_b, &a.delta_to(loaded_b));
                prop_assert!(
                    loaded.logs.keys().all(|k| replayed.logs.contains_key(k)),
                    "from image {} to image {}: the snapshot made logs the log did not", i, j
                );
                prop_assert_eq!(
                    loaded.replica_logs(b),
                    replayed.replica_logs(b),
                    "from image {} to image {}", i, j
                );
            }
            if let Some(delta) = h.deltas.get(i) {
                before.act(&h.images[i + 1], delta);
            }
        }
    }
}
