//! Idempotent and transactional producers: InitProducerId, the
//! transaction coordinator's APIs (AddPartitionsToTxn, AddOffsetsToTxn,
//! EndTxn, DescribeTransactions, ListTransactions), WriteTxnMarkers and
//! DescribeProducers.
//!
//! PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to the request
//! versions that predate it (InitProducerId < 4, the others < 2), as Kafka
//! does.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTxn,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_log::TopicPartition;

use crate::broker::Broker;
use crate::txn::markers;
use crate::util::{now_ms, sb};

fn fenced_for(version: i16, first_with_fenced: i16, e: ResponseError) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < first_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

fn init_error(e: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(e.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// InitProducerId. Without a transactional id (an idempotent producer) the
/// answer is always a fresh producer id with epoch 0, also when the
/// producer sends its current id and epoch to have it bumped (KIP-360):
/// Kafka does the same, since a new id resets the sequences as well. With
/// one, the transaction coordinator answers.
pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let tid = match req.transactional_id.as_ref().map(|t| t.as_str()) {
        None => {
            return match broker.producer_ids.next().await {
                Ok(id) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(0),
                Err(e) => init_error(e),
            }
        }
        Some(t) => t.to_string(),
    };
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let run = || {
        broker.txns.with_core(
            &broker.replicas,
            &broker.producer_ids,
            |core, log, ids, out| {
                core.init_producer_id(
                    &tid,
                    req.transaction_timeout_ms,
                    expected,
                    now_ms(),
                    log,
                    ids,
                    out,
                )
            },
        )
    };
    let mut result = run();
    if result == Err(ResponseError::CoordinatorLoadInProgress) {
        // Most likely no producer id block yet (the first transactional
        // producer): wait for one and try once more.
        broker.producer_ids.wait_for_block().await;
        result = run();
    }
    match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => init_error(fenced_for(version, 4, e)),
    }
}

/// AddPartitionsToTxn v0-3 (one transaction, from a client). Unknown
/// partitions fail the whole request: they get UNKNOWN_TOPIC_OR_PARTITION
/// and the others OPERATION_NOT_ATTEMPTED, as in Kafka.
pub fn add_partitions_to_txn(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let image = broker.image();
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p)))
        .collect();
    let missing = |(t, p): &(String, i32)| {
        image
            .topic(t)
            .is_none_or(|topic| !topic.partitions.contains_key(p))
    };
    let outcome: Vec<((String, i32), Option<ResponseError>)> = if wanted.iter().any(missing) {
        wanted
            .into_iter()
            .map(|tp| {
                let e = if missing(&tp) {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                };
                (tp, Some(e))
            })
            .collect()
    } else {
        let result =
            broker
                .txns
                .with_core(&broker.replicas, &broker.producer_ids, |core, log, _, _| {
                    core.add_partitions(
                        req.v3_and_below_transactional_id.as_str(),
                        req.v3_and_below_producer_id.0,
                        req.v3_and_below_producer_epoch,
                        wanted.clone(),
                        now_ms(),
                        log,
                    )
                });
        let code = result.err().map(|e| fenced_for(version, 2, e));
        wanted.into_iter().map(|tp| (tp, code)).collect()
    };
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), e) in outcome {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(e.map_or(0, |e| e.code()));
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(sb(topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition.
pub fn add_offsets_to_txn(
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition = broker
        .groups
        .read(|c| c.partition_for(req.group_id.as_str()));
    let result =
        broker
            .txns
            .with_core(&broker.replicas, &broker.producer_ids, |core, log, _, _| {
                core.add_offsets(
                    req.transactional_id.as_str(),
                    req.producer_id.0,
                    req.producer_epoch,
                    partition,
                    now_ms(),
                    log,
                )
            });
    AddOffsetsToTxnResponse::default()
        .with_error_code(result.err().map_or(0, |e| fenced_for(version, 2, e).code()))
}

/// EndTxn: commits or aborts; answered once the decision is stored, while
/// the markers are written in the background.
pub fn end_txn(broker: &Broker, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = broker.txns.with_core(
        &broker.replicas,
        &broker.producer_ids,
        |core, log, _, out| {
            core.end_txn(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                now_ms(),
                log,
                out,
            )
        },
    );
    EndTxnResponse::default()
        .with_error_code(result.err().map_or(0, |e| fenced_for(version, 2, e).code()))
}

/// DescribeTransactions.
pub fn describe_transactions(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let ids: Vec<String> = req
        .transactional_ids
        .iter()
        .map(|t| t.to_string())
        .collect();
    let described = broker.txns.read(|c| c.describe(&ids));
    let states = described
        .into_iter()
        .map(|(id, d)| {
            let out = DescribedTxn::default()
                .with_transactional_id(TransactionalId(sb(id)))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
                .with_transaction_state(sb(""));
            match d {
                Ok(d) => out
                    .with_transaction_state(sb(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_timestamp_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        d.topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(sb(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    ),
                Err(e) => out.with_error_code(e.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions v0-1 (v1 adds the duration filter).
pub fn list_transactions(
    broker: &Broker,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    match broker
        .txns
        .read(|c| c.list(&states, &pids, duration, now_ms()))
    {
        Ok(list) => ListTransactionsResponse::default()
            .with_unknown_state_filters(list.unknown_state_filters.into_iter().map(sb).collect())
            .with_transaction_states(
                list.transactions
                    .into_iter()
                    .map(|t| {
                        ListedTxn::default()
                            .with_transactional_id(TransactionalId(sb(t.transactional_id)))
                            .with_producer_id(ProducerId(t.producer_id))
                            .with_transaction_state(sb(t.state.name()))
                    })
                    .collect(),
            ),
        Err(e) => ListTransactionsResponse::default().with_error_code(e.code()),
    }
}

/// WriteTxnMarkers from another node's transaction coordinator.
pub fn write_txn_markers(broker: &Broker, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    markers::handle_write_txn_markers(broker, req)
}

/// DescribeProducers: the producer state of partitions this node leads.
pub fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let tp = TopicPartition::new(t.name.to_string(), p);
                    let out = PartitionResponse::default().with_partition_index(p);
                    match broker.replicas.producers(&tp) {
                        Ok(producers) => out.with_active_producers(
                            producers
                                .into_iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(v.producer_id))
                                        .with_producer_epoch(i32::from(v.producer_epoch))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_timestamp)
                                        .with_coordinator_epoch(v.coordinator_epoch)
                                        .with_current_txn_start_offset(v.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(e) => out
                            .with_error_code(e.code.code())
                            .with_error_message(e.message.map(sb)),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
