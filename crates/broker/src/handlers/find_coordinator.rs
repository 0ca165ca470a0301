//! FindCoordinator: the group coordinator of a group id (key type 0) is
//! the leader of its `__consumer_offsets` partition, the transaction
//! coordinator of a transactional id (key type 1) the leader of its
//! `__transaction_state` partition. Either topic is created on first use,
//! through the active controller.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::info;

use super::ConnContext;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::group::records::partition_for;
use crate::txn::coordinator::TXN_TOPIC;
use crate::util::sb;

/// How an internal topic is created.
struct InternalTopic {
    name: &'static str,
    partitions: i32,
    replication_factor: i16,
    configs: Vec<(&'static str, String)>,
}

fn offsets_topic(broker: &Broker) -> InternalTopic {
    let config = broker.effective_config();
    InternalTopic {
        name: OFFSETS_TOPIC,
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("compression.type", "producer".into()),
            (
                "segment.bytes",
                config.offsets_topic_segment_bytes.to_string(),
            ),
        ],
    }
}

/// Kafka's settings for `__transaction_state`.
fn transaction_topic(broker: &Broker) -> InternalTopic {
    let config = broker.effective_config();
    InternalTopic {
        name: TXN_TOPIC,
        partitions: config.transaction_state_log_num_partitions,
        replication_factor: config.transaction_state_log_replication_factor,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("compression.type", "uncompressed".into()),
            ("unclean.leader.election.enable", "false".into()),
            (
                "min.insync.replicas",
                config.transaction_state_log_min_isr.to_string(),
            ),
            (
                "segment.bytes",
                config.transaction_state_log_segment_bytes.to_string(),
            ),
        ],
    }
}

/// The leader of `key`'s partition of `topic`, and its endpoint on the
/// listener the request came in on; creates the topic on first use.
async fn coordinator_for(
    broker: &Broker,
    ctx: &ConnContext,
    key: &str,
    topic: InternalTopic,
) -> Result<(i32, String, i32), (ResponseError, String)> {
    let name = topic.name;
    let mut image = broker.image();
    if image.topic(name).is_none() {
        create_internal_topic(broker, topic).await?;
        image = broker.image();
    }
    let partitions = image.topic(name).map_or(0, |t| t.partitions.len() as i32);
    if partitions == 0 {
        return Err((
            ResponseError::CoordinatorNotAvailable,
            format!("{name} has no partitions yet"),
        ));
    }
    let partition = partition_for(key, partitions);
    let leader = image
        .topic(name)
        .and_then(|t| t.partitions.get(&partition))
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or_else(|| {
            (
                ResponseError::CoordinatorNotAvailable,
                format!("{name} partition {partition} has no leader"),
            )
        })?;
    let endpoint = image
        .broker(leader)
        .and_then(|b| b.endpoints.iter().find(|e| e.name == ctx.listener).cloned())
        .ok_or_else(|| {
            (
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "the leader of {name}-{partition} (node {leader}) has no {} listener",
                    ctx.listener
                ),
            )
        })?;
    Ok((leader, endpoint.host, endpoint.port as i32))
}

/// Creates an internal topic, its replication factor capped by the
/// brokers registered (and by what the controller can place).
async fn create_internal_topic(
    broker: &Broker,
    topic: InternalTopic,
) -> Result<(), (ResponseError, String)> {
    let name = topic.name;
    let brokers = broker.image().brokers().count().max(1);
    let rf = (topic.replication_factor.max(1) as usize)
        .min(brokers)
        .min(riffle_metadata::controller::REPLICAS_MAX) as i16;
    let creatable = CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(topic.partitions)
        .with_replication_factor(rf)
        .with_configs(
            topic
                .configs
                .into_iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default().with_topics(vec![creatable]);
    let outcome = broker.create_topics_via_controller(req).await;
    let unavailable = |m: String| (ResponseError::CoordinatorNotAvailable, m);
    match outcome {
        Ok(resp) => match resp.topics.first() {
            Some(t) if t.error_code == 0 => {
                info!(
                    partitions = topic.partitions,
                    replication_factor = rf,
                    "created {name}"
                );
                Ok(())
            }
            Some(t) if t.error_code == ResponseError::TopicAlreadyExists.code() => Ok(()),
            Some(t) => Err(unavailable(format!(
                "creating {name} failed: {}",
                t.error_message.as_deref().unwrap_or("")
            ))),
            None => Err(unavailable(format!("creating {name} failed"))),
        },
        Err(BrokerError::NotController(m)) => Err(unavailable(format!(
            "{name} does not exist yet and could not be created: {m}"
        ))),
        Err(e) => Err(unavailable(format!("creating {name}: {e}"))),
    }
}

async fn find_one(
    broker: &Broker,
    ctx: &ConnContext,
    key: &str,
    key_type: i8,
) -> Result<(i32, String, i32), (ResponseError, String)> {
    match key_type {
        0 => coordinator_for(broker, ctx, key, offsets_topic(broker)).await,
        1 if key.is_empty() => Err((
            ResponseError::InvalidRequest,
            "an empty transactional id has no coordinator".into(),
        )),
        1 => coordinator_for(broker, ctx, key, transaction_topic(broker)).await,
        t => Err((
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {t}"),
        )),
    }
}

pub async fn find_coordinator(
    broker: &Broker,
    ctx: &ConnContext,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version < 4 {
        let mut resp = FindCoordinatorResponse::default();
        match find_one(broker, ctx, req.key.as_str(), req.key_type).await {
            Ok((id, host, port)) => {
                resp.node_id = BrokerId(id);
                resp.host = sb(host);
                resp.port = port;
            }
            Err((e, m)) => {
                resp.error_code = e.code();
                resp.error_message = (version >= 1).then(|| sb(m));
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
        }
        return resp;
    }
    let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
    for key in &req.coordinator_keys {
        let c = match find_one(broker, ctx, key.as_str(), req.key_type).await {
            Ok((id, host, port)) => FoundCoordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(port),
            Err((e, m)) => FoundCoordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(e.code())
                .with_error_message(Some(sb(m))),
        };
        coordinators.push(c);
    }
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
