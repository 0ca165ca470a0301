//! `riffle topics`: Kafka's `kafka-topics` for creating, deleting, listing
//! and describing topics, spoken over the Kafka protocol so that it works
//! against Riffle and against Kafka brokers alike.
//!
//! - `create --topic T`: Metadata for the controller (its `controller_id`;
//!   Riffle names the active controller when it is a registered broker),
//!   then CreateTopics (versions 2-7) at that broker. Omitted
//!   `--partitions` and `--replication-factor` are sent as -1, so the
//!   controller applies `num.partitions` and `default.replication.factor`,
//!   as Kafka's tool does. `timeout_ms` is the command's `--timeout-ms`:
//!   the controller answers once the topic's records are committed.
//! - `delete --topic T`: DeleteTopics (versions 1-6; by name) at the
//!   controller, found the same way.
//! - `list`: Metadata for all topics, names sorted, internal topics
//!   included unless `--exclude-internal`.
//! - `describe [--topic T]`: Metadata for the topic (or all topics), then
//!   DescribeConfigs (topic resources) at one broker for the configs that
//!   are not defaults, printed in Kafka's layout:
//!   `Topic: T\tTopicId: ID\tPartitionCount: N\tReplicationFactor: R\tConfigs: k=v,...`
//!   and per partition `\tTopic: T\tPartition: P\tLeader: L\tReplicas: a,b\tIsr: a,b`.
//!
//! NOT_CONTROLLER (the controller moved or has not committed its
//! leadership yet), a controller that Metadata does not list or that
//! refuses connections, LEADER_NOT_AVAILABLE and the coordinator-style
//! errors are retried with a growing backoff until `--timeout-ms` runs
//! out, asking Metadata for the controller anew each time. A request that
//! fails in flight is not retried, as it may have been carried out. Any
//! other error from a broker is printed with Kafka's error name and the
//! broker's message, and the command exits with 1 (2 for a usage error). `--if-not-exists` turns
//! TOPIC_ALREADY_EXISTS, and `--if-exists` UNKNOWN_TOPIC_OR_PARTITION,
//! into success.
//!
//! Departures from Kafka's tool: `--topic` is a topic name, not a regular
//! expression; one topic per `create` and `delete`; the period/underscore
//! collision warning goes to stderr; `--alter`, `--replica-assignment`,
//! `--under-replicated-partitions` and the other partition filters,
//! `--topics-with-overrides` and `--command-config` are not supported; the
//! describe lines have no `Elr`/`LastKnownElr` fields (Metadata does not
//! carry them).
//!
//! Everything that builds requests or turns responses into text is a pure
//! function, tested below with hand-built values; [`Admin`] does the I/O.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    create_topics_request, delete_topics_request, describe_configs_request,
    describe_configs_response, metadata_response, ApiKey, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::Message;
use riffle_broker::meta_properties::kafka_uuid_string;

use crate::admin::{
    self, is_coordinator_error, is_leader_error, str_bytes, Admin, ClusterArgs,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::client::{Connection, ServerError};

/// DescribeConfigs' resource type for a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs' config source of a value nobody set (Kafka's
/// `ConfigSource.DEFAULT_CONFIG`), which `describe` leaves out as Kafka's
/// tool does (`ConfigEntry.isDefault`).
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// `riffle topics` and its options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create a topic and print `Created topic NAME.`.
    Create {
        #[arg(long)]
        topic: String,
        /// The number of partitions; without it the controller's
        /// num.partitions.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replicas per partition; without it the controller's
        /// default.replication.factor.
        #[arg(long, value_name = "R", value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config (`cleanup.policy=compact`); may be repeated.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        /// Succeed without a word if the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Delete a topic.
    Delete {
        #[arg(long)]
        topic: String,
        /// Succeed without a word if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Print the names of the topics, one per line, sorted.
    List {
        /// Leave out internal topics (`__consumer_offsets`,
        /// `__transaction_state`).
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Print a topic's (or every topic's) partitions, replicas and
    /// configs that are not defaults.
    Describe {
        /// Only this topic; without it every topic.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: print nothing (and succeed) if the topic does not
        /// exist.
        #[arg(long, requires = "topic")]
        if_exists: bool,
        /// Leave out internal topics.
        #[arg(long)]
        exclude_internal: bool,
    },
}

/// A `--config` value: `key=value`, split at the first `=`; the value may
/// be empty, the key may not.
pub fn parse_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "invalid topic config '{text}': configs must be in the format \"key=value\""
        )),
    }
}

/// Whether Kafka's tool would warn that `topic` may collide in metric
/// names with another topic: it has a period or an underscore.
fn may_collide(topic: &str) -> bool {
    topic.contains('.') || topic.contains('_')
}

/// A `timeout_ms` for CreateTopics and DeleteTopics.
fn timeout_ms(admin: &Admin) -> i32 {
    i32::try_from(admin.request_timeout().as_millis()).unwrap_or(i32::MAX)
}

/// CreateTopics for one topic; `None` asks for the controller's defaults
/// (-1).
pub fn create_request(
    topic: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
    timeout_ms: i32,
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_validate_only(false)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_num_partitions(partitions.unwrap_or(-1))
            .with_replication_factor(replication_factor.unwrap_or(-1))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            )])
}

/// The outcome for `topic` in a CreateTopics response: an error for a
/// response that does not answer for it, the server's error if any.
pub fn create_outcome(response: &CreateTopicsResponse, topic: &str) -> anyhow::Result<()> {
    let Some(t) = response.topics.iter().find(|t| t.name.0.as_str() == topic) else {
        bail!("CreateTopics did not answer for topic '{topic}'");
    };
    admin::server_error(t.error_code, t.error_message.as_ref())
}

/// DeleteTopics for one topic by name: in `topics` from version 6 (which
/// can also name topics by id), in `topic_names` before.
pub fn delete_request(topic: &str, version: i16, timeout_ms: i32) -> DeleteTopicsRequest {
    let name = TopicName(str_bytes(topic));
    let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
    if version >= 6 {
        request.with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(name))
        ])
    } else {
        request.with_topic_names(vec![name])
    }
}

/// The outcome for `topic` in a DeleteTopics response.
pub fn delete_outcome(response: &DeleteTopicsResponse, topic: &str) -> anyhow::Result<()> {
    let Some(t) = response
        .responses
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        bail!("DeleteTopics did not answer for topic '{topic}'");
    };
    admin::server_error(t.error_code, t.error_message.as_ref())
}

/// The names of the topics in a Metadata response, sorted, without the
/// internal ones if `exclude_internal`.
pub fn topic_names(metadata: &MetadataResponse, exclude_internal: bool) -> Vec<String> {
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter(|t| !(exclude_internal && t.is_internal))
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One partition as `describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as `describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// Kafka's text form of the topic id (all `A`s for the zero id of a
    /// broker that does not know topic ids).
    pub topic_id: String,
    /// Sorted by partition.
    pub partitions: Vec<PartitionDescription>,
    /// The configs that are not defaults, sorted by name.
    pub configs: Vec<(String, String)>,
}

impl TopicDescription {
    /// The replication factor as Kafka's tool reports it: the first
    /// partition's replica count.
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// A topic of a Metadata response as `describe` prints it (configs not
/// yet known), or its error.
pub fn topic_description(
    topic: &metadata_response::MetadataResponseTopic,
) -> Result<TopicDescription, ServerError> {
    if let Some(e) = ServerError::from_code(topic.error_code, None) {
        return Err(e);
    }
    let name = topic
        .name
        .as_ref()
        .map(|n| n.0.to_string())
        .unwrap_or_default();
    let ids = |nodes: &[kafka_protocol::messages::BrokerId]| nodes.iter().map(|b| b.0).collect();
    let mut partitions: Vec<PartitionDescription> = topic
        .partitions
        .iter()
        .map(|p| PartitionDescription {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: ids(&p.replica_nodes),
            isr: ids(&p.isr_nodes),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicDescription {
        name,
        topic_id: kafka_uuid_string(&topic.topic_id),
        partitions,
        configs: Vec::new(),
    })
}

/// The configs of one topic in a DescribeConfigs response that are not
/// defaults, sorted by name; a value the broker hides (a sensitive one)
/// shows as `null`, as in Kafka's tool.
pub fn topic_configs(
    response: &DescribeConfigsResponse,
    topic: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(r) = response
        .results
        .iter()
        .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == topic)
    else {
        bail!("DescribeConfigs did not answer for topic '{topic}'");
    };
    admin::server_error(r.error_code, r.error_message.as_ref())?;
    let mut configs: Vec<(String, String)> = r
        .configs
        .iter()
        .filter(
            |c: &&describe_configs_response::DescribeConfigsResourceResult| {
                c.config_source != CONFIG_SOURCE_DEFAULT
            },
        )
        .map(|c| {
            let value = c.value.as_ref().map_or("null", |v| v.as_str());
            (c.name.to_string(), value.to_string())
        })
        .collect();
    configs.sort();
    Ok(configs)
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// A topic in Kafka's `kafka-topics --describe` layout
/// (`TopicCommand.TopicDescription` and `PartitionDescription`): a topic
/// line, then a tab-indented line per partition; a partition without a
/// leader shows `Leader: none`.
pub fn format_description(d: &TopicDescription) -> String {
    let configs: Vec<String> = d.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        d.name,
        d.topic_id,
        d.partitions.len(),
        d.replication_factor(),
        configs.join(",")
    );
    for p in &d.partitions {
        let leader = if p.leader < 0 {
            "none".to_string()
        } else {
            p.leader.to_string()
        };
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\n",
            d.name,
            p.partition,
            join(&p.replicas),
            join(&p.isr)
        ));
    }
    out
}

/// Whether `e` carries Kafka error `code`.
fn has_code(e: &anyhow::Error, code: i16) -> bool {
    e.downcast_ref::<ServerError>()
        .is_some_and(|s| s.code == code)
}

/// The broker Metadata names as the controller cannot be asked: Metadata
/// does not list it, as while a cluster starts, or it does not accept
/// connections, as when it has just stopped and the quorum has not elected
/// another yet. Retriable like NOT_CONTROLLER: nothing was sent to it.
#[derive(Debug)]
struct ControllerUnreachable(String);

impl fmt::Display for ControllerUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no controller to ask: {}", self.0)
    }
}

impl std::error::Error for ControllerUnreachable {}

/// Whether `e` is an error that asking again (the controller, leader or
/// coordinator found anew) may cure. A request that failed in flight is
/// not retried: a CreateTopics or DeleteTopics may have been carried out.
fn is_retriable(e: &anyhow::Error) -> bool {
    has_code(e, ResponseError::NotController.code())
        || e.downcast_ref::<ControllerUnreachable>().is_some()
        || is_coordinator_error(e)
        || is_leader_error(e)
}

/// What `riffle topics` asks of the cluster.
impl Admin {
    /// The broker Metadata names as the controller, which admin requests
    /// go to, once a connection to it is open.
    async fn controller(&mut self) -> anyhow::Result<i32> {
        let metadata = self.metadata(&[]).await?;
        let id = metadata.controller_id.0;
        if id < 0 || !self.knows_broker(id) {
            return Err(ControllerUnreachable(format!(
                "Metadata names controller {id}, which is not among the brokers it lists"
            ))
            .into());
        }
        if let Err(e) = self.broker(id).await {
            return Err(ControllerUnreachable(format!("{e:#}")).into());
        }
        Ok(id)
    }

    /// Runs `op` at the controller, asking Metadata for the controller
    /// again while `op` fails with NOT_CONTROLLER (it moved, or has not
    /// committed its leadership yet) or the controller cannot be reached.
    async fn at_controller<T>(
        &mut self,
        mut op: impl AsyncFnMut(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.retrying(is_retriable, async |admin| {
            let controller = admin.controller().await?;
            admin
                .at_broker(controller, is_retriable, async |conn| op(conn).await)
                .await
        })
        .await
    }

    /// CreateTopics at the controller.
    async fn create_topic(
        &mut self,
        request: &CreateTopicsRequest,
        topic: &str,
    ) -> anyhow::Result<()> {
        self.at_controller(async |conn| {
            let version = conn.version_for(
                ApiKey::CreateTopics,
                (
                    CreateTopicsRequest::VERSIONS.min,
                    CreateTopicsRequest::VERSIONS.max,
                ),
            )?;
            let response: CreateTopicsResponse =
                conn.send(ApiKey::CreateTopics, version, request).await?;
            create_outcome(&response, topic)
        })
        .await
    }

    /// DeleteTopics at the controller.
    async fn delete_topic(&mut self, topic: &str) -> anyhow::Result<()> {
        let timeout_ms = timeout_ms(self);
        self.at_controller(async |conn| {
            let version = conn.version_for(
                ApiKey::DeleteTopics,
                (
                    DeleteTopicsRequest::VERSIONS.min,
                    DeleteTopicsRequest::VERSIONS.max,
                ),
            )?;
            let request = delete_request(topic, version, timeout_ms);
            let response: DeleteTopicsResponse =
                conn.send(ApiKey::DeleteTopics, version, &request).await?;
            delete_outcome(&response, topic)
        })
        .await
    }

    /// The descriptions of `topic` (or every topic), configs included.
    /// A named topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION; a
    /// topic of the whole list that goes away meanwhile is left out.
    async fn describe_topics(
        &mut self,
        topic: Option<&str>,
        exclude_internal: bool,
    ) -> anyhow::Result<Vec<TopicDescription>> {
        self.retrying(is_retriable, async |admin| {
            admin.describe_topics_once(topic, exclude_internal).await
        })
        .await
    }

    async fn describe_topics_once(
        &mut self,
        topic: Option<&str>,
        exclude_internal: bool,
    ) -> anyhow::Result<Vec<TopicDescription>> {
        let metadata = match topic {
            Some(t) => self.metadata(&[t]).await?,
            None => self.metadata_all_topics().await?,
        };
        let mut descriptions = Vec::new();
        for t in &metadata.topics {
            if exclude_internal && t.is_internal {
                continue;
            }
            match topic_description(t) {
                Ok(d) => descriptions.push(d),
                Err(e) if topic.is_some() => return Err(e.into()),
                Err(e) if e.code == UNKNOWN_TOPIC_OR_PARTITION => {}
                Err(e) => {
                    let name = t.name.as_ref().map_or("", |n| n.0.as_str());
                    return Err(anyhow::Error::new(e).context(format!("topic '{name}'")));
                }
            }
        }
        if let Some(t) = topic {
            if !descriptions.iter().any(|d| d.name == t) && !exclude_internal {
                bail!("Metadata did not answer for topic '{t}'");
            }
        }
        descriptions.sort_by(|a, b| a.name.cmp(&b.name));
        if descriptions.is_empty() {
            return Ok(descriptions);
        }
        // Any broker answers DescribeConfigs for topics; the lowest id
        // keeps repeated runs on the same one.
        let Some(broker) = metadata.brokers.iter().map(|b| b.node_id.0).min() else {
            bail!("Metadata lists no broker to ask for the topics' configs");
        };
        let request = DescribeConfigsRequest::default()
            .with_include_synonyms(false)
            .with_resources(
                descriptions
                    .iter()
                    .map(|d| {
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(RESOURCE_TOPIC)
                            .with_resource_name(str_bytes(&d.name))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            );
        let response: DescribeConfigsResponse = self
            .at_broker(broker, is_retriable, async |conn| {
                let version = conn.version_for(
                    ApiKey::DescribeConfigs,
                    (
                        DescribeConfigsRequest::VERSIONS.min,
                        DescribeConfigsRequest::VERSIONS.max,
                    ),
                )?;
                conn.send(ApiKey::DescribeConfigs, version, &request).await
            })
            .await?;
        for d in &mut descriptions {
            d.configs = topic_configs(&response, &d.name)
                .with_context(|| format!("the configs of topic '{}'", d.name))?;
        }
        Ok(descriptions)
    }
}

/// Runs `riffle topics`; the exit code is 1 for an operational failure
/// (returned) and 2 for a usage error.
pub fn run(args: Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let command = args.command;
    admin::run(&args.cluster, async move |admin| {
        execute(admin, command, out).await
    })
}

async fn execute(
    admin: &mut Admin,
    command: TopicsCommand,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match command {
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            if may_collide(&topic) {
                eprintln!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
            }
            let request = create_request(
                &topic,
                partitions,
                replication_factor,
                &configs,
                timeout_ms(admin),
            );
            match admin.create_topic(&request, &topic).await {
                Ok(()) => writeln!(out, "Created topic {topic}.")?,
                Err(e)
                    if if_not_exists && has_code(&e, ResponseError::TopicAlreadyExists.code()) => {}
                Err(e) => return Err(e.context(format!("cannot create topic '{topic}'"))),
            }
        }
        TopicsCommand::Delete { topic, if_exists } => match admin.delete_topic(&topic).await {
            Ok(()) => {}
            Err(e) if if_exists && has_code(&e, UNKNOWN_TOPIC_OR_PARTITION) => {}
            Err(e) => return Err(e.context(format!("cannot delete topic '{topic}'"))),
        },
        TopicsCommand::List { exclude_internal } => {
            let metadata = admin
                .retrying(is_retriable, async |admin| {
                    admin.metadata_all_topics().await
                })
                .await
                .context("cannot list the topics")?;
            for name in topic_names(&metadata, exclude_internal) {
                writeln!(out, "{name}")?;
            }
        }
        TopicsCommand::Describe {
            topic,
            if_exists,
            exclude_internal,
        } => {
            let descriptions = match admin
                .describe_topics(topic.as_deref(), exclude_internal)
                .await
            {
                Ok(d) => d,
                Err(e) if if_exists && has_code(&e, UNKNOWN_TOPIC_OR_PARTITION) => Vec::new(),
                Err(e) => {
                    let what =
                        topic.map_or_else(|| "the topics".to_string(), |t| format!("topic '{t}'"));
                    return Err(e.context(format!("cannot describe {what}")));
                }
            };
            for d in &descriptions {
                out.write_all(format_description(d).as_bytes())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{create_topics_response, delete_topics_response, BrokerId};
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn configs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_config("cleanup.policy=compact").unwrap(),
            ("cleanup.policy".to_string(), "compact".to_string())
        );
        assert_eq!(
            parse_config(" a = b=c ").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(
            parse_config("k=").unwrap(),
            ("k".to_string(), String::new())
        );
        assert!(parse_config("no-equals").is_err());
        assert!(parse_config("=v").is_err());
    }

    #[test]
    fn omitted_partitions_and_replication_factor_ask_for_the_defaults() {
        // Kafka's TopicCommand sends -1 for both, and the controller
        // applies num.partitions and default.replication.factor.
        let r = create_request("t", None, None, &[], 30_000);
        let t = &r.topics[0];
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
        assert_eq!(r.timeout_ms, 30_000);
        assert!(t.configs.is_empty());

        let configs = [("retention.ms".to_string(), "1000".to_string())];
        let r = create_request("t", Some(3), Some(2), &configs, 5);
        let t = &r.topics[0];
        assert_eq!((t.num_partitions, t.replication_factor), (3, 2));
        assert_eq!(t.configs[0].name.as_str(), "retention.ms");
        assert_eq!(t.configs[0].value.as_deref(), Some("1000"));
    }

    #[test]
    fn requests_encode_at_every_version_the_broker_serves() {
        // riffle-protocol's table: CreateTopics 2-7, DeleteTopics 1-6.
        for version in 2..=7 {
            let mut buf = bytes::BytesMut::new();
            create_request("t", Some(1), None, &[], 1)
                .encode(&mut buf, version)
                .unwrap();
            let back = CreateTopicsRequest::decode(&mut buf.freeze(), version).unwrap();
            assert_eq!(back.topics[0].name.0.as_str(), "t");
        }
        for version in 1..=6 {
            let mut buf = bytes::BytesMut::new();
            delete_request("t", version, 1)
                .encode(&mut buf, version)
                .unwrap();
            let back = DeleteTopicsRequest::decode(&mut buf.freeze(), version).unwrap();
            let names: Vec<&str> = back
                .topic_names
                .iter()
                .map(|n| n.0.as_str())
                .chain(
                    back.topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str())),
                )
                .collect();
            assert_eq!(names, ["t"], "version {version}");
        }
    }

    #[test]
    fn create_and_delete_results_carry_the_servers_error_and_message() {
        let response = CreateTopicsResponse::default().with_topics(vec![
            create_topics_response::CreatableTopicResult::default()
                .with_name(TopicName(str_bytes("t")))
                .with_error_code(ResponseError::TopicAlreadyExists.code())
                .with_error_message(Some(str_bytes("Topic 't' already exists."))),
        ]);
        let e = create_outcome(&response, "t").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        assert!(has_code(&e, ResponseError::TopicAlreadyExists.code()));
        assert!(!is_retriable(&e));
        assert!(create_outcome(&response, "other").is_err());

        let response = DeleteTopicsResponse::default().with_responses(vec![
            delete_topics_response::DeletableTopicResult::default()
                .with_name(Some(TopicName(str_bytes("t"))))
                .with_error_code(ResponseError::NotController.code()),
        ]);
        let e = delete_outcome(&response, "t").unwrap_err();
        assert!(is_retriable(&e.context("deleting")));
        let ok = DeleteTopicsResponse::default()
            .with_responses(vec![delete_topics_response::DeletableTopicResult::default(
            )
            .with_name(Some(TopicName(str_bytes("t"))))]);
        assert!(delete_outcome(&ok, "t").is_ok());

        let unreachable = anyhow::Error::new(ControllerUnreachable("refused".into()));
        assert!(is_retriable(&unreachable.context("creating")));
        assert!(!is_retriable(&anyhow::anyhow!("closed the connection")));
    }

    fn metadata_topic(name: &str, internal: bool) -> metadata_response::MetadataResponseTopic {
        metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_is_internal(internal)
    }

    #[test]
    fn list_sorts_names_and_shows_internal_topics_unless_excluded() {
        let metadata = MetadataResponse::default().with_topics(vec![
            metadata_topic("orders", false),
            metadata_topic("__consumer_offsets", true),
            metadata_topic("audit", false),
        ]);
        assert_eq!(
            topic_names(&metadata, false),
            ["__consumer_offsets", "audit", "orders"]
        );
        assert_eq!(topic_names(&metadata, true), ["audit", "orders"]);
    }

    #[test]
    fn describe_prints_kafkas_lines_with_partitions_in_order() {
        let partition = |p: i32, leader: i32, replicas: &[i32], isr: &[i32]| {
            metadata_response::MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(isr.iter().copied().map(BrokerId).collect())
        };
        let topic = metadata_topic("orders", false)
            .with_topic_id(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            ))
            .with_partitions(vec![
                partition(1, -1, &[2, 1], &[]),
                partition(0, 1, &[1, 2], &[1, 2]),
            ]);
        let mut d = topic_description(&topic).unwrap();
        d.configs = vec![("cleanup.policy".to_string(), "compact".to_string())];
        assert_eq!(
            format_description(&d),
            "Topic: orders\tTopicId: ASNFZ4mrze8BI0VniavN7w\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: cleanup.policy=compact\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1,2\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,1\tIsr: \n"
        );

        let missing = metadata_topic("gone", false).with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
        let e = topic_description(&missing).unwrap_err();
        assert_eq!(e.to_string(), "UNKNOWN_TOPIC_OR_PARTITION");
    }

    #[test]
    fn describe_shows_only_configs_that_are_not_defaults() {
        let config = |name: &str, value: Option<&str>, source: i8| {
            describe_configs_response::DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(value.map(str_bytes))
                .with_config_source(source)
        };
        let response = DescribeConfigsResponse::default().with_results(vec![
            describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes("orders"))
                .with_configs(vec![
                    config("segment.bytes", Some("1073741824"), CONFIG_SOURCE_DEFAULT),
                    config("retention.ms", Some("1000"), 1),
                    config("cleanup.policy", Some("compact"), 1),
                    config("log.secret", None, 4),
                ]),
            describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes("gone"))
                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
        ]);
        assert_eq!(
            topic_configs(&response, "orders").unwrap(),
            vec![
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("log.secret".to_string(), "null".to_string()),
                ("retention.ms".to_string(), "1000".to_string()),
            ]
        );
        assert!(topic_configs(&response, "gone").is_err());
        assert!(topic_configs(&response, "never-asked").is_err());
    }

    #[test]
    fn names_with_periods_or_underscores_get_kafkas_warning() {
        assert!(may_collide("a.b"));
        assert!(may_collide("a_b"));
        assert!(!may_collide("a-b"));
    }
}
