//! Request handlers, one function per API.
//!
//! A handler gets the decoded request and returns the response body, or
//! `None` when no response is due (acks=0 produce). Errors specific to a
//! topic or partition are answered in the response; an `Err` closes the
//! connection.

mod admin;
pub mod controller;
mod fetch;
mod find_coordinator;
mod group;
mod metadata;
mod offsets;
mod produce;
mod txn;

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::*;
use riffle_protocol::request::{Request, RequestFrame};
use riffle_protocol::response::Response;
use riffle_protocol::versions::ApiRange;
use riffle_protocol::zero_copy::FileRegions;
use riffle_protocol::SUPPORTED_APIS;

use crate::broker::Broker;
use crate::server::ListenerKind;
use crate::util::sb;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub listener: String,
    pub kind: ListenerKind,
    pub peer: std::net::SocketAddr,
}

/// Kafka's `metadata.version` level for 3.9 (3.9-IV0), the level Riffle
/// writes and reports.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";

/// Handles a request on a broker listener: `Ok(None)` when there is no
/// response (acks=0), `Err` to close the connection. A fetch response comes
/// with the file regions its records are in, which its encoding needs.
pub async fn handle(
    broker: &Broker,
    ctx: &ConnContext,
    frame: RequestFrame,
) -> Result<Option<(Response, FileRegions)>, String> {
    let version = frame.version();
    let mut regions = FileRegions::default();
    let response = match frame.body {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions(broker, ctx, version)),
        Request::Metadata(r) => Response::Metadata(metadata::handle(broker, ctx, r, version).await),
        Request::Produce(r) => match produce::handle(broker, r, version).await? {
            Some(r) => Response::Produce(r),
            None => return Ok(None),
        },
        Request::Fetch(r) => {
            let (response, file_regions) = fetch::handle(broker, r, version).await;
            regions = file_regions;
            Response::Fetch(response)
        }
        Request::ListOffsets(r) => Response::ListOffsets(offsets::list_offsets(broker, r, version)),
        Request::DeleteRecords(r) => Response::DeleteRecords(offsets::delete_records(broker, r)),
        Request::OffsetForLeaderEpoch(r) => {
            Response::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(broker, r))
        }
        Request::DescribeLogDirs(r) => {
            Response::DescribeLogDirs(offsets::describe_log_dirs(broker, r, version))
        }
        Request::DescribeCluster(r) => {
            Response::DescribeCluster(metadata::describe_cluster(broker, ctx, r, version))
        }
        Request::CreateTopics(r) => {
            Response::CreateTopics(admin::create_topics(broker, r, version).await)
        }
        Request::DeleteTopics(r) => {
            Response::DeleteTopics(admin::delete_topics(broker, r, version).await)
        }
        Request::CreatePartitions(r) => {
            Response::CreatePartitions(admin::create_partitions(broker, r, version).await)
        }
        Request::DescribeConfigs(r) => {
            Response::DescribeConfigs(admin::describe_configs(broker, r, version))
        }
        Request::AlterConfigs(r) => {
            Response::AlterConfigs(admin::alter_configs(broker, r, version).await)
        }
        Request::IncrementalAlterConfigs(r) => Response::IncrementalAlterConfigs(
            admin::incremental_alter_configs(broker, r, version).await,
        ),
        Request::FindCoordinator(r) => Response::FindCoordinator(
            find_coordinator::find_coordinator(broker, ctx, r, version).await,
        ),
        Request::JoinGroup(r) => {
            let client_id = frame.header.client_id.as_deref().unwrap_or("").to_string();
            Response::JoinGroup(group::join_group(broker, ctx, &client_id, r, version).await)
        }
        Request::SyncGroup(r) => Response::SyncGroup(group::sync_group(broker, r, version).await),
        Request::Heartbeat(r) => Response::Heartbeat(group::heartbeat(broker, r)),
        Request::LeaveGroup(r) => Response::LeaveGroup(group::leave_group(broker, r, version)),
        Request::OffsetCommit(r) => {
            Response::OffsetCommit(group::offset_commit(broker, r, version))
        }
        Request::OffsetFetch(r) => Response::OffsetFetch(group::offset_fetch(broker, r, version)),
        Request::OffsetDelete(r) => Response::OffsetDelete(group::offset_delete(broker, r)),
        Request::ListGroups(r) => Response::ListGroups(group::list_groups(broker, r, version)),
        Request::DescribeGroups(r) => {
            Response::DescribeGroups(group::describe_groups(broker, r, version))
        }
        Request::DeleteGroups(r) => Response::DeleteGroups(group::delete_groups(broker, r)),
        Request::TxnOffsetCommit(r) => {
            Response::TxnOffsetCommit(group::txn_offset_commit(broker, r, version))
        }
        Request::InitProducerId(r) => {
            Response::InitProducerId(txn::init_producer_id(broker, r, version).await)
        }
        Request::AddPartitionsToTxn(r) => {
            Response::AddPartitionsToTxn(txn::add_partitions_to_txn(broker, r, version))
        }
        Request::AddOffsetsToTxn(r) => {
            Response::AddOffsetsToTxn(txn::add_offsets_to_txn(broker, r, version))
        }
        Request::EndTxn(r) => Response::EndTxn(txn::end_txn(broker, r, version)),
        Request::WriteTxnMarkers(r) => Response::WriteTxnMarkers(txn::write_txn_markers(broker, r)),
        Request::DescribeProducers(r) => {
            Response::DescribeProducers(txn::describe_producers(broker, r))
        }
        Request::DescribeTransactions(r) => {
            Response::DescribeTransactions(txn::describe_transactions(broker, r))
        }
        Request::ListTransactions(r) => {
            Response::ListTransactions(txn::list_transactions(broker, r, version))
        }
        Request::Vote(_)
        | Request::BeginQuorumEpoch(_)
        | Request::EndQuorumEpoch(_)
        | Request::DescribeQuorum(_)
        | Request::FetchSnapshot(_)
        | Request::BrokerRegistration(_)
        | Request::AllocateProducerIds(_) => {
            return Err(format!(
                "{:?} is served on the controller listener, not {}",
                frame.api_key, ctx.listener
            ))
        }
    };
    Ok(Some((response, regions)))
}

/// The ApiVersions body listing every served API.
pub fn api_versions_body(error_code: i16, _version: i16) -> ApiVersionsResponse {
    api_versions_body_for(SUPPORTED_APIS, error_code)
}

/// The ApiVersions body listing the APIs of `table`.
///
/// Produce is advertised from v0 although only v3 and later are served
/// (a v0-v2 request fails to decode and closes the connection), as Kafka
/// 4.0 does since KAFKA-18659: librdkafka before 2.8 checks for Produce v0
/// before it compresses a batch and, without it, silently sends every batch
/// uncompressed. Clients pick the highest common version, so none is led to
/// send v0-v2.
pub fn api_versions_body_for(table: &[ApiRange], error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            table
                .iter()
                .map(|r| {
                    let min_version = if r.api_key == ApiKey::Produce {
                        0
                    } else {
                        r.min_version
                    };
                    ApiVersion::default()
                        .with_api_key(r.api_key as i16)
                        .with_min_version(min_version)
                        .with_max_version(r.max_version)
                })
                .collect(),
        )
}

fn api_versions(broker: &Broker, ctx: &ConnContext, version: i16) -> ApiVersionsResponse {
    let mut body = api_versions_body(0, version);
    let _ = ctx;
    if version >= 3 {
        let image = broker.image();
        let level = image.feature_level(METADATA_VERSION_FEATURE).unwrap_or(0);
        body.supported_features = vec![SupportedFeatureKey::default()
            .with_name(sb(METADATA_VERSION_FEATURE))
            .with_min_version(1)
            .with_max_version(level.max(1))];
        body.finalized_features_epoch = image.offset();
        body.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(sb(METADATA_VERSION_FEATURE))
            .with_min_version_level(level)
            .with_max_version_level(level)];
    }
    body
}

/// Whether a topic is internal: its name starts with `__` (Kafka's own
/// `__consumer_offsets` and `__transaction_state`, and any other name
/// Riffle's components reserve that way). Metadata reports them as
/// internal, clients may not produce to them and they are never
/// auto-created; they can still be created and deleted explicitly.
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}
