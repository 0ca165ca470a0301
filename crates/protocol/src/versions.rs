//! The API versions Riffle serves.
//!
//! Riffle advertises Apache Kafka 4.0's ranges for every API it serves.
//! Kafka 4.0 is the release whose oldest versions (KIP-896 removed the
//! pre-2.1 ones) match what the `kafka-protocol` crate can decode; 3.9's
//! wider ranges include versions that crate cannot read. An API Riffle does
//! not serve is not advertised at all.

use kafka_protocol::messages::ApiKey;

/// One API and the versions of it that Riffle serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn range(api_key: ApiKey, min_version: i16, max_version: i16) -> ApiRange {
    ApiRange {
        api_key,
        min_version,
        max_version,
    }
}

/// Kafka 4.0's ranges for the APIs Riffle serves, in API key order.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    range(ApiKey::Produce, 3, 12),
    range(ApiKey::Fetch, 4, 17),
    range(ApiKey::ListOffsets, 1, 10),
    range(ApiKey::Metadata, 0, 13),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 5),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::AddPartitionsToTxn, 0, 3),
    range(ApiKey::AddOffsetsToTxn, 0, 4),
    range(ApiKey::EndTxn, 0, 4),
    range(ApiKey::WriteTxnMarkers, 1, 1),
    range(ApiKey::TxnOffsetCommit, 0, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::DescribeLogDirs, 1, 4),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 2),
    range(ApiKey::DescribeProducers, 0, 0),
    range(ApiKey::DescribeTransactions, 0, 0),
    range(ApiKey::ListTransactions, 0, 1),
];

/// The APIs of the controller listener (`controller.listener.names`):
/// the KRaft RPCs at the versions of the static-voter quorum (Kafka 3.9's
/// KIP-595/KIP-630 ranges), broker registration, and the admin APIs a
/// client may send to controllers directly (KIP-919). Kafka 4.0's ranges
/// where it has them.
pub const CONTROLLER_APIS: &[ApiRange] = &[
    range(ApiKey::Fetch, 13, 17),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::Vote, 0, 1),
    range(ApiKey::BeginQuorumEpoch, 0, 1),
    range(ApiKey::EndQuorumEpoch, 0, 1),
    range(ApiKey::DescribeQuorum, 0, 2),
    range(ApiKey::FetchSnapshot, 0, 1),
    range(ApiKey::DescribeCluster, 1, 2),
    range(ApiKey::BrokerRegistration, 0, 4),
    range(ApiKey::AllocateProducerIds, 0, 0),
];

/// The served range of `api_key`, if Riffle serves it.
pub fn supported_range(api_key: ApiKey) -> Option<ApiRange> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|r| r.api_key == api_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn crate_range(key: ApiKey) -> (i16, i16) {
        let v = match key {
            ApiKey::Produce => ProduceRequest::VERSIONS,
            ApiKey::Fetch => FetchRequest::VERSIONS,
            ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
            ApiKey::Metadata => MetadataRequest::VERSIONS,
            ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
            ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
            ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
            ApiKey::DeleteRecords => DeleteRecordsRequest::VERSIONS,
            ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
            ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
            ApiKey::AlterConfigs => AlterConfigsRequest::VERSIONS,
            ApiKey::DescribeLogDirs => DescribeLogDirsRequest::VERSIONS,
            ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
            ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
            ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
            ApiKey::Vote => VoteRequest::VERSIONS,
            ApiKey::BeginQuorumEpoch => BeginQuorumEpochRequest::VERSIONS,
            ApiKey::EndQuorumEpoch => EndQuorumEpochRequest::VERSIONS,
            ApiKey::DescribeQuorum => DescribeQuorumRequest::VERSIONS,
            ApiKey::FetchSnapshot => FetchSnapshotRequest::VERSIONS,
            ApiKey::BrokerRegistration => BrokerRegistrationRequest::VERSIONS,
            ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
            ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
            ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
            ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
            ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
            ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
            ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
            ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
            ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
            ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
            ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::VERSIONS,
            ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::VERSIONS,
            ApiKey::EndTxn => EndTxnRequest::VERSIONS,
            ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::VERSIONS,
            ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::VERSIONS,
            ApiKey::DescribeProducers => DescribeProducersRequest::VERSIONS,
            ApiKey::DescribeTransactions => DescribeTransactionsRequest::VERSIONS,
            ApiKey::ListTransactions => ListTransactionsRequest::VERSIONS,
            ApiKey::AllocateProducerIds => AllocateProducerIdsRequest::VERSIONS,
            other => panic!("{other:?} is not in the table"),
        };
        (v.min, v.max)
    }

    #[test]
    fn every_advertised_version_is_decodable_by_kafka_protocol() {
        for r in SUPPORTED_APIS.iter().chain(CONTROLLER_APIS) {
            let (min, max) = crate_range(r.api_key);
            assert!(
                min <= r.min_version && r.max_version <= max,
                "{:?}: advertised {}-{}, decodable {min}-{max}",
                r.api_key,
                r.min_version,
                r.max_version
            );
        }
    }

    #[test]
    fn table_is_in_api_key_order_without_duplicates() {
        for table in [SUPPORTED_APIS, CONTROLLER_APIS] {
            for w in table.windows(2) {
                assert!((w[0].api_key as i16) < (w[1].api_key as i16));
            }
        }
    }
}
