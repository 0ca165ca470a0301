//! The controller listener: the KRaft RPCs go to the quorum; broker
//! registration and the admin APIs a client may send to controllers
//! directly (KIP-919) go to the controller when this node is active.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;
use riffle_protocol::request::{Request, RequestFrame};
use riffle_protocol::response::Response;
use riffle_protocol::CONTROLLER_APIS;
use riffle_raft::{RaftRequest, RaftResponse};

use super::{admin, api_versions_body_for, ConnContext};
use crate::server::Node;
use crate::util::sb;

/// Handles one request that arrived on a controller listener.
pub async fn handle(
    node: &Node,
    ctx: &ConnContext,
    frame: RequestFrame,
) -> Result<Option<Response>, String> {
    let version = frame.version();
    let raft = |request| async move {
        match node.quorum.raft().request(request).await {
            Ok(r) => Ok(r),
            Err(e) => Err(format!("the metadata quorum cannot answer: {e}")),
        }
    };
    let broker = node.broker.get();
    Ok(Some(match frame.body {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions_body_for(CONTROLLER_APIS, 0)),
        Request::Vote(r) => match raft(RaftRequest::Vote(r)).await? {
            RaftResponse::Vote(r) => Response::Vote(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::BeginQuorumEpoch(r) => match raft(RaftRequest::BeginQuorumEpoch(r)).await? {
            RaftResponse::BeginQuorumEpoch(r) => Response::BeginQuorumEpoch(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::EndQuorumEpoch(r) => match raft(RaftRequest::EndQuorumEpoch(r)).await? {
            RaftResponse::EndQuorumEpoch(r) => Response::EndQuorumEpoch(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::Fetch(r) => match raft(RaftRequest::Fetch(r)).await? {
            RaftResponse::Fetch(r) => Response::Fetch(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::FetchSnapshot(r) => match raft(RaftRequest::FetchSnapshot(r)).await? {
            RaftResponse::FetchSnapshot(r) => Response::FetchSnapshot(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::DescribeQuorum(r) => match raft(RaftRequest::DescribeQuorum(r)).await? {
            RaftResponse::DescribeQuorum(r) => Response::DescribeQuorum(r),
            other => return Err(format!("unexpected {other:?}")),
        },
        Request::DescribeCluster(r) => {
            Response::DescribeCluster(describe_cluster(node, r, version))
        }
        Request::BrokerRegistration(r) => Response::BrokerRegistration(match broker {
            Some(b) => crate::registration::handle(b, r).await,
            None => BrokerRegistrationResponse::default()
                .with_error_code(ResponseError::NotController.code()),
        }),
        body => {
            let Some(broker) = broker else {
                return Ok(Response::top_level_error(
                    frame.api_key,
                    version,
                    ResponseError::NotController.code(),
                ));
            };
            match body {
                Request::CreateTopics(r) => {
                    Response::CreateTopics(admin::create_topics(broker, r, version).await)
                }
                Request::DeleteTopics(r) => {
                    Response::DeleteTopics(admin::delete_topics(broker, r, version).await)
                }
                Request::CreatePartitions(r) => {
                    Response::CreatePartitions(admin::create_partitions(broker, r, version).await)
                }
                Request::IncrementalAlterConfigs(r) => Response::IncrementalAlterConfigs(
                    admin::incremental_alter_configs(broker, r, version).await,
                ),
                Request::AllocateProducerIds(r) => Response::AllocateProducerIds(
                    crate::producer_ids::handle_allocate(broker, r).await,
                ),
                other => {
                    return Err(format!(
                        "{:?} is not served on the controller listener {}",
                        other_key(&other),
                        ctx.listener
                    ))
                }
            }
        }
    }))
}

fn other_key(r: &Request) -> &'static str {
    match r {
        Request::Produce(_) => "Produce",
        Request::Metadata(_) => "Metadata",
        Request::ListOffsets(_) => "ListOffsets",
        _ => "this API",
    }
}

/// KIP-919: on the controller listener DescribeCluster describes the
/// controllers (endpoint type 2): the voters and the active one.
fn describe_cluster(
    node: &Node,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let leader = node.quorum.role().borrow().leader_id;
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(node.cluster_id.clone()))
        .with_controller_id(BrokerId(leader.unwrap_or(-1)))
        .with_endpoint_type(req.endpoint_type);
    if req.endpoint_type != 2 {
        resp.error_code = ResponseError::UnsupportedEndpointType.code();
        resp.error_message = Some(sb(
            "the controller listener describes controllers (endpoint type 2)",
        ));
        return resp;
    }
    resp.brokers = node
        .config
        .controller_quorum_voters
        .iter()
        .map(|v| {
            let b = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(v.id))
                .with_host(sb(v.host.clone()))
                .with_port(i32::from(v.port));
            let _ = version;
            b
        })
        .collect();
    resp
}
