//! Controller rules, checked against Kafka 3.9's ReplicationControlManager,
//! ConfigurationControlManager and ControllerApis.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request as inc;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use riffle_metadata::*;
use uuid::Uuid;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn broker(id: i32, fenced: bool) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation_id: Uuid::from_u128(id as u128 + 100),
        epoch: 0,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: 0,
        }],
        rack: None,
        fenced,
    }
}

fn controller() -> Controller {
    Controller::new(ControllerConfig::default())
}

fn commit(image: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
    let start = image.offset() + 1;
    let with_offsets: Vec<(i64, MetadataRecord)> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (start + i as i64, r))
        .collect();
    image.apply(&with_offsets).expect("apply").0
}

fn one_node() -> MetadataImage {
    commit(
        &MetadataImage::empty(),
        controller().bootstrap_records(broker(1, false)),
    )
}

fn creatable(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

fn create_req(topics: Vec<CreatableTopic>) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_topics(topics)
}

fn encodes_at_all_versions<T: Encodable>(value: &T, min: i16, max: i16) {
    for v in min..=max {
        let mut buf = bytes::BytesMut::new();
        value
            .encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("encode at v{v}: {e}"));
    }
}

fn codes(resp: &CreateTopicsResponse) -> Vec<(String, i16)> {
    resp.topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code))
        .collect()
}

#[test]
fn bootstrap_writes_metadata_version_and_an_unfenced_registration() {
    let image = one_node();
    assert_eq!(image.feature_level("metadata.version"), Some(21));
    assert!(!image.broker(1).expect("broker").fenced);
    let again = controller().register_broker(&image, broker(1, false));
    assert!(again.is_empty(), "same incarnation is a no-op");
    let mut restarted = broker(1, false);
    restarted.incarnation_id = Uuid::from_u128(7);
    let image = commit(&image, controller().register_broker(&image, restarted));
    assert_eq!(
        image.broker(1).map(|b| (b.epoch, b.incarnation_id)),
        Some((1, Uuid::from_u128(7)))
    );
}

#[test]
fn create_topics_succeeds_with_defaults_and_configs() {
    let image = one_node();
    let topic = creatable("orders", -1, -1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(s("retention.ms"))
        .with_value(Some(s("1000")))]);
    let res = controller().create_topics(&image, &create_req(vec![topic, creatable("b", 3, 1)]), 7);
    assert_eq!(
        codes(&res.response),
        vec![("orders".into(), 0), ("b".into(), 0)]
    );
    let r = &res.response.topics[0];
    assert_eq!((r.num_partitions, r.replication_factor), (1, 1));
    assert!(!r.topic_id.is_nil());
    assert_eq!(r.error_message, None);
    assert_eq!(r.configs.as_ref().map(Vec::len), Some(1));
    let image = commit(&image, res.records);
    assert_eq!(image.topic("orders").map(|t| t.id), Some(r.topic_id));
    assert_eq!(image.topic("b").map(|t| t.partitions.len()), Some(3));
    let p = &image.topic("b").expect("b").partitions[&2];
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
        (vec![1], vec![1], 1, 0)
    );
    assert_eq!(
        image
            .topic_config("orders")
            .get("retention.ms")
            .map(String::as_str),
        Some("1000")
    );
    encodes_at_all_versions(&res.response, 2, 7);
}

#[test]
fn create_topics_refuses_what_kafka_refuses() {
    let image = one_node();
    let image = commit(
        &image,
        controller()
            .create_topics(&image, &create_req(vec![creatable("a.b", 1, 1)]), 7)
            .records,
    );
    let long = "x".repeat(250);
    let cases: Vec<(CreatableTopic, ResponseError, &str)> = vec![
        (creatable("", 1, 1), ResponseError::InvalidTopicException, "Topic name is invalid: the empty string is not allowed"),
        (creatable(".", 1, 1), ResponseError::InvalidTopicException, "Topic name is invalid: '.' is not allowed"),
        (creatable("..", 1, 1), ResponseError::InvalidTopicException, "Topic name is invalid: '..' is not allowed"),
        (creatable(&long, 1, 1), ResponseError::InvalidTopicException, "longer than the max allowed length 249"),
        (creatable("a b", 1, 1), ResponseError::InvalidTopicException, "contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"),
        (creatable("a_b", 1, 1), ResponseError::InvalidTopicException, "collides with existing topic: a.b"),
        (creatable("a.b", 1, 1), ResponseError::TopicAlreadyExists, "Topic 'a.b' already exists."),
        (creatable("p0", 0, 1), ResponseError::InvalidPartitions, "invalid non-positive value"),
        (creatable("p2", -2, 1), ResponseError::InvalidPartitions, "invalid non-positive value"),
        (creatable("r0", 1, 0), ResponseError::InvalidReplicationFactor, "larger than 0"),
        (creatable("r3", 1, 3), ResponseError::InvalidReplicationFactor, "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are registered."),
        (
            creatable("c1", 1, 1).with_configs(vec![CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(Some(s("soon")))]),
            ResponseError::InvalidConfig,
            "retention.ms",
        ),
        (
            creatable("c2", 1, 1).with_configs(vec![CreatableTopicConfig::default().with_name(s("bogus")).with_value(Some(s("1")))]),
            ResponseError::InvalidConfig,
            "Unknown topic config name: bogus",
        ),
        (
            creatable("c3", 1, 1).with_configs(vec![CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(None)]),
            ResponseError::InvalidConfig,
            "Null value not supported for topic configs: retention.ms",
        ),
        (
            creatable("m1", 1, -1).with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1)])]),
            ResponseError::InvalidRequest,
            "numPartitions was not set to -1",
        ),
        (
            creatable("m2", -1, -1).with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(9)])]),
            ResponseError::InvalidReplicaAssignment,
            "includes broker 9, but no such broker is registered",
        ),
        (
            creatable("m3", -1, -1).with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(1).with_broker_ids(vec![BrokerId(1)])]),
            ResponseError::InvalidReplicaAssignment,
            "consecutive 0-based",
        ),
    ];
    for (topic, error, message) in cases {
        let name = topic.name.0.to_string();
        let res = controller().create_topics(&image, &create_req(vec![topic]), 7);
        assert!(res.records.is_empty(), "{name}");
        let r = &res.response.topics[0];
        assert_eq!(r.error_code, error.code(), "{name}: {:?}", r.error_message);
        let m = r
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(m.contains(message), "{name}: {m}");
        encodes_at_all_versions(&res.response, 2, 7);
    }
}

#[test]
fn manual_assignment_with_two_replicas_is_not_available_yet() {
    let image = one_node();
    let image = commit(
        &image,
        controller().register_broker(&image, broker(2, false)),
    );
    let topic = creatable("m", -1, -1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])]);
    let res = controller().create_topics(&image, &create_req(vec![topic]), 7);
    assert_eq!(
        res.response.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    // Round-robin placement over the two brokers.
    let res = controller().create_topics(&image, &create_req(vec![creatable("rr", 4, 1)]), 7);
    let image = commit(&image, res.records);
    let leaders: Vec<i32> = image
        .topic("rr")
        .expect("rr")
        .partitions
        .values()
        .map(|p| p.leader)
        .collect();
    assert_eq!(leaders, vec![1, 2, 1, 2]);
}

#[test]
fn duplicate_names_and_validate_only() {
    let image = one_node();
    let res = controller().create_topics(
        &image,
        &create_req(vec![
            creatable("d", 1, 1),
            creatable("d", 1, 1),
            creatable("ok", 1, 1),
        ]),
        7,
    );
    assert_eq!(
        codes(&res.response),
        vec![
            ("ok".into(), 0),
            ("d".into(), ResponseError::InvalidRequest.code())
        ]
    );
    let res = controller().create_topics(
        &image,
        &create_req(vec![creatable("v", 2, 1)]).with_validate_only(true),
        7,
    );
    assert!(res.records.is_empty());
    assert_eq!(res.response.topics[0].error_code, 0);
    assert_eq!(res.response.topics[0].num_partitions, 2);
}

#[test]
fn auto_create_uses_defaults_and_refuses_bad_names() {
    let image = one_node();
    let res = controller().auto_create_topic(&image, "auto");
    assert_eq!(res.response, Ok(()));
    let image = commit(&image, res.records);
    assert_eq!(image.topic("auto").map(|t| t.partitions.len()), Some(1));
    let res = controller().auto_create_topic(&image, "auto");
    assert!(res.records.is_empty());
    let res = controller().auto_create_topic(&image, "bad name");
    assert_eq!(
        res.response.map_err(|e| e.0),
        Err(ResponseError::InvalidTopicException.code())
    );
}

#[test]
fn delete_topics_by_name_and_id() {
    let image = one_node();
    let res = controller().create_topics(
        &image,
        &create_req(vec![creatable("a", 1, 1), creatable("b", 1, 1)]),
        7,
    );
    let image = commit(&image, res.records);
    let b_id = image.topic("b").expect("b").id;

    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("a")), TopicName(s("nope"))]);
    let res = controller().delete_topics(&image, &req, 5);
    assert_eq!(res.records.len(), 1);
    let errors: Vec<i16> = res
        .response
        .responses
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(
        errors,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
    encodes_at_all_versions(&res.response, 1, 6);

    let req = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_topic_id(b_id),
        DeleteTopicState::default().with_topic_id(Uuid::from_u128(42)),
        DeleteTopicState::default(),
        DeleteTopicState::default()
            .with_name(Some(TopicName(s("a"))))
            .with_topic_id(b_id),
    ]);
    let res = controller().delete_topics(&image, &req, 6);
    let mut errors: Vec<i16> = res
        .response
        .responses
        .iter()
        .map(|r| r.error_code)
        .collect();
    errors.sort_unstable();
    let mut expected = vec![
        0,
        ResponseError::UnknownTopicId.code(),
        ResponseError::InvalidRequest.code(),
        ResponseError::InvalidRequest.code(),
    ];
    expected.sort_unstable();
    assert_eq!(errors, expected);
    encodes_at_all_versions(&res.response, 1, 6);
    let image = commit(&image, res.records);
    assert!(image.topic("b").is_none());
}

#[test]
fn create_partitions_rules() {
    let image = one_node();
    let image = commit(
        &image,
        controller()
            .create_topics(&image, &create_req(vec![creatable("a", 2, 1)]), 7)
            .records,
    );
    let req = |count: i32| {
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("a")))
            .with_count(count)
            .with_assignments(None)])
    };
    let res = controller().create_partitions(&image, &req(2), 3);
    assert_eq!(
        res.response.results[0].error_message.as_deref(),
        Some("Topic already has 2 partition(s).")
    );
    let res = controller().create_partitions(&image, &req(1), 3);
    assert_eq!(
        res.response.results[0].error_message.as_deref(),
        Some("The topic a currently has 2 partition(s); 1 would not be an increase.")
    );
    let res = controller().create_partitions(&image, &req(4).with_validate_only(true), 3);
    assert!(res.records.is_empty());
    assert_eq!(res.response.results[0].error_code, 0);
    let res = controller().create_partitions(&image, &req(4), 3);
    encodes_at_all_versions(&res.response, 0, 3);
    let image = commit(&image, res.records);
    assert_eq!(image.topic("a").map(|t| t.partitions.len()), Some(4));

    let unknown =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("zz")))
            .with_count(3)
            .with_assignments(None)]);
    let res = controller().create_partitions(&image, &unknown, 3);
    assert_eq!(
        res.response.results[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    let bad =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("a")))
            .with_count(6)
            .with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
            ]))]);
    let res = controller().create_partitions(&image, &bad, 3);
    assert_eq!(
        res.response.results[0].error_code,
        ResponseError::InvalidReplicaAssignment.code()
    );
}

fn no_broker_configs(key: &str, _: &str) -> Result<(), String> {
    if key == "log.cleaner.threads" {
        Ok(())
    } else {
        Err(format!(
            "Cannot update these configs dynamically: Set({key})"
        ))
    }
}

#[test]
fn incremental_alter_configs_ops() {
    let image = one_node();
    let image = commit(
        &image,
        controller()
            .create_topics(&image, &create_req(vec![creatable("a", 1, 1)]), 7)
            .records,
    );
    let op = |name: &str, op: i8, value: Option<&str>| {
        inc::AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(op)
            .with_value(value.map(s))
    };
    let req = |rtype: i8, rname: &str, configs| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            inc::AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(rname))
                .with_configs(configs),
        ])
    };
    let c = controller();
    let res = c.incremental_alter_configs(
        &image,
        &req(
            2,
            "a",
            vec![
                op("retention.ms", 0, Some("10")),
                op("cleanup.policy", 2, Some("compact")),
            ],
        ),
        1,
        &no_broker_configs,
    );
    assert_eq!(res.response.responses[0].error_code, 0);
    encodes_at_all_versions(&res.response, 0, 1);
    let image = commit(&image, res.records);
    assert_eq!(
        image
            .topic_config("a")
            .get("cleanup.policy")
            .map(String::as_str),
        Some("delete,compact")
    );

    let res = c.incremental_alter_configs(
        &image,
        &req(2, "a", vec![op("retention.ms", 1, None)]),
        1,
        &no_broker_configs,
    );
    let image = commit(&image, res.records);
    assert!(!image.topic_config("a").contains_key("retention.ms"));

    for (r, code) in [
        (
            req(2, "a", vec![op("retention.ms", 2, Some("1"))]),
            ResponseError::InvalidConfig,
        ),
        (
            req(2, "a", vec![op("retention.ms", 9, Some("1"))]),
            ResponseError::InvalidRequest,
        ),
        (
            req(2, "a", vec![op("retention.ms", 0, Some("x"))]),
            ResponseError::InvalidConfig,
        ),
        (
            req(2, "nope", vec![op("retention.ms", 0, Some("1"))]),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            req(4, "", vec![op("num.io.threads", 0, Some("1"))]),
            ResponseError::InvalidConfig,
        ),
        (
            req(4, "x", vec![op("log.cleaner.threads", 0, Some("1"))]),
            ResponseError::InvalidRequest,
        ),
        (
            req(4, "7", vec![op("log.cleaner.threads", 0, Some("1"))]),
            ResponseError::BrokerIdNotRegistered,
        ),
        (
            req(
                2,
                "a",
                vec![
                    op("retention.ms", 0, Some("1")),
                    op("retention.ms", 0, Some("2")),
                ],
            ),
            ResponseError::InvalidRequest,
        ),
    ] {
        let res = c.incremental_alter_configs(&image, &r, 1, &no_broker_configs);
        assert!(res.records.is_empty());
        assert_eq!(
            res.response.responses[0].error_code,
            code.code(),
            "{:?}",
            res.response.responses[0].error_message
        );
    }
    let res = c.incremental_alter_configs(
        &image,
        &req(4, "1", vec![op("log.cleaner.threads", 0, Some("2"))]),
        1,
        &no_broker_configs,
    );
    assert_eq!(res.response.responses[0].error_code, 0);
    let image = commit(&image, res.records);
    assert_eq!(
        image
            .broker_config(Some(1))
            .get("log.cleaner.threads")
            .map(String::as_str),
        Some("2")
    );
}

#[test]
fn alter_configs_replaces_the_whole_set() {
    let image = one_node();
    let topic = creatable("a", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(s("retention.ms"))
        .with_value(Some(s("1000")))]);
    let image = commit(
        &image,
        controller()
            .create_topics(&image, &create_req(vec![topic]), 7)
            .records,
    );
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("a"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s("segment.ms"))
            .with_value(Some(s("5000")))])]);
    let res = controller().alter_configs(&image, &req, 2, &no_broker_configs);
    assert_eq!(res.response.responses[0].error_code, 0);
    assert_eq!(res.response.responses[0].error_message, None);
    encodes_at_all_versions(&res.response, 0, 2);
    let image = commit(&image, res.records);
    let configs = image.topic_config("a");
    assert_eq!(configs.len(), 1);
    assert_eq!(configs.get("segment.ms").map(String::as_str), Some("5000"));
}

#[test]
fn producer_id_blocks_are_consecutive_and_survive_a_snapshot() {
    let c = controller();
    let image = one_node();
    let epoch = image.broker(1).unwrap().epoch;
    let first = c.allocate_producer_ids(&image, 1, epoch);
    assert_eq!(first.response, Ok((0, PRODUCER_ID_BLOCK_SIZE)));
    let image = commit(&image, first.records);
    let second = c.allocate_producer_ids(&image, 1, -1);
    assert_eq!(second.response, Ok((1000, PRODUCER_ID_BLOCK_SIZE)));
    let image = commit(&image, second.records);
    assert_eq!(image.next_producer_id(), 2000);

    // A restart replays the snapshot: the next block continues.
    let reloaded =
        MetadataImage::from_snapshot(image.offset() + 1, &image.to_snapshot_records()).unwrap();
    assert_eq!(reloaded.next_producer_id(), 2000);
    assert_eq!(
        c.allocate_producer_ids(&reloaded, 1, -1).response,
        Ok((2000, PRODUCER_ID_BLOCK_SIZE))
    );

    // Unknown brokers and stale epochs are refused without records.
    let unknown = c.allocate_producer_ids(&image, 9, -1);
    assert_eq!(unknown.response, Err(ResponseError::BrokerIdNotRegistered));
    assert!(unknown.records.is_empty());
    let stale = c.allocate_producer_ids(&image, 1, epoch + 5);
    assert_eq!(stale.response, Err(ResponseError::StaleBrokerEpoch));
}

#[test]
fn a_producer_ids_record_that_goes_backwards_is_inconsistent() {
    let c = controller();
    let image = one_node();
    let block = c.allocate_producer_ids(&image, 1, -1);
    let image = commit(&image, block.records.clone());
    let replayed: Vec<_> = block
        .records
        .into_iter()
        .map(|r| (image.offset() + 1, r))
        .collect();
    assert!(image.apply(&replayed).is_err());
}
