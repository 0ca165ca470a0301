//! Produce.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_log::batch::frame_size;
use riffle_log::TopicPartition;

use super::is_internal_topic;
use crate::broker::Broker;
use crate::replica::PartitionError;
use crate::util::sb;

fn error_partition(index: i32, e: PartitionError, version: i16) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    if version >= 8 {
        p.error_message = e.message.map(sb);
    }
    p
}

/// Produce v3+ carries exactly one v2 batch per partition. Only the framing
/// is looked at here: the append's validation checks the batch's magic, CRC
/// and records, and computing the CRC twice costs a pass over the bytes.
fn check_one_batch(records: &[u8]) -> Result<(), PartitionError> {
    if records.is_empty() {
        return Err(PartitionError::with_message(
            ResponseError::InvalidRecord,
            "Produce requests with version 3 and above must carry exactly one record batch; this one has none",
        ));
    }
    let size = frame_size(records)
        .map_err(|e| PartitionError::with_message(e.error_code(), e.to_string()))?;
    if size < records.len() {
        return Err(PartitionError::with_message(
            ResponseError::InvalidRecord,
            "Produce requests with version 3 and above must carry exactly one record batch",
        ));
    }
    Ok(())
}

/// acks=all needs at least `min.insync.replicas` replicas in sync
/// (NOT_ENOUGH_REPLICAS otherwise, and nothing is appended).
fn check_min_insync(broker: &Broker, topic: &str, partition: i32) -> Result<(), PartitionError> {
    let image = broker.image();
    let Some(isr) = image
        .topic(topic)
        .and_then(|t| t.partitions.get(&partition))
        .map(|p| p.isr.len())
    else {
        return Ok(()); // unknown partitions are refused by the append
    };
    let min_isr = image
        .topic_config(topic)
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| broker.effective_config().min_insync_replicas.max(1) as usize);
    if isr < min_isr {
        return Err(PartitionError::with_message(
            ResponseError::NotEnoughReplicas,
            format!(
                "The size of the current ISR ({isr}) is insufficient to satisfy the min.isr requirement of {min_isr} for partition {topic}-{partition}"
            ),
        ));
    }
    Ok(())
}

/// Handles a produce request; `None` for acks=0.
/// Handles a produce request: `Ok(None)` for acks=0, `Err` to close the
/// connection (an acks=0 request that failed).
pub async fn handle(
    broker: &Broker,
    req: ProduceRequest,
    version: i16,
) -> Result<Option<ProduceResponse>, String> {
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let result = if !(-1..=1).contains(&acks) {
                Err(PartitionError::new(ResponseError::InvalidRequiredAcks))
            } else if is_internal_topic(&name) {
                Err(PartitionError::with_message(
                    ResponseError::InvalidTopicException,
                    format!("Cannot append to internal topic {name}"),
                ))
            } else {
                let records = p.records.unwrap_or_default();
                let min_insync = if acks == -1 {
                    check_min_insync(broker, &name, p.index)
                } else {
                    Ok(())
                };
                min_insync
                    .and_then(|()| check_one_batch(&records))
                    .and_then(|()| {
                        broker
                            .replicas
                            .append(&TopicPartition::new(name.clone(), p.index), records)
                    })
            };
            partitions.push(match result {
                Ok(info) => PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(info.first_offset)
                    .with_log_append_time_ms(info.log_append_time_ms)
                    .with_log_start_offset(info.log_start_offset),
                Err(e) => error_partition(p.index, e, version),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(TopicName(sb(name)))
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        // The producer reads no response, so an error can only be
        // signalled by closing the connection (as Kafka does); the client
        // then refreshes its metadata.
        let failed = responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(move |p| (t, p)))
            .find(|(_, p)| p.error_code != 0);
        if let Some((t, p)) = failed {
            return Err(format!(
                "acks=0 produce to {}-{} failed with error {}",
                t.name.0.as_str(),
                p.index,
                p.error_code
            ));
        }
        return Ok(None);
    }
    // One replica: the high watermark moved with the append, so acks=all
    // is satisfied as soon as the append returned.
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}
