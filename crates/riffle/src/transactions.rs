//! `riffle transactions`: Kafka's `kafka-transactions` for inspecting
//! transactional and idempotent producers, spoken over the Kafka protocol
//! so that it works against Riffle and against Kafka brokers alike.
//!
//! - `list`: Metadata for the brokers, then ListTransactions to each broker
//!   (every broker coordinates the transactional ids of the
//!   `__transaction_state` partitions it leads), one row per transactional
//!   id with the broker that answered as its coordinator.
//! - `describe --transactional-id ID`: FindCoordinator (key type 1,
//!   transaction), then DescribeTransactions at the coordinator.
//! - `describe-producers --topic T --partition P`: DescribeProducers (API
//!   61) at the partition's leader (or `--broker-id`), one row per active
//!   producer with its epoch, last sequence and the start offset of its
//!   open transaction.
//!
//! Output is Kafka's: every cell padded to its column's width and followed
//! by a tab; a start time or transaction start offset that does not exist
//! is `None`. Coordinator errors (COORDINATOR_NOT_AVAILABLE,
//! COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR) and leader errors are
//! retried with a growing backoff until `--timeout-ms` runs out; any other
//! error from a broker is printed with Kafka's error name and the command
//! exits with 1 (2 for a usage error).
//!
//! Departures from Kafka's tool: `list` takes `--state`, `--producer-id`
//! and `--duration-filter` (the ListTransactions filters; Kafka 4's tool
//! has only the last); rows are sorted by coordinator, then transactional
//! id; `abort` and `find-hanging` are not supported.
//!
//! Everything that turns responses into rows or text is a pure function,
//! tested below with hand-built values; [`Admin`] does the I/O.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Subcommand;
use kafka_protocol::messages::{
    describe_producers_request, describe_producers_response, describe_transactions_response,
    list_transactions_response, ApiKey, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::Message;

use crate::admin::{
    self, code_error, is_coordinator_error, is_leader_error, server_error, str_bytes, Admin,
    ClusterArgs, CoordinatorKey, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::client::{Connection, ServerError};

/// What Kafka's tool prints for a start time or offset that does not exist.
const NONE: &str = "None";

/// The transaction states as Kafka spells them (`TransactionState`'s
/// names, which are also the wire values).
const TRANSACTION_STATES: [&str; 7] = [
    "Ongoing",
    "PrepareAbort",
    "PrepareCommit",
    "CompleteAbort",
    "CompleteCommit",
    "Empty",
    "PrepareEpochFence",
];

/// `riffle transactions` and its options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Debug, Subcommand)]
enum TransactionsCommand {
    /// List the transactional ids every broker coordinates, with their
    /// producer id and state.
    List {
        /// Only transactions in these states (Ongoing, PrepareAbort,
        /// PrepareCommit, CompleteAbort, CompleteCommit, Empty,
        /// PrepareEpochFence; any case); may be repeated or comma-separated.
        #[arg(long = "state", value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
        states: Vec<String>,
        /// Only these producer ids; may be repeated or comma-separated.
        #[arg(long = "producer-id", value_name = "ID", value_delimiter = ',')]
        producer_ids: Vec<i64>,
        /// Only transactions that have been open longer than this.
        #[arg(long, value_name = "MS")]
        duration_filter: Option<i64>,
    },
    /// Describe the state of a transactional id at its coordinator.
    Describe {
        #[arg(long, value_name = "ID")]
        transactional_id: String,
    },
    /// Describe the active producers of a topic partition.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
        /// Ask this broker (a replica) instead of the partition's leader.
        #[arg(long, value_name = "ID")]
        broker_id: Option<i32>,
    },
}

/// A `--state` value in Kafka's spelling, whatever its case.
fn parse_state(text: &str) -> Result<String, String> {
    admin::parse_state(text, &TRANSACTION_STATES)
}

/// A state from the wire as Kafka's tool prints it: `Unknown` for a value
/// this build does not know (Kafka's `TransactionState.parse`).
pub fn state_name(wire: &str) -> String {
    if TRANSACTION_STATES.contains(&wire) {
        wire.to_string()
    } else {
        "Unknown".to_string()
    }
}

/// A table as Kafka's `kafka-transactions` prints one
/// (`TransactionsCommand.prettyPrintTable`): every cell, the last one
/// included, padded to its column's width and followed by a tab.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        debug_assert_eq!(row.len(), headers.len(), "a row has one cell per column");
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter().zip(row) {
            out.push_str(&format!("{cell:<w$}\t"));
        }
        out.push('\n');
    }
    out
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedTransaction {
    /// The broker that listed it, its coordinator.
    pub coordinator: i32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
}

/// The transactions in one broker's ListTransactions response.
pub fn listed_transactions(
    coordinator: i32,
    states: &[list_transactions_response::TransactionState],
) -> Vec<ListedTransaction> {
    states
        .iter()
        .map(|t| ListedTransaction {
            coordinator,
            transactional_id: t.transactional_id.0.to_string(),
            producer_id: t.producer_id.0,
            state: state_name(t.transaction_state.as_str()),
        })
        .collect()
}

/// `list`, sorted by coordinator, then transactional id.
pub fn format_list(transactions: &[ListedTransaction]) -> String {
    let mut sorted = transactions.to_vec();
    sorted.sort();
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|t| {
            vec![
                t.transactional_id.clone(),
                t.coordinator.to_string(),
                t.producer_id.to_string(),
                t.state.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState",
        ],
        &rows,
    )
}

/// A transactional id as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub coordinator_id: i32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: String,
    pub timeout_ms: i32,
    /// `None` when no transaction is open (the wire's -1).
    pub start_time_ms: Option<i64>,
    /// `topic-partition`, sorted.
    pub partitions: Vec<String>,
}

/// The description in one DescribeTransactions entry, or its error.
pub fn transaction_description(
    coordinator_id: i32,
    t: &describe_transactions_response::TransactionState,
) -> Result<TransactionDescription, ServerError> {
    if let Some(e) = ServerError::from_code(t.error_code, None) {
        return Err(e);
    }
    let mut partitions: Vec<(String, i32)> = t
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| (topic.topic.0.to_string(), *p))
        })
        .collect();
    partitions.sort();
    Ok(TransactionDescription {
        coordinator_id,
        transactional_id: t.transactional_id.0.to_string(),
        producer_id: t.producer_id.0,
        producer_epoch: t.producer_epoch,
        state: state_name(t.transaction_state.as_str()),
        timeout_ms: t.transaction_timeout_ms,
        start_time_ms: (t.transaction_start_time_ms >= 0).then_some(t.transaction_start_time_ms),
        partitions: partitions
            .into_iter()
            .map(|(topic, p)| format!("{topic}-{p}"))
            .collect(),
    })
}

/// `describe`, with the transaction's duration up to `now_ms`.
pub fn format_description(d: &TransactionDescription, now_ms: i64) -> String {
    let (start, duration) = match d.start_time_ms {
        Some(start) => (start.to_string(), (now_ms - start).to_string()),
        None => (NONE.to_string(), NONE.to_string()),
    };
    table(
        &[
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ],
        &[vec![
            d.coordinator_id.to_string(),
            d.transactional_id.clone(),
            d.producer_id.to_string(),
            d.producer_epoch.to_string(),
            d.state.clone(),
            d.timeout_ms.to_string(),
            start,
            duration,
            d.partitions.join(","),
        ]],
    )
}

/// `describe-producers`: one row per active producer, in the broker's order.
pub fn format_producers(producers: &[describe_producers_response::ProducerState]) -> String {
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                if p.current_txn_start_offset >= 0 {
                    p.current_txn_start_offset.to_string()
                } else {
                    NONE.to_string()
                },
            ]
        })
        .collect();
    table(
        &[
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset",
        ],
        &rows,
    )
}

/// The partition's entry in a DescribeProducers response: its producers,
/// or its error.
pub fn partition_producers(
    response: &DescribeProducersResponse,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Result<Vec<describe_producers_response::ProducerState>, ServerError>> {
    let Some(p) = response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == partition)
    else {
        bail!("DescribeProducers did not answer for {topic}-{partition}");
    };
    Ok(
        match ServerError::from_code(p.error_code, p.error_message.as_ref()) {
            Some(e) => Err(e),
            None => Ok(p.active_producers.clone()),
        },
    )
}

/// Whether `e` is an error that asking again (the coordinator or the
/// leader, found anew) may cure.
fn is_retriable(e: &anyhow::Error) -> bool {
    is_coordinator_error(e) || is_leader_error(e)
}

/// What `riffle transactions` asks of the cluster.
impl Admin {
    /// DescribeTransactions for one transactional id at its coordinator,
    /// finding the coordinator again while it moves or loads.
    async fn describe(&mut self, transactional_id: &str) -> anyhow::Result<TransactionDescription> {
        let key = CoordinatorKey::Transaction(transactional_id);
        self.at_coordinator(key, is_retriable, async |conn, coordinator| {
            let version = conn.version_for(
                ApiKey::DescribeTransactions,
                (0, DescribeTransactionsRequest::VERSIONS.max),
            )?;
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(str_bytes(transactional_id))]);
            let response: DescribeTransactionsResponse = conn
                .send(ApiKey::DescribeTransactions, version, &request)
                .await?;
            let Some(t) = response
                .transaction_states
                .iter()
                .find(|t| t.transactional_id.0.as_str() == transactional_id)
            else {
                bail!("DescribeTransactions did not answer for {key}");
            };
            Ok(transaction_description(coordinator.node_id, t)?)
        })
        .await
    }

    /// DescribeProducers for one partition at its leader or at `broker_id`.
    async fn describe_producers(
        &mut self,
        topic: &str,
        partition: i32,
        broker_id: Option<i32>,
    ) -> anyhow::Result<Vec<describe_producers_response::ProducerState>> {
        self.retrying(is_retriable, async |admin| {
            admin
                .describe_producers_once(topic, partition, broker_id)
                .await
        })
        .await
    }

    async fn describe_producers_once(
        &mut self,
        topic: &str,
        partition: i32,
        broker_id: Option<i32>,
    ) -> anyhow::Result<Vec<describe_producers_response::ProducerState>> {
        let metadata = self.metadata(&[topic]).await?;
        let Some(t) = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        else {
            bail!("Metadata did not answer for topic '{topic}'");
        };
        server_error(t.error_code, None).with_context(|| format!("topic '{topic}'"))?;
        let Some(p) = t.partitions.iter().find(|p| p.partition_index == partition) else {
            return Err(anyhow::Error::new(ServerError {
                code: UNKNOWN_TOPIC_OR_PARTITION,
                message: Some(format!(
                    "topic '{topic}' has {} partitions",
                    t.partitions.len()
                )),
            }));
        };
        let target = match broker_id {
            Some(id) => {
                if !self.knows_broker(id) {
                    bail!("broker {id} is not in the cluster's metadata");
                }
                id
            }
            None if p.leader_id.0 < 0 => {
                return Err(anyhow::Error::new(code_error(LEADER_NOT_AVAILABLE)))
            }
            None => p.leader_id.0,
        };
        self.at_broker(target, is_retriable, async |conn| {
            let version = conn.version_for(
                ApiKey::DescribeProducers,
                (0, DescribeProducersRequest::VERSIONS.max),
            )?;
            let request = DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partition_indexes(vec![partition]),
            ]);
            let response: DescribeProducersResponse = conn
                .send(ApiKey::DescribeProducers, version, &request)
                .await?;
            Ok(partition_producers(&response, topic, partition)??)
        })
        .await
    }
}

/// ListTransactions at one broker.
async fn list_at(
    conn: &mut Connection,
    broker: i32,
    request: &ListTransactionsRequest,
) -> anyhow::Result<Vec<ListedTransaction>> {
    let version = conn.version_for(
        ApiKey::ListTransactions,
        (0, ListTransactionsRequest::VERSIONS.max),
    )?;
    if request.duration_filter >= 0 && version < 1 {
        bail!("UNSUPPORTED_VERSION: broker {broker} serves ListTransactions up to version {version}, which cannot filter by duration (version 1)");
    }
    let response: ListTransactionsResponse = conn
        .send(ApiKey::ListTransactions, version, request)
        .await?;
    server_error(response.error_code, None)?;
    for unknown in &response.unknown_state_filters {
        eprintln!("Warning: broker {broker} does not know the state '{unknown}'");
    }
    Ok(listed_transactions(broker, &response.transaction_states))
}

/// Milliseconds since the epoch, for a transaction's duration.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs `riffle transactions`; the exit code is 1 for an operational
/// failure (printed here or returned) and 2 for a usage error.
pub fn run(args: Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let command = args.command;
    admin::run(&args.cluster, async move |admin| {
        execute(admin, command, out).await
    })
}

async fn execute(
    admin: &mut Admin,
    command: TransactionsCommand,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match command {
        TransactionsCommand::List {
            states,
            producer_ids,
            duration_filter,
        } => {
            let request = ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|s| str_bytes(s)).collect())
                .with_producer_id_filters(producer_ids.into_iter().map(ProducerId).collect())
                .with_duration_filter(duration_filter.unwrap_or(-1));
            let (listed, failed) = admin
                .at_every_broker(
                    "list the transactions",
                    is_retriable,
                    async |conn, broker| list_at(conn, broker, &request).await,
                )
                .await?;
            out.write_all(format_list(&listed.concat()).as_bytes())?;
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TransactionsCommand::Describe { transactional_id } => {
            let d = admin.describe(&transactional_id).await.with_context(|| {
                format!(
                    "Failed to describe transaction state of transactional-id `{transactional_id}`"
                )
            })?;
            out.write_all(format_description(&d, now_ms()).as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        TransactionsCommand::DescribeProducers {
            topic,
            partition,
            broker_id,
        } => {
            let producers = admin
                .describe_producers(&topic, partition, broker_id)
                .await
                .with_context(|| {
                    let on =
                        broker_id.map_or_else(|| "leader".to_string(), |b| format!("broker {b}"));
                    format!(
                        "Failed to describe producers for partition {topic}-{partition} on {on}"
                    )
                })?;
            out.write_all(format_producers(&producers).as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::NOT_LEADER_OR_FOLLOWER;
    use kafka_protocol::messages::describe_transactions_response::TopicData;

    /// The cells of every line of a table, blank cells left out.
    fn table_cells(text: &str) -> Vec<Vec<&str>> {
        text.lines()
            .map(|l| {
                l.split('\t')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect()
    }

    /// The cells of the first row after the header, blank ones kept.
    fn first_row(text: &str) -> Vec<&str> {
        let row = text.lines().nth(1).expect("a row after the header");
        row.split('\t').map(str::trim).collect()
    }

    fn listed(id: &str, pid: i64, state: &str) -> list_transactions_response::TransactionState {
        list_transactions_response::TransactionState::default()
            .with_transactional_id(TransactionalId(str_bytes(id)))
            .with_producer_id(ProducerId(pid))
            .with_transaction_state(str_bytes(state))
    }

    #[test]
    fn tables_pad_every_cell_and_end_it_with_a_tab_as_kafka_does() {
        let t = table(&["A", "Longer"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A  \tLonger\t\nxyz\t1     \t\n");
        assert_eq!(table(&["Only"], &[]), "Only\t\n");
    }

    #[test]
    fn list_rows_are_sorted_by_coordinator_then_id_and_unknown_states_say_so() {
        let mut rows = listed_transactions(2, &[listed("b", 7, "Ongoing")]);
        rows.extend(listed_transactions(
            1,
            &[
                listed("z", 3, "CompleteCommit"),
                listed("a", 4, "Frobnicating"),
            ],
        ));
        let text = format_list(&rows);
        assert_eq!(
            table_cells(&text),
            vec![
                vec![
                    "TransactionalId",
                    "Coordinator",
                    "ProducerId",
                    "TransactionState"
                ],
                vec!["a", "1", "4", "Unknown"],
                vec!["z", "1", "3", "CompleteCommit"],
                vec!["b", "2", "7", "Ongoing"],
            ]
        );
    }

    #[test]
    fn describe_shows_partitions_sorted_and_the_duration_of_an_open_transaction() {
        let t = describe_transactions_response::TransactionState::default()
            .with_transactional_id(TransactionalId(str_bytes("app-1")))
            .with_transaction_state(str_bytes("Ongoing"))
            .with_transaction_timeout_ms(60_000)
            .with_transaction_start_time_ms(1_000)
            .with_producer_id(ProducerId(42))
            .with_producer_epoch(3)
            .with_topics(vec![
                TopicData::default()
                    .with_topic(TopicName(str_bytes("out")))
                    .with_partitions(vec![2, 0]),
                TopicData::default()
                    .with_topic(TopicName(str_bytes("audit")))
                    .with_partitions(vec![1]),
            ]);
        let d = transaction_description(5, &t).unwrap();
        assert_eq!(d.partitions, ["audit-1", "out-0", "out-2"]);
        let text = format_description(&d, 4_500);
        assert_eq!(
            first_row(&text),
            [
                "5",
                "app-1",
                "42",
                "3",
                "Ongoing",
                "60000",
                "1000",
                "3500",
                "audit-1,out-0,out-2",
                ""
            ]
        );

        // No open transaction: no start time, no duration.
        let idle = t
            .clone()
            .with_transaction_state(str_bytes("Empty"))
            .with_transaction_start_time_ms(-1)
            .with_topics(vec![]);
        let text = format_description(&transaction_description(5, &idle).unwrap(), 4_500);
        assert_eq!(
            first_row(&text),
            ["5", "app-1", "42", "3", "Empty", "60000", "None", "None", "", ""]
        );

        let missing = t.with_error_code(105);
        let e = transaction_description(5, &missing).unwrap_err();
        assert_eq!(e.to_string(), "TRANSACTIONAL_ID_NOT_FOUND");
    }

    #[test]
    fn producers_without_an_open_transaction_show_none() {
        let p = |pid: i64, start: i64| {
            describe_producers_response::ProducerState::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_last_sequence(99)
                .with_last_timestamp(1_700_000_000_000)
                .with_coordinator_epoch(-1)
                .with_current_txn_start_offset(start)
        };
        let text = format_producers(&[p(7, -1), p(8, 120)]);
        assert_eq!(
            table_cells(&text),
            vec![
                vec![
                    "ProducerId",
                    "ProducerEpoch",
                    "LatestCoordinatorEpoch",
                    "LastSequence",
                    "LastTimestamp",
                    "CurrentTransactionStartOffset"
                ],
                vec!["7", "0", "-1", "99", "1700000000000", "None"],
                vec!["8", "0", "-1", "99", "1700000000000", "120"],
            ]
        );
    }

    #[test]
    fn a_partition_missing_from_describe_producers_is_an_error() {
        let response = DescribeProducersResponse::default().with_topics(vec![
            describe_producers_response::TopicResponse::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![
                    describe_producers_response::PartitionResponse::default()
                        .with_partition_index(0)
                        .with_error_code(NOT_LEADER_OR_FOLLOWER),
                ]),
        ]);
        assert!(partition_producers(&response, "t", 1).is_err());
        let e = partition_producers(&response, "t", 0).unwrap().unwrap_err();
        assert_eq!(e.code, NOT_LEADER_OR_FOLLOWER);
        assert!(is_retriable(&anyhow::Error::new(e)));
    }

    #[test]
    fn states_parse_in_any_case() {
        assert_eq!(parse_state("ongoing").unwrap(), "Ongoing");
        assert_eq!(parse_state(" PREPARECOMMIT ").unwrap(), "PrepareCommit");
        assert!(parse_state("Stable").is_err());
        assert_eq!(state_name("PrepareEpochFence"), "PrepareEpochFence");
        assert_eq!(state_name(""), "Unknown");
    }
}
