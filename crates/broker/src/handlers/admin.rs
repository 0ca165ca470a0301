//! Topic and config administration: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.
//!
//! Validation and record generation live in the controller
//! (`riffle_metadata::Controller`); these handlers commit its records and
//! answer, or answer every resource with the error when the commit failed.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::broker::Broker;
use crate::config::{self, DescribedConfig};
use crate::error::BrokerError;
use crate::util::sb;

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

fn commit_error(e: &BrokerError) -> (ResponseError, String) {
    warn!("admin request failed: {e}");
    (e.error_code(), e.to_string())
}

fn broker_validator(key: &str, value: &str) -> Result<(), String> {
    config::validate_dynamic_broker_config(key, value)
}

pub async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    match broker
        .controller_write(|c, image| c.create_topics(image, &req, version))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = commit_error(&e);
            CreateTopicsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        let mut r = CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code.code())
                            .with_num_partitions(-1)
                            .with_replication_factor(-1);
                        r.error_message = Some(sb(message.clone()));
                        r
                    })
                    .collect(),
            )
        }
    }
}

pub async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let failed = |code: ResponseError, message: Option<String>| {
        let mut results: Vec<DeletableTopicResult> = req
            .topic_names
            .iter()
            .map(|n| {
                DeletableTopicResult::default()
                    .with_name(Some(n.clone()))
                    .with_error_code(code.code())
            })
            .collect();
        results.extend(req.topics.iter().map(|t| {
            let mut r = DeletableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code.code());
            if version >= 6 {
                r.topic_id = t.topic_id;
            }
            r
        }));
        if version >= 5 {
            for r in &mut results {
                r.error_message = message.clone().map(sb);
            }
        }
        DeleteTopicsResponse::default().with_responses(results)
    };
    if !broker.config.delete_topic_enable {
        return failed(
            ResponseError::TopicDeletionDisabled,
            Some("Topic deletion is disabled (delete.topic.enable=false)".into()),
        );
    }
    match broker
        .controller_write(|c, image| c.delete_topics(image, &req, version))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = commit_error(&e);
            failed(code, Some(message))
        }
    }
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
    version: i16,
) -> CreatePartitionsResponse {
    match broker
        .controller_write(|c, image| c.create_partitions(image, &req, version))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = commit_error(&e);
            CreatePartitionsResponse::default().with_results(
                req.topics
                    .iter()
                    .map(|t| {
                        CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code.code())
                            .with_error_message(Some(sb(message.clone())))
                    })
                    .collect(),
            )
        }
    }
}

pub async fn alter_configs(
    broker: &Broker,
    req: AlterConfigsRequest,
    version: i16,
) -> AlterConfigsResponse {
    match broker
        .controller_write(|c, image| c.alter_configs(image, &req, version, &broker_validator))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = commit_error(&e);
            AlterConfigsResponse::default().with_responses(
                req.resources
                    .iter()
                    .map(|r| {
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name.clone())
                            .with_error_code(code.code())
                            .with_error_message(Some(sb(message.clone())))
                    })
                    .collect(),
            )
        }
    }
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    version: i16,
) -> IncrementalAlterConfigsResponse {
    match broker
        .controller_write(|c, image| {
            c.incremental_alter_configs(image, &req, version, &broker_validator)
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = commit_error(&e);
            IncrementalAlterConfigsResponse::default().with_responses(
                req.resources
                    .iter()
                    .map(|r| {
                        IncrementalResourceResponse::default()
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name.clone())
                            .with_error_code(code.code())
                            .with_error_message(Some(sb(message.clone())))
                    })
                    .collect(),
            )
        }
    }
}

fn to_wire(
    c: DescribedConfig,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(sb(c.name))
        .with_value(c.value.map(sb))
        .with_read_only(c.read_only)
        .with_is_sensitive(c.is_sensitive)
        .with_config_source(c.source as i8);
    if include_synonyms {
        r.synonyms = c
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(sb(s.name))
                    .with_value(s.value.map(sb))
                    .with_source(s.source as i8)
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = c.config_type as i8;
        if include_documentation {
            r.documentation = Some(sb(c.documentation));
        }
    }
    r
}

pub fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = broker.image();
    let effective = broker.effective_config();
    let results = req
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let described: Result<Vec<DescribedConfig>, (ResponseError, String)> =
                match res.resource_type {
                    RESOURCE_TOPIC => match image.topic(&name) {
                        Some(_) => Ok(effective.describe_topic_config(&image.topic_config(&name))),
                        None => Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("Topic '{name}' does not exist"),
                        )),
                    },
                    RESOURCE_BROKER => {
                        let all = broker.config.describe_with_dynamic(
                            &image.broker_config(Some(broker.config.node_id)),
                            &image.broker_config(None),
                        );
                        if name.is_empty() {
                            // The cluster-wide resource lists only the
                            // dynamic defaults set on it, as Kafka does.
                            Ok(all
                                .into_iter()
                                .filter(|c| c.source == config::ConfigSource::DynamicDefaultBrokerConfig)
                                .collect())
                        } else if name == broker.config.node_id.to_string() {
                            Ok(all)
                        } else {
                            Err((
                                ResponseError::InvalidRequest,
                                format!(
                                    "Unexpected broker id, expected {} or empty string, but received {name}",
                                    broker.config.node_id
                                ),
                            ))
                        }
                    }
                    other => Err((
                        ResponseError::InvalidRequest,
                        format!("Unsupported resource type {other}"),
                    )),
                };
            match described {
                Ok(configs) => {
                    let keys = res.configuration_keys.as_ref();
                    base.with_configs(
                        configs
                            .into_iter()
                            .filter(|c| {
                                keys.is_none_or(|ks| ks.iter().any(|k| k.as_str() == c.name))
                            })
                            .map(|c| {
                                to_wire(c, req.include_synonyms, req.include_documentation, version)
                            })
                            .collect(),
                    )
                }
                Err((code, message)) => base
                    .with_error_code(code.code())
                    .with_error_message(Some(sb(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
