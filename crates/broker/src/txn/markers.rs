//! Transaction markers: the COMMIT or ABORT control batch the transaction
//! coordinator writes to every partition of a transaction once it has
//! decided. Partitions this node leads get the marker directly; the others
//! through WriteTxnMarkers (v1) to their leader's inter-broker listener,
//! as Kafka's marker channel does. A marker written to a
//! `__consumer_offsets` partition also completes the transaction's
//! offset commits in the group coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_log::{TopicPartition, TxnMarker};
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::replica::PartitionError;
use crate::util::sb;

/// The WriteTxnMarkers version brokers send each other.
const VERSION: i16 = 1;
/// Pause between rounds while some partition still refuses its marker.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long one WriteTxnMarkers call may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The markers of one decided transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

impl MarkerJob {
    fn marker(&self) -> TxnMarker {
        TxnMarker {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            commit: self.commit,
        }
    }
}

/// Whether a partition's answer ends its part of the job. A partition that
/// no longer exists will never take the marker (Kafka drops it too); a
/// fenced coordinator or an old producer epoch means a newer decision has
/// been written already.
fn settled(code: Option<ResponseError>) -> bool {
    matches!(
        code,
        None | Some(ResponseError::UnknownTopicOrPartition)
            | Some(ResponseError::TransactionCoordinatorFenced)
            | Some(ResponseError::InvalidProducerEpoch)
    )
}

/// Writes `marker` to a partition this node leads, then completes the
/// transaction's offsets if it is a `__consumer_offsets` partition.
pub fn write_local(
    broker: &Broker,
    tp: &TopicPartition,
    marker: &TxnMarker,
) -> Result<(), PartitionError> {
    broker.replicas.write_txn_marker(tp, marker)?;
    if tp.topic == OFFSETS_TOPIC {
        broker.groups.complete_transaction(
            &broker.replicas,
            tp.partition,
            marker.producer_id,
            marker.commit,
        );
    }
    Ok(())
}

/// Writes every marker of `job`, retrying partitions that refuse for a
/// retriable reason (leadership moving, storage) until each is written or
/// settled, or the broker shuts down (the coordinator that loads the
/// transaction next writes them again). Returns whether all settled.
pub async fn write_all(broker: &Broker, job: &MarkerJob) -> bool {
    let marker = job.marker();
    let mut pending: Vec<TopicPartition> = job
        .partitions
        .iter()
        .map(|(t, p)| TopicPartition::new(t.clone(), *p))
        .collect();
    let mut shutdown = broker.shutdown_signal();
    loop {
        let image = broker.image();
        let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut retry = Vec::new();
        for tp in pending {
            let leader = image
                .topic(&tp.topic)
                .and_then(|t| t.partitions.get(&tp.partition))
                .map(|p| p.leader);
            match leader {
                None => debug!(
                    topic = %tp.topic,
                    partition = tp.partition,
                    "no marker for a partition that no longer exists"
                ),
                Some(l) if l == broker.config.node_id => match write_local(broker, &tp, &marker) {
                    Ok(()) => {}
                    Err(e) if settled(Some(e.code)) => {
                        debug!(topic = %tp.topic, partition = tp.partition, "marker settled: {:?}", e.code)
                    }
                    Err(e) => {
                        warn!(
                            topic = %tp.topic,
                            partition = tp.partition,
                            "writing a transaction marker failed, retrying: {:?} {:?}",
                            e.code,
                            e.message
                        );
                        retry.push(tp);
                    }
                },
                Some(l) if l < 0 => retry.push(tp),
                Some(l) => remote.entry(l).or_default().push(tp),
            }
        }
        for (node, tps) in remote {
            retry.extend(send_remote(broker, node, job, tps).await);
        }
        if retry.is_empty() {
            return true;
        }
        pending = retry;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

/// Sends WriteTxnMarkers for `tps` to `node`; returns the partitions to
/// try again.
async fn send_remote(
    broker: &Broker,
    node: i32,
    job: &MarkerJob,
    tps: Vec<TopicPartition>,
) -> Vec<TopicPartition> {
    let image = broker.image();
    let listener = &broker.config.inter_broker_listener_name;
    let Some(endpoint) = image
        .broker(node)
        .and_then(|b| b.endpoints.iter().find(|e| &e.name == listener).cloned())
    else {
        warn!(
            node,
            "no {listener} endpoint to send transaction markers to"
        );
        return tps;
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &tps {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(job.producer_id))
        .with_producer_epoch(job.producer_epoch)
        .with_transaction_result(job.commit)
        .with_coordinator_epoch(job.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(ps)
                })
                .collect(),
        )]);
    let address = format!("{}:{}", endpoint.host, endpoint.port);
    let resp: Result<WriteTxnMarkersResponse, _> = crate::forward::call(
        &address,
        ApiKey::WriteTxnMarkers,
        VERSION,
        &format!("riffle-txn-coordinator-{}", broker.config.node_id),
        &req,
        REQUEST_TIMEOUT_MS,
    )
    .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            warn!(node, "sending transaction markers failed, retrying: {e}");
            return tps;
        }
    };
    let mut retry = Vec::new();
    let answered: BTreeMap<(String, i32), i16> = resp
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.name.to_string(), p.partition_index), p.error_code))
        })
        .collect();
    for tp in tps {
        let code = answered
            .get(&(tp.topic.clone(), tp.partition))
            .copied()
            .unwrap_or(ResponseError::UnknownServerError.code());
        if !settled(ResponseError::try_from_code(code)) {
            retry.push(tp);
        }
    }
    retry
}

/// WriteTxnMarkers (from another node's transaction coordinator): writes
/// each marker to the partitions this node leads.
pub fn handle_write_txn_markers(
    broker: &Broker,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let marker = TxnMarker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
                commit: m.transaction_result,
            };
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let tp = TopicPartition::new(t.name.to_string(), p);
                            let code = match write_local(broker, &tp, &marker) {
                                Ok(()) => 0,
                                Err(e) => e.code.code(),
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
