//! Replaying metadata records into the image.

use proptest::prelude::*;
use riffle_metadata::*;
use uuid::Uuid;

fn topic(name: &str, id: u128) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id: Uuid::from_u128(id),
    })
}

fn partition(id: u128, p: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: p,
        topic_id: Uuid::from_u128(id),
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![Uuid::nil()],
        ..PartitionRecord::default()
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

fn at(records: Vec<MetadataRecord>) -> Vec<(i64, MetadataRecord)> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as i64, r))
        .collect()
}

#[test]
fn replay_builds_topics_brokers_configs_and_features() {
    let broker = BrokerRegistration {
        id: 1,
        incarnation_id: Uuid::from_u128(9),
        epoch: 0,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: 0,
        }],
        rack: None,
        fenced: false,
    };
    let records = at(vec![
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 21,
        }),
        MetadataRecord::RegisterBroker(broker.to_record()),
        topic("a", 1),
        config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("1000")),
        partition(1, 0),
        partition(1, 1),
        config(CONFIG_RESOURCE_BROKER, "", "log.retention.ms", Some("5")),
        config(
            CONFIG_RESOURCE_BROKER,
            "1",
            "log.flush.interval.ms",
            Some("7"),
        ),
    ]);
    let empty = MetadataImage::empty();
    assert_eq!(empty.offset(), -1);
    let (image, delta) = empty.apply(&records).expect("apply");
    assert_eq!(empty, MetadataImage::empty(), "apply leaves self unchanged");
    assert_eq!(image.offset(), 7);
    assert_eq!(image.feature_level("metadata.version"), Some(21));
    assert_eq!(image.broker(1), Some(&broker));
    let a = image.topic("a").expect("topic a");
    assert_eq!(a.partitions.len(), 2);
    assert_eq!(
        image.topic_by_id(Uuid::from_u128(1)).map(|t| &t.name),
        Some(&"a".to_string())
    );
    assert_eq!(
        image
            .topic_config("a")
            .get("retention.ms")
            .map(String::as_str),
        Some("1000")
    );
    assert_eq!(image.broker_config(None).len(), 1);
    assert_eq!(image.broker_config(Some(1)).len(), 1);
    assert_eq!(
        delta.created_partitions,
        vec![
            ("a".into(), Uuid::from_u128(1), 0),
            ("a".into(), Uuid::from_u128(1), 1)
        ]
    );
    assert_eq!(delta.topic_config_changes, vec!["a".to_string()]);
    assert!(delta.broker_config_changed);
}

#[test]
fn delete_then_recreate_gets_the_new_id_and_drops_configs() {
    let (image, _) = MetadataImage::empty()
        .apply(&at(vec![
            topic("a", 1),
            config(CONFIG_RESOURCE_TOPIC, "a", "retention.ms", Some("1000")),
            partition(1, 0),
        ]))
        .expect("apply");
    let (image, delta) = image
        .apply(&[
            (
                3,
                MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: Uuid::from_u128(1),
                }),
            ),
            (4, topic("a", 2)),
            (5, partition(2, 0)),
        ])
        .expect("apply");
    assert_eq!(image.topic("a").map(|t| t.id), Some(Uuid::from_u128(2)));
    assert!(image.topic_by_id(Uuid::from_u128(1)).is_none());
    assert!(image.topic_config("a").is_empty());
    assert_eq!(
        delta.deleted_topics,
        vec![("a".into(), Uuid::from_u128(1), vec![0])]
    );
    assert_eq!(
        delta.created_partitions,
        vec![("a".into(), Uuid::from_u128(2), 0)]
    );
}

#[test]
fn partition_change_bumps_epochs_as_kafka() {
    let (image, _) = MetadataImage::empty()
        .apply(&at(vec![topic("a", 1), partition(1, 0)]))
        .expect("apply");
    let (image, delta) = image
        .apply(&[
            (
                2,
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: Uuid::from_u128(1),
                    partition_id: 0,
                    isr: Some(vec![]),
                    ..PartitionChangeRecord::default()
                }),
            ),
            (
                3,
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: Uuid::from_u128(1),
                    partition_id: 0,
                    leader: -1,
                    ..PartitionChangeRecord::default()
                }),
            ),
        ])
        .expect("apply");
    let p = &image.topic("a").expect("a").partitions[&0];
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (-1, 1, 2));
    assert!(p.isr.is_empty());
    assert_eq!(delta.changed_partitions, vec![("a".to_string(), 0)]);
}

#[test]
fn inconsistent_records_are_errors_naming_them() {
    let empty = MetadataImage::empty();
    let e = empty
        .apply(&at(vec![partition(1, 0)]))
        .expect_err("unknown topic");
    assert!(e.to_string().contains("unknown topic"), "{e}");
    let e = empty
        .apply(&at(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: Uuid::from_u128(5),
        })]))
        .expect_err("remove unknown");
    assert!(e.to_string().contains("removing unknown topic"), "{e}");
    assert!(empty
        .apply(&at(vec![topic("a", 1), topic("a", 2)]))
        .is_err());
    assert!(empty
        .apply(&at(vec![topic("a", 1), topic("b", 1)]))
        .is_err());
    // Offsets must move forward.
    assert!(empty
        .apply(&[(3, topic("a", 1)), (3, topic("b", 2))])
        .is_err());
}

fn script() -> impl Strategy<Value = Vec<MetadataRecord>> {
    // A valid history: topics 0..4 created, configured, some deleted and
    // recreated, driven by a list of small ops.
    proptest::collection::vec((0u8..4, 0u8..5), 0..40).prop_map(|ops| {
        let mut out = Vec::new();
        let mut live: [Option<u128>; 4] = [None; 4];
        let mut next_id = 1u128;
        for (t, op) in ops {
            let name = format!("t{t}");
            match (op, live[t as usize]) {
                (0, None) | (1, None) => {
                    live[t as usize] = Some(next_id);
                    out.push(topic(&name, next_id));
                    out.push(partition(next_id, 0));
                    next_id += 1;
                }
                (1, Some(id)) => {
                    out.push(MetadataRecord::RemoveTopic(RemoveTopicRecord {
                        topic_id: Uuid::from_u128(id),
                    }));
                    live[t as usize] = None;
                }
                (2, Some(id)) => out.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: Uuid::from_u128(id),
                    partition_id: 0,
                    leader: 1,
                    ..PartitionChangeRecord::default()
                })),
                (3, _) => out.push(config(
                    CONFIG_RESOURCE_TOPIC,
                    &name,
                    "retention.ms",
                    Some("5"),
                )),
                (4, _) => out.push(config(CONFIG_RESOURCE_BROKER, "", "x", None)),
                _ => out.push(MetadataRecord::NoOp(records::NoOpRecord)),
            }
        }
        out
    })
}

proptest! {
    #[test]
    fn applying_in_chunks_equals_applying_at_once(records in script(), cuts in proptest::collection::vec(any::<usize>(), 0..5)) {
        let records = at(records);
        let (whole, _) = MetadataImage::empty().apply(&records).expect("apply whole");
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (records.len() + 1)).collect();
        cuts.push(records.len());
        cuts.sort_unstable();
        let mut image = MetadataImage::empty();
        let mut start = 0;
        for cut in cuts {
            let (next, _) = image.apply(&records[start..cut]).expect("apply chunk");
            image = next;
            start = cut;
        }
        prop_assert_eq!(image, whole);
    }
}
