//! Encoding responses: size prefix, response header, body.

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

use crate::zero_copy::{EncodedResponse, FileRegions, SplicingBuf};

macro_rules! responses {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// The body of a response Riffle sends.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Response {
            $($variant($ty),)*
        }

        impl Response {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Response::$variant(_) => ApiKey::$variant,)*
                }
            }

            fn encode_body<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
                match self {
                    $(Response::$variant(r) => r.encode(buf, version),)*
                }
            }
        }
    };
}

responses! {
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    Metadata(MetadataResponse),
    ApiVersions(ApiVersionsResponse),
    CreateTopics(CreateTopicsResponse),
    DeleteTopics(DeleteTopicsResponse),
    DeleteRecords(DeleteRecordsResponse),
    OffsetForLeaderEpoch(OffsetForLeaderEpochResponse),
    DescribeConfigs(DescribeConfigsResponse),
    AlterConfigs(AlterConfigsResponse),
    DescribeLogDirs(DescribeLogDirsResponse),
    CreatePartitions(CreatePartitionsResponse),
    IncrementalAlterConfigs(IncrementalAlterConfigsResponse),
    DescribeCluster(DescribeClusterResponse),
    Vote(VoteResponse),
    BeginQuorumEpoch(BeginQuorumEpochResponse),
    EndQuorumEpoch(EndQuorumEpochResponse),
    DescribeQuorum(DescribeQuorumResponse),
    FetchSnapshot(FetchSnapshotResponse),
    BrokerRegistration(BrokerRegistrationResponse),
    FindCoordinator(FindCoordinatorResponse),
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    OffsetDelete(OffsetDeleteResponse),
    ListGroups(ListGroupsResponse),
    DescribeGroups(DescribeGroupsResponse),
    DeleteGroups(DeleteGroupsResponse),
    InitProducerId(InitProducerIdResponse),
    AddPartitionsToTxn(AddPartitionsToTxnResponse),
    AddOffsetsToTxn(AddOffsetsToTxnResponse),
    EndTxn(EndTxnResponse),
    WriteTxnMarkers(WriteTxnMarkersResponse),
    TxnOffsetCommit(TxnOffsetCommitResponse),
    DescribeProducers(DescribeProducersResponse),
    DescribeTransactions(DescribeTransactionsResponse),
    ListTransactions(ListTransactionsResponse),
    AllocateProducerIds(AllocateProducerIdsResponse),
}

impl Response {
    /// A response that carries only a top-level error code, for APIs whose
    /// response has one at `version`. Used for requests whose body could
    /// not be decoded: without the body, per-topic answers are impossible.
    pub fn top_level_error(api_key: ApiKey, version: i16, error_code: i16) -> Option<Response> {
        Some(match api_key {
            ApiKey::ApiVersions => {
                Response::ApiVersions(ApiVersionsResponse::default().with_error_code(error_code))
            }
            ApiKey::DescribeCluster => Response::DescribeCluster(
                DescribeClusterResponse::default().with_error_code(error_code),
            ),
            ApiKey::Vote => Response::Vote(VoteResponse::default().with_error_code(error_code)),
            ApiKey::BeginQuorumEpoch => Response::BeginQuorumEpoch(
                BeginQuorumEpochResponse::default().with_error_code(error_code),
            ),
            ApiKey::EndQuorumEpoch => Response::EndQuorumEpoch(
                EndQuorumEpochResponse::default().with_error_code(error_code),
            ),
            ApiKey::DescribeQuorum => Response::DescribeQuorum(
                DescribeQuorumResponse::default().with_error_code(error_code),
            ),
            ApiKey::FetchSnapshot => Response::FetchSnapshot(
                FetchSnapshotResponse::default().with_error_code(error_code),
            ),
            ApiKey::BrokerRegistration => Response::BrokerRegistration(
                BrokerRegistrationResponse::default().with_error_code(error_code),
            ),
            ApiKey::FindCoordinator if version < 4 => Response::FindCoordinator(
                FindCoordinatorResponse::default()
                    .with_error_code(error_code)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            ),
            ApiKey::JoinGroup => Response::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(error_code)
                    .with_generation_id(-1),
            ),
            ApiKey::SyncGroup => {
                Response::SyncGroup(SyncGroupResponse::default().with_error_code(error_code))
            }
            ApiKey::Heartbeat => {
                Response::Heartbeat(HeartbeatResponse::default().with_error_code(error_code))
            }
            ApiKey::LeaveGroup => {
                Response::LeaveGroup(LeaveGroupResponse::default().with_error_code(error_code))
            }
            ApiKey::OffsetFetch if (2..8).contains(&version) => {
                Response::OffsetFetch(OffsetFetchResponse::default().with_error_code(error_code))
            }
            ApiKey::OffsetDelete => {
                Response::OffsetDelete(OffsetDeleteResponse::default().with_error_code(error_code))
            }
            ApiKey::ListGroups => {
                Response::ListGroups(ListGroupsResponse::default().with_error_code(error_code))
            }
            ApiKey::Fetch if version >= 7 => {
                Response::Fetch(FetchResponse::default().with_error_code(error_code))
            }
            ApiKey::Metadata if version >= 13 => {
                Response::Metadata(MetadataResponse::default().with_error_code(error_code))
            }
            ApiKey::DescribeLogDirs if version >= 3 => Response::DescribeLogDirs(
                DescribeLogDirsResponse::default().with_error_code(error_code),
            ),
            ApiKey::InitProducerId => Response::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(error_code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
            ApiKey::AddOffsetsToTxn => Response::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(error_code),
            ),
            ApiKey::EndTxn => {
                Response::EndTxn(EndTxnResponse::default().with_error_code(error_code))
            }
            ApiKey::ListTransactions => Response::ListTransactions(
                ListTransactionsResponse::default().with_error_code(error_code),
            ),
            ApiKey::AllocateProducerIds => Response::AllocateProducerIds(
                AllocateProducerIdsResponse::default()
                    .with_error_code(error_code)
                    .with_producer_id_start(ProducerId(-1)),
            ),
            _ => return None,
        })
    }
}

/// Encodes `response` at `version` for the request with `correlation_id`,
/// size prefix included. ApiVersions responses always use header v0 (so a
/// client that sent an unsupported version can read them).
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> anyhow::Result<Bytes> {
    let encoded =
        encode_response_with_regions(correlation_id, version, response, &FileRegions::default())?;
    Ok(encoded.inline)
}

/// Encodes a response whose records are (partly) the file regions of
/// `regions`, registered by the handler that built it (see
/// [`crate::zero_copy`]).
pub fn encode_response_with_regions(
    correlation_id: i32,
    version: i16,
    response: &Response,
    regions: &FileRegions,
) -> anyhow::Result<EncodedResponse> {
    let header_version = response.api_key().response_header_version(version);
    let mut buf = SplicingBuf::new(256, regions);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    response.encode_body(&mut buf, version)?;
    let size = i32::try_from(buf.logical_len() - 4)
        .map_err(|_| anyhow::anyhow!("response of {} bytes is too large", buf.logical_len()))?;
    buf.inline_mut()[..4].copy_from_slice(&size.to_be_bytes());
    buf.finish()
        .map_err(|e| anyhow::anyhow!("cannot place the records of the response: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::SUPPORTED_APIS;

    #[test]
    fn api_versions_response_uses_header_v0_at_every_version() {
        for v in 0..=4 {
            let r = Response::ApiVersions(ApiVersionsResponse::default());
            let b = encode_response(42, v, &r).unwrap();
            // size, correlation id, then the error code: no tagged-field byte.
            assert_eq!(&b[4..8], &42i32.to_be_bytes());
            assert_eq!(&b[8..10], &0i16.to_be_bytes());
        }
    }

    #[test]
    fn default_responses_encode_at_every_advertised_version() {
        for r in SUPPORTED_APIS {
            for v in r.min_version..=r.max_version {
                if let Some(resp) = Response::top_level_error(r.api_key, v, 42) {
                    let b = encode_response(1, v, &resp).unwrap();
                    assert_eq!(
                        i32::from_be_bytes(b[..4].try_into().unwrap()) as usize,
                        b.len() - 4
                    );
                }
            }
        }
    }
}
