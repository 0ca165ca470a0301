//! Decoding a request frame into its header and typed body.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

use crate::versions::{ApiRange, SUPPORTED_APIS};

macro_rules! requests {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// The body of a request Riffle serves.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $($variant($ty),)*
        }

        fn decode_body(api_key: ApiKey, buf: &mut Bytes, version: i16) -> Option<anyhow::Result<Request>> {
            Some(match api_key {
                $(ApiKey::$variant => <$ty>::decode(buf, version).map(Request::$variant),)*
                _ => return None,
            })
        }
    };
}

requests! {
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    ApiVersions(ApiVersionsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    DeleteRecords(DeleteRecordsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    CreatePartitions(CreatePartitionsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    Vote(VoteRequest),
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    EndQuorumEpoch(EndQuorumEpochRequest),
    DescribeQuorum(DescribeQuorumRequest),
    FetchSnapshot(FetchSnapshotRequest),
    BrokerRegistration(BrokerRegistrationRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    OffsetDelete(OffsetDeleteRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    InitProducerId(InitProducerIdRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    EndTxn(EndTxnRequest),
    WriteTxnMarkers(WriteTxnMarkersRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    DescribeProducers(DescribeProducersRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
    AllocateProducerIds(AllocateProducerIdsRequest),
}

/// A decoded request: its header, API and typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Request,
}

impl RequestFrame {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Why a frame could not be decoded. The variants say how much is known,
/// which decides whether an error response can be sent.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("request of {0} bytes is too short for a request header")]
    ShortFrame(usize),
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("API {api_key:?} is not served by Riffle (correlation id {correlation_id})")]
    UnservedApi {
        api_key: ApiKey,
        correlation_id: i32,
    },
    /// A served API at a version outside the advertised range. For
    /// ApiVersions the header is available and an error response is due.
    #[error("{api_key:?} version {version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        header: Option<RequestHeader>,
    },
    #[error("malformed {api_key:?} v{version} request header: {reason}")]
    MalformedHeader {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
    /// The header decoded but the body did not: the API and version are
    /// known.
    #[error("malformed {api_key:?} v{} request body: {reason}", header.request_api_version)]
    MalformedBody {
        api_key: ApiKey,
        header: RequestHeader,
        reason: String,
    },
}

/// Decodes one request frame (without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<RequestFrame, DecodeError> {
    decode_request_for(frame, SUPPORTED_APIS)
}

/// Decodes a request against the API table of a listener (the broker's
/// [`SUPPORTED_APIS`] or the controller's
/// [`crate::versions::CONTROLLER_APIS`]); an API outside the table is
/// [`DecodeError::UnservedApi`].
pub fn decode_request_for(frame: Bytes, table: &[ApiRange]) -> Result<RequestFrame, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::ShortFrame(frame.len()));
    }
    let mut peek = &frame[..8];
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let Some(range) = table.iter().copied().find(|r| r.api_key == api_key) else {
        return Err(DecodeError::UnservedApi {
            api_key,
            correlation_id,
        });
    };
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut buf, header_version).map_err(|e| DecodeError::MalformedHeader {
            api_key,
            version,
            correlation_id,
            reason: e.to_string(),
        });
    if version < range.min_version || version > range.max_version {
        // Kafka answers an ApiVersions request it cannot parse with its
        // supported ranges, so the header is passed along when it decoded.
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
            header: header.ok(),
        });
    }
    let header = header?;
    match decode_body(api_key, &mut buf, version) {
        Some(Ok(body)) => Ok(RequestFrame {
            api_key,
            header,
            body,
        }),
        Some(Err(e)) => Err(DecodeError::MalformedBody {
            api_key,
            header,
            reason: format!("{e:#}"),
        }),
        None => Err(DecodeError::UnservedApi {
            api_key,
            correlation_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut b, key.request_header_version(version))
            .unwrap();
        body.encode(&mut b, version).unwrap();
        b.freeze()
    }

    #[test]
    fn decodes_a_metadata_request() {
        let req = MetadataRequest::default().with_topics(None);
        let f = decode_request(frame(ApiKey::Metadata, 12, &req)).unwrap();
        assert_eq!(f.correlation_id(), 7);
        assert_eq!(f.body, Request::Metadata(req));
    }

    #[test]
    fn huge_array_length_is_an_error_not_an_abort() {
        // Metadata v1: topics array announcing i32::MAX entries.
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i16(1);
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i32(i32::MAX);
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::MalformedBody { .. })
        ));
    }

    #[test]
    fn unknown_unserved_and_unsupported_are_told_apart() {
        let mut b = BytesMut::new();
        b.put_i16(9999);
        b.put_i16(0);
        b.put_i32(5);
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::UnknownApiKey {
                api_key: 9999,
                correlation_id: 5
            })
        ));
        let req = ApiVersionsRequest::default();
        let mut f = BytesMut::from(&frame(ApiKey::ApiVersions, 3, &req)[..]);
        f[2..4].copy_from_slice(&127i16.to_be_bytes());
        match decode_request(f.freeze()) {
            Err(DecodeError::UnsupportedVersion {
                header: Some(h), ..
            }) => assert_eq!(h.correlation_id, 7),
            other => panic!("{other:?}"),
        }
        let mut b = BytesMut::new();
        b.put_i16(ApiKey::ConsumerGroupHeartbeat as i16);
        b.put_i16(0);
        b.put_i32(5);
        b.put_i16(-1);
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::UnservedApi { .. })
        ));
    }

    fn default_body(key: ApiKey, version: i16) -> BytesMut {
        let mut b = BytesMut::new();
        let r = match key {
            ApiKey::Produce => ProduceRequest::default().encode(&mut b, version),
            ApiKey::Fetch => FetchRequest::default().encode(&mut b, version),
            ApiKey::ListOffsets => ListOffsetsRequest::default().encode(&mut b, version),
            ApiKey::Metadata => MetadataRequest::default().encode(&mut b, version),
            ApiKey::ApiVersions => ApiVersionsRequest::default().encode(&mut b, version),
            ApiKey::CreateTopics => CreateTopicsRequest::default().encode(&mut b, version),
            ApiKey::DeleteTopics => DeleteTopicsRequest::default().encode(&mut b, version),
            ApiKey::DeleteRecords => DeleteRecordsRequest::default().encode(&mut b, version),
            ApiKey::OffsetForLeaderEpoch => {
                OffsetForLeaderEpochRequest::default().encode(&mut b, version)
            }
            ApiKey::DescribeConfigs => DescribeConfigsRequest::default().encode(&mut b, version),
            ApiKey::AlterConfigs => AlterConfigsRequest::default().encode(&mut b, version),
            ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default().encode(&mut b, version),
            ApiKey::CreatePartitions => CreatePartitionsRequest::default().encode(&mut b, version),
            ApiKey::IncrementalAlterConfigs => {
                IncrementalAlterConfigsRequest::default().encode(&mut b, version)
            }
            ApiKey::DescribeCluster => DescribeClusterRequest::default().encode(&mut b, version),
            ApiKey::FindCoordinator => FindCoordinatorRequest::default().encode(&mut b, version),
            ApiKey::JoinGroup => JoinGroupRequest::default().encode(&mut b, version),
            ApiKey::SyncGroup => SyncGroupRequest::default().encode(&mut b, version),
            ApiKey::Heartbeat => HeartbeatRequest::default().encode(&mut b, version),
            ApiKey::LeaveGroup => LeaveGroupRequest::default().encode(&mut b, version),
            ApiKey::OffsetCommit => OffsetCommitRequest::default().encode(&mut b, version),
            ApiKey::OffsetFetch => OffsetFetchRequest::default().encode(&mut b, version),
            ApiKey::OffsetDelete => OffsetDeleteRequest::default().encode(&mut b, version),
            ApiKey::ListGroups => ListGroupsRequest::default().encode(&mut b, version),
            ApiKey::DescribeGroups => DescribeGroupsRequest::default().encode(&mut b, version),
            ApiKey::DeleteGroups => DeleteGroupsRequest::default().encode(&mut b, version),
            ApiKey::InitProducerId => InitProducerIdRequest::default().encode(&mut b, version),
            ApiKey::AddPartitionsToTxn => {
                AddPartitionsToTxnRequest::default().encode(&mut b, version)
            }
            ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default().encode(&mut b, version),
            ApiKey::EndTxn => EndTxnRequest::default().encode(&mut b, version),
            ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::default().encode(&mut b, version),
            ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default().encode(&mut b, version),
            ApiKey::DescribeProducers => {
                DescribeProducersRequest::default().encode(&mut b, version)
            }
            ApiKey::DescribeTransactions => {
                DescribeTransactionsRequest::default().encode(&mut b, version)
            }
            ApiKey::ListTransactions => ListTransactionsRequest::default().encode(&mut b, version),
            ApiKey::AllocateProducerIds => {
                AllocateProducerIdsRequest::default().encode(&mut b, version)
            }
            other => panic!("{other:?} is not served"),
        };
        r.unwrap();
        b
    }

    /// Every advertised version of every served API decodes. With
    /// `RIFFLE_FUZZ_SEEDS=<dir>` the frames are also written there as seeds
    /// for the `decode_request` fuzz target.
    #[test]
    fn every_advertised_version_decodes() {
        let seeds = std::env::var_os("RIFFLE_FUZZ_SEEDS").map(std::path::PathBuf::from);
        for r in crate::versions::SUPPORTED_APIS {
            for v in r.min_version..=r.max_version {
                let mut b = BytesMut::new();
                RequestHeader::default()
                    .with_request_api_key(r.api_key as i16)
                    .with_request_api_version(v)
                    .with_correlation_id(1)
                    .with_client_id(Some(StrBytes::from_static_str("seed")))
                    .encode(&mut b, r.api_key.request_header_version(v))
                    .unwrap();
                b.extend_from_slice(&default_body(r.api_key, v));
                let f = decode_request(b.clone().freeze())
                    .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", r.api_key));
                assert_eq!(f.api_key, r.api_key);
                if let Some(dir) = &seeds {
                    std::fs::create_dir_all(dir).unwrap();
                    std::fs::write(dir.join(format!("{:?}-v{v}", r.api_key)), &b).unwrap();
                }
            }
        }
    }

    #[test]
    fn short_frames_are_refused() {
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 3, 0])),
            Err(DecodeError::ShortFrame(3))
        ));
    }
}
