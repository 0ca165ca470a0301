//! Metadata and DescribeCluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_metadata::{MetadataImage, TopicImage};
use tracing::{info, warn};

use super::{is_internal_topic, ConnContext};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::util::sb;
use kafka_protocol::messages::create_topics_request::CreatableTopic;

/// Brokers with an endpoint on the listener the request came in on.
fn endpoints(
    image: &MetadataImage,
    listener: &str,
) -> Vec<(i32, String, u16, Option<String>, bool)> {
    image
        .brokers()
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.name == listener)?;
            Some((b.id, e.host.clone(), e.port, b.rack.clone(), b.fenced))
        })
        .collect()
}

/// Auto-creates `name` with the controller's defaults: by this node's
/// controller when it is the active one, otherwise forwarded to the active
/// controller as a CreateTopics request.
async fn auto_create(
    broker: &Broker,
    name: &str,
) -> Result<Result<(), (i16, String)>, BrokerError> {
    if broker.controller_id() == Some(broker.config.node_id) {
        return broker
            .controller_write(|c, img| c.auto_create_topic(img, name))
            .await;
    }
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(sb(name.to_string())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)]);
    let response = broker.create_topics_via_controller(req).await?;
    Ok(match response.topics.first() {
        Some(t) if t.error_code == 0 => Ok(()),
        Some(t) => Err((
            t.error_code,
            t.error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )),
        None => Err((
            ResponseError::UnknownServerError.code(),
            "no result for the topic".to_string(),
        )),
    })
}

fn topic_metadata(t: &TopicImage, version: i16) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(t.name.clone()))))
        .with_is_internal(is_internal_topic(&t.name))
        .with_partitions(
            t.partitions
                .iter()
                .map(|(&p, part)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(part.leader))
                        .with_leader_epoch(part.leader_epoch)
                        .with_replica_nodes(part.replicas.iter().map(|&r| BrokerId(r)).collect())
                        .with_isr_nodes(part.isr.iter().map(|&r| BrokerId(r)).collect())
                })
                .collect(),
        );
    if version >= 10 {
        out.topic_id = t.id;
    }
    out
}

fn error_topic(name: Option<String>, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(sb(n))))
        .with_error_code(code.code())
}

pub async fn handle(
    broker: &Broker,
    ctx: &ConnContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut image = broker.image();
    let mut topics = Vec::new();
    // Metadata v0 asks for every topic with an empty list.
    let all_topics =
        req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    match &req.topics {
        _ if all_topics => {
            topics.extend(image.topics().map(|t| topic_metadata(t, version)));
        }
        None => {}
        Some(requested) => {
            // Metadata v1-3 always allow auto-creation; v4+ say so.
            let allow_auto = version < 4 || req.allow_auto_topic_creation;
            for t in requested {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                let Some(name) = name else {
                    // v10+: lookup by id.
                    match image.topic_by_id(t.topic_id) {
                        Some(topic) => topics.push(topic_metadata(topic, version)),
                        None => topics.push(error_topic(None, ResponseError::UnknownTopicId)),
                    }
                    continue;
                };
                if let Some(topic) = image.topic(&name) {
                    topics.push(topic_metadata(topic, version));
                    continue;
                }
                let auto = allow_auto
                    && broker.config.auto_create_topics_enable
                    && !is_internal_topic(&name);
                if !auto {
                    topics.push(error_topic(
                        Some(name),
                        ResponseError::UnknownTopicOrPartition,
                    ));
                    continue;
                }
                let outcome = auto_create(broker, &name).await;
                match outcome {
                    Ok(Ok(())) => {
                        info!(topic = %name, "auto-created topic");
                        image = broker.image();
                        match image.topic(&name) {
                            Some(topic) => topics.push(topic_metadata(topic, version)),
                            None => topics
                                .push(error_topic(Some(name), ResponseError::LeaderNotAvailable)),
                        }
                    }
                    Ok(Err((code, _message))) => {
                        let code = ResponseError::try_from_code(code)
                            .unwrap_or(ResponseError::UnknownServerError);
                        // A topic created concurrently is simply there now.
                        image = broker.image();
                        match image.topic(&name) {
                            Some(topic) => topics.push(topic_metadata(topic, version)),
                            None => topics.push(error_topic(Some(name), code)),
                        }
                    }
                    Err(e) => {
                        warn!(topic = %name, "auto-creation failed: {e}");
                        topics.push(error_topic(Some(name), ResponseError::LeaderNotAvailable));
                    }
                }
            }
        }
    }
    let brokers = endpoints(&image, &ctx.listener)
        .into_iter()
        .filter(|b| !b.4)
        .map(|(id, host, port, rack, _)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(i32::from(port))
                .with_rack(rack.map(sb))
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        // Clients send admin requests to the controller: the quorum
        // leader when it is a registered broker, else this broker (which
        // answers NOT_CONTROLLER, and the client refreshes).
        let leader = broker
            .controller_id()
            .filter(|id| image.broker(*id).is_some_and(|b| !b.fenced));
        resp.controller_id = BrokerId(leader.unwrap_or(broker.config.node_id));
    }
    if version >= 2 {
        resp.cluster_id = Some(sb(broker.cluster_id.clone()));
    }
    resp
}

pub fn describe_cluster(
    broker: &Broker,
    ctx: &ConnContext,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let image = broker.image();
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(
            broker
                .controller_id()
                .filter(|id| image.broker(*id).is_some())
                .unwrap_or(broker.config.node_id),
        ));
    // Endpoint type 2 asks for controllers (KIP-919): brokers refuse it,
    // the controller listener answers it.
    if version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type == 2 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.error_message = Some(sb(
                "a broker listener describes brokers; send endpoint type 2 to a controller listener (--bootstrap-controller)",
            ));
            return resp;
        } else if req.endpoint_type != 1 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            return resp;
        }
    }
    let include_fenced = version >= 2 && req.include_fenced_brokers;
    resp.brokers = endpoints(&image, &ctx.listener)
        .into_iter()
        .filter(|b| include_fenced || !b.4)
        .map(|(id, host, port, rack, fenced)| {
            let mut b = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(i32::from(port))
                .with_rack(rack.map(sb));
            if version >= 2 {
                b.is_fenced = fenced;
            }
            b
        })
        .collect();
    resp
}
