//! Metadata record encoding: Kafka's `ApiMessageAndVersion` framing and the
//! flexible encoding of each record schema.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use riffle_metadata::records::{BrokerFeature, NoOpRecord};
use riffle_metadata::*;
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn ints() -> impl Strategy<Value = Vec<i32>> {
    vec(any::<i32>(), 0..5)
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._\\-é]{0,20}"
}

fn register_broker() -> impl Strategy<Value = MetadataRecord> {
    (
        0i16..=3,
        any::<i32>(),
        any::<bool>(),
        uuid(),
        any::<i64>(),
        vec((name(), name(), any::<u16>(), any::<i16>()), 0..3),
        vec((name(), any::<i16>(), any::<i16>()), 0..3),
        option::of(name()),
        (any::<bool>(), any::<bool>(), vec(uuid(), 0..3)),
    )
        .prop_map(
            |(version, id, zk, inc, epoch, eps, feats, rack, (fenced, ics, dirs))| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    version,
                    broker_id: id,
                    is_migrating_zk_broker: zk && version >= 2,
                    incarnation_id: inc,
                    broker_epoch: epoch,
                    end_points: eps
                        .into_iter()
                        .map(|(name, host, port, security_protocol)| Endpoint {
                            name,
                            host,
                            port,
                            security_protocol,
                        })
                        .collect(),
                    features: feats
                        .into_iter()
                        .map(|(name, min, max)| BrokerFeature {
                            name,
                            min_supported_version: min,
                            max_supported_version: max,
                        })
                        .collect(),
                    rack,
                    fenced,
                    in_controlled_shutdown: ics && version >= 1,
                    log_dirs: if version >= 3 { dirs } else { Vec::new() },
                })
            },
        )
}

fn partition() -> impl Strategy<Value = MetadataRecord> {
    (
        0i16..=2,
        (any::<i32>(), uuid(), ints(), ints(), ints(), ints()),
        (any::<i32>(), any::<i8>(), any::<i32>(), any::<i32>()),
        vec(uuid(), 0..3),
        option::of(ints()),
        option::of(ints()),
    )
        .prop_map(
            |(version, (p, t, r, i, rm, add), (l, lrs, le, pe), dirs, elr, lke)| {
                MetadataRecord::Partition(PartitionRecord {
                    version,
                    partition_id: p,
                    topic_id: t,
                    replicas: r,
                    isr: i,
                    removing_replicas: rm,
                    adding_replicas: add,
                    leader: l,
                    leader_recovery_state: lrs,
                    leader_epoch: le,
                    partition_epoch: pe,
                    directories: if version >= 1 { dirs } else { Vec::new() },
                    eligible_leader_replicas: if version >= 2 { elr } else { None },
                    last_known_elr: if version >= 2 { lke } else { None },
                })
            },
        )
}

fn partition_change() -> impl Strategy<Value = MetadataRecord> {
    (
        0i16..=2,
        any::<i32>(),
        uuid(),
        (option::of(ints()), any::<i32>(), option::of(ints())),
        (option::of(ints()), option::of(ints()), any::<i8>()),
        option::of(vec(uuid(), 0..3)),
        (option::of(ints()), option::of(ints())),
    )
        .prop_map(
            |(version, p, t, (isr, leader, replicas), (rm, add, lrs), dirs, (elr, lke))| {
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    version,
                    partition_id: p,
                    topic_id: t,
                    isr,
                    leader,
                    replicas,
                    removing_replicas: rm,
                    adding_replicas: add,
                    leader_recovery_state: lrs,
                    directories: if version >= 1 { dirs } else { None },
                    eligible_leader_replicas: if version >= 2 { elr } else { None },
                    last_known_elr: if version >= 2 { lke } else { None },
                })
            },
        )
}

fn record() -> impl Strategy<Value = MetadataRecord> {
    prop_oneof![
        register_broker(),
        (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
            MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id,
                broker_epoch,
            })
        }),
        (name(), uuid())
            .prop_map(|(name, topic_id)| MetadataRecord::Topic(TopicRecord { name, topic_id })),
        partition(),
        (any::<i8>(), name(), name(), option::of(name())).prop_map(|(t, r, n, v)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: t,
                resource_name: r,
                name: n,
                value: v,
            })
        }),
        partition_change(),
        uuid().prop_map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
        (name(), any::<i16>()).prop_map(|(name, feature_level)| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name,
                feature_level,
            })
        }),
        (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(|(b, e, n)| {
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: b,
                broker_epoch: e,
                next_producer_id: n,
            })
        }),
        Just(MetadataRecord::NoOp(NoOpRecord)),
    ]
}

/// ProducerIdsRecord bytes as Kafka's MetadataRecordSerde writes them
/// (frame 1, api key 15, version 0, then the flexible body).
#[test]
fn producer_ids_record_bytes() {
    let r = MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id: 3,
        broker_epoch: 7,
        next_producer_id: 2000,
    });
    let mut want = vec![1u8, 15, 0];
    want.extend_from_slice(&3i32.to_be_bytes());
    want.extend_from_slice(&7i64.to_be_bytes());
    want.extend_from_slice(&2000i64.to_be_bytes());
    want.push(0);
    assert_eq!(&r.encode()[..], &want[..]);
}

proptest! {
    #[test]
    fn every_record_round_trips_at_every_version(r in record()) {
        let bytes = r.encode();
        prop_assert_eq!(MetadataRecord::decode(&bytes), Ok(r));
    }

    #[test]
    fn truncated_or_extended_records_are_errors(r in record(), extra in vec(any::<u8>(), 1..4)) {
        let bytes = r.encode();
        for cut in 0..bytes.len() {
            prop_assert!(MetadataRecord::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&extra);
        prop_assert!(MetadataRecord::decode(&longer).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        let _ = MetadataRecord::decode(&bytes);
        let _ = decode_batches(&bytes);
    }

    #[test]
    fn corrupted_records_never_panic(r in record(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = r.encode().to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = MetadataRecord::decode(&bytes);
    }

    #[test]
    fn batches_round_trip(records in vec(record(), 1..6), ts in any::<i64>()) {
        let batch = encode_batch(&records, ts);
        let decoded = decode_batches(&batch).expect("decode");
        let expected: Vec<(i64, MetadataRecord)> =
            records.into_iter().enumerate().map(|(i, r)| (i as i64, r)).collect();
        prop_assert_eq!(decoded, expected);
        for cut in [1, 12, 61, batch.len() - 1] {
            prop_assert!(decode_batches(&batch[..cut]).is_err());
        }
    }

    #[test]
    fn corrupted_batches_never_panic(records in vec(record(), 1..4), pos in any::<usize>(), byte in any::<u8>()) {
        let mut batch = encode_batch(&records, 0).to_vec();
        let i = pos % batch.len();
        batch[i] = byte;
        let _ = decode_batches(&batch);
    }
}

/// TopicRecord v0 by hand from TopicRecord.json: frame version 1, api key 2,
/// version 0 (unsigned varints); Name as a compact string (length + 1);
/// TopicId as 16 bytes; an empty tagged-field section.
#[test]
fn topic_record_bytes_match_the_schema() {
    let id = Uuid::from_bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    let r = MetadataRecord::Topic(TopicRecord {
        name: "foo".to_string(),
        topic_id: id,
    });
    let mut expected = vec![0x01, 0x02, 0x00, 0x04, b'f', b'o', b'o'];
    expected.extend(0u8..16);
    expected.push(0x00);
    assert_eq!(r.encode().as_ref(), expected.as_slice());
}

/// ConfigRecord v0 (api key 4) with a null value: ResourceType int8,
/// ResourceName and Name compact strings, Value a null compact string (0).
#[test]
fn config_record_bytes_match_the_schema() {
    let r = MetadataRecord::Config(ConfigRecord {
        resource_type: 2,
        resource_name: "t".to_string(),
        name: "retention.ms".to_string(),
        value: None,
    });
    let mut expected = vec![0x01, 0x04, 0x00, 0x02, 0x02, b't', 13];
    expected.extend_from_slice(b"retention.ms");
    expected.extend_from_slice(&[0x00, 0x00]);
    assert_eq!(r.encode().as_ref(), expected.as_slice());
}

/// PartitionChangeRecord v0 with only the leader set: the leader is tagged
/// field 1 (size 4), so the body is the partition id, topic id, then one
/// tagged field.
#[test]
fn partition_change_record_tags_match_the_schema() {
    let r = MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 7,
        topic_id: Uuid::nil(),
        leader: 3,
        ..PartitionChangeRecord::default()
    });
    let mut expected = vec![0x01, 0x05, 0x00, 0, 0, 0, 7];
    expected.extend([0u8; 16]);
    expected.extend_from_slice(&[0x01, 0x01, 0x04, 0, 0, 0, 3]);
    assert_eq!(r.encode().as_ref(), expected.as_slice());
}

#[test]
fn unknown_frame_key_and_version_are_errors() {
    // Frame version 0 (KRaft preview) and 2 are refused.
    assert!(MetadataRecord::decode(&[0x00, 0x14, 0x00, 0x00]).is_err());
    assert!(MetadataRecord::decode(&[0x02, 0x14, 0x00, 0x00]).is_err());
    // NoOpRecord v0 is fine; v1 and api key 99 are unknown.
    assert_eq!(
        MetadataRecord::decode(&[0x01, 0x14, 0x00, 0x00]),
        Ok(MetadataRecord::NoOp(NoOpRecord))
    );
    assert!(matches!(
        MetadataRecord::decode(&[0x01, 0x14, 0x01, 0x00]),
        Err(MetadataError::UnknownRecord {
            api_key: 20,
            version: 1
        })
    ));
    assert!(matches!(
        MetadataRecord::decode(&[0x01, 0x63, 0x00, 0x00]),
        Err(MetadataError::UnknownRecord { api_key: 99, .. })
    ));
}

#[test]
fn unknown_tagged_fields_are_skipped() {
    // NoOpRecord with one unknown tagged field (tag 5, 2 bytes).
    assert_eq!(
        MetadataRecord::decode(&[0x01, 0x14, 0x00, 0x01, 0x05, 0x02, 0xaa, 0xbb]),
        Ok(MetadataRecord::NoOp(NoOpRecord))
    );
}

#[test]
fn a_batch_claiming_a_huge_record_count_is_an_error() {
    let mut batch = encode_batch(&[MetadataRecord::NoOp(NoOpRecord)], 0).to_vec();
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(decode_batches(&batch).is_err());
}
