//! Fetch: sessionless full fetches with long polling.
//!
//! Riffle does not create fetch sessions (KIP-227 lets a broker decline by
//! answering session id 0); every request lists its partitions and every
//! response answers all of them. A fetch with less than `min_bytes` waits
//! up to `max_wait_ms` and is woken by any append.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_log::{FileSlice, TopicPartition};
use riffle_protocol::zero_copy::{FileRegion, FileRegions};
use uuid::Uuid;

use crate::broker::Broker;
use crate::replica::{slice_bytes, PartitionError};
use crate::util::sb;

/// The most a fetch waits, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;

struct Wanted {
    topic_index: usize,
    tp: Option<TopicPartition>,
    /// Set when the topic id is unknown.
    error: Option<ResponseError>,
    partition: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
    max_bytes: i32,
}

fn partition_error(partition: i32, code: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

/// The records of one partition's answer: a placeholder for the file
/// region that holds them (sent with `sendfile` when the response is
/// written), or, when a region does not fit the placeholder space, the
/// bytes read into memory.
fn records_of(
    slice: Option<FileSlice>,
    regions: &mut FileRegions,
) -> Result<Bytes, PartitionError> {
    let Some(slice) = slice else {
        return Ok(Bytes::new());
    };
    let region = FileRegion {
        file: slice.file.clone(),
        position: slice.position,
        len: slice.len,
    };
    match regions.placeholder(region) {
        Some(placeholder) => Ok(placeholder),
        None => slice_bytes(&slice),
    }
}

/// One pass over every requested partition. Returns the partition answers,
/// the file regions their records are in, the number of record bytes, and
/// whether any partition failed.
fn read_all(
    broker: &Broker,
    wanted: &[Wanted],
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<PartitionData>, FileRegions, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let limit = max_bytes.max(0) as usize;
    let mut regions = FileRegions::default();
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let Some(tp) = &w.tp else {
            any_error = true;
            out.push(partition_error(
                w.partition,
                w.error.unwrap_or(ResponseError::UnknownTopicOrPartition),
            ));
            continue;
        };
        let epoch_check = broker.replicas.partition_info(tp).map_or(Ok(()), |h| {
            if w.current_leader_epoch < 0 || w.current_leader_epoch == h.leader_epoch {
                Ok(())
            } else if w.current_leader_epoch < h.leader_epoch {
                Err(PartitionError::new(ResponseError::FencedLeaderEpoch))
            } else {
                Err(PartitionError::new(ResponseError::UnknownLeaderEpoch))
            }
        });
        // KIP-74: the first batch is returned even if it exceeds the
        // limits, so a consumer always makes progress.
        let budget = (limit.saturating_sub(total)).min(w.max_bytes.max(0) as usize) as u64;
        let min_one = total == 0;
        let result = epoch_check.and_then(|()| {
            let mut r =
                broker
                    .replicas
                    .read_slice(tp, w.fetch_offset, budget, min_one, read_committed)?;
            let records = records_of(r.slice.take(), &mut regions)?;
            Ok((r, records))
        });
        match result {
            Ok((r, records)) => {
                total += records.len();
                let mut p = PartitionData::default()
                    .with_partition_index(w.partition)
                    .with_high_watermark(r.high_watermark)
                    .with_last_stable_offset(r.last_stable_offset)
                    .with_log_start_offset(r.log_start_offset)
                    .with_records(Some(records));
                // KIP-98: read_committed answers list the aborted
                // transactions (possibly none); read_uncommitted ones null.
                p.aborted_transactions = r.aborted.map(|aborted| {
                    aborted
                        .iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect()
                });
                out.push(p);
            }
            Err(e) => {
                any_error = true;
                let mut p = partition_error(w.partition, e.code);
                if e.code == ResponseError::OffsetOutOfRange {
                    if let Ok((start, hw, lso)) = broker.replicas.stable_offsets(tp) {
                        p.high_watermark = hw;
                        p.last_stable_offset = lso;
                        p.log_start_offset = start;
                    }
                }
                out.push(p);
            }
        }
    }
    (out, regions, total, any_error)
}

/// Answers a fetch. The records in the response are placeholders for the
/// returned file regions (see `riffle_protocol::zero_copy`): the response
/// must be encoded with them.
pub async fn handle(
    broker: &Broker,
    req: FetchRequest,
    version: i16,
) -> (FetchResponse, FileRegions) {
    // An incremental fetch needs a session Riffle never handed out; epoch
    // -1 with a session id is a full fetch that closes the session.
    if version >= 7 && req.session_id != 0 && req.session_epoch != -1 {
        let resp = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return (resp, FileRegions::default());
    }
    let image = broker.image();
    let mut topics: Vec<(String, Uuid)> = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let (name, id, error) = if version >= 13 {
            match image.topic_by_id(t.topic_id) {
                Some(topic) => (topic.name.clone(), t.topic_id, None),
                None => (
                    String::new(),
                    t.topic_id,
                    Some(ResponseError::UnknownTopicId),
                ),
            }
        } else {
            let name = t.topic.0.to_string();
            let id = image.topic(&name).map_or(Uuid::nil(), |t| t.id);
            (name, id, None)
        };
        for p in &t.partitions {
            wanted.push(Wanted {
                topic_index: i,
                tp: error
                    .is_none()
                    .then(|| TopicPartition::new(name.clone(), p.partition)),
                error,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                max_bytes: p.partition_max_bytes,
            });
        }
        topics.push((name, id));
    }
    drop(image);
    let read_committed = req.isolation_level == 1;
    let max_bytes = if version >= 3 {
        req.max_bytes
    } else {
        i32::MAX
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let mut appends = broker.replicas.appends();
    let mut shutdown = broker.shutdown_signal();
    let (partitions, regions) = loop {
        appends.borrow_and_update();
        let (parts, regions, bytes, any_error) =
            read_all(broker, &wanted, max_bytes, read_committed);
        if bytes >= min_bytes
            || any_error
            || wanted.is_empty()
            || *shutdown.borrow()
            || tokio::time::Instant::now() >= deadline
        {
            break (parts, regions);
        }
        // Woken by an append, the deadline, or shutdown (which answers at
        // once with what there is, as Kafka completes delayed fetches).
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, appends.changed()) => {
                if matches!(changed, Ok(Ok(()))) {
                    continue;
                }
            }
            _ = shutdown.wait_for(|s| *s) => {}
        }
        let (parts, regions, _, _) = read_all(broker, &wanted, max_bytes, read_committed);
        break (parts, regions);
    };
    let mut responses: Vec<FetchableTopicResponse> = topics
        .iter()
        .map(|(name, id)| {
            let mut t = FetchableTopicResponse::default();
            if version >= 13 {
                t.topic_id = *id;
            } else {
                t.topic = TopicName(sb(name.clone()));
            }
            t
        })
        .collect();
    for (w, p) in wanted.iter().zip(partitions) {
        responses[w.topic_index].partitions.push(p);
    }
    let mut resp = FetchResponse::default().with_responses(responses);
    if version >= 7 {
        resp.session_id = 0;
    }
    (resp, regions)
}
