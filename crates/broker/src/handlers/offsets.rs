//! ListOffsets, DeleteRecords, OffsetForLeaderEpoch and DescribeLogDirs.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use riffle_log::{TimestampAndOffset, TopicPartition};

use crate::broker::Broker;
use crate::replica::PartitionError;
use crate::util::sb;

/// ListOffsets special timestamps (Kafka's `ListOffsetsRequest`).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// (timestamp, offset) answered for one partition.
fn list_one(
    broker: &Broker,
    tp: &TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
    version: i16,
    read_committed: bool,
) -> Result<(i64, i64, i32), PartitionError> {
    let info = broker
        .replicas
        .partition_info(tp)
        .ok_or_else(|| PartitionError::new(ResponseError::UnknownTopicOrPartition))?;
    if current_leader_epoch >= 0 && current_leader_epoch != info.leader_epoch {
        return Err(PartitionError::new(
            if current_leader_epoch < info.leader_epoch {
                ResponseError::FencedLeaderEpoch
            } else {
                ResponseError::UnknownLeaderEpoch
            },
        ));
    }
    let epoch = info.leader_epoch;
    // A read_committed consumer sees up to the last stable offset (what
    // the first open transaction has written is not visible yet).
    let (start, hw, lso) = broker.replicas.stable_offsets(tp)?;
    let fetchable = if read_committed { lso } else { hw };
    let visible = |t: TimestampAndOffset| {
        if t.offset < fetchable {
            (t.timestamp, t.offset, epoch)
        } else {
            (-1, -1, -1)
        }
    };
    Ok(match timestamp {
        LATEST => (-1, fetchable, epoch),
        EARLIEST => (-1, start, epoch),
        EARLIEST_LOCAL if version >= 8 => (-1, start, epoch),
        LATEST_TIERED if version >= 9 => (-1, -1, -1),
        MAX_TIMESTAMP if version >= 7 => match broker.replicas.max_timestamp(tp)? {
            Some(t) => visible(t),
            None => (-1, -1, -1),
        },
        ts if ts < 0 => {
            return Err(PartitionError::with_message(
                ResponseError::UnsupportedVersion,
                format!("timestamp {ts} is not a valid ListOffsets target at version {version}"),
            ))
        }
        ts => match broker.replicas.offset_for_timestamp(tp, ts)? {
            Some(t) => visible(t),
            None => (-1, -1, -1),
        },
    })
}

pub fn list_offsets(broker: &Broker, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match list_one(
                        broker,
                        &tp,
                        p.timestamp,
                        p.current_leader_epoch,
                        version,
                        read_committed,
                    ) {
                        Ok((ts, offset, epoch)) => {
                            out.timestamp = ts;
                            out.offset = offset;
                            if version >= 4 {
                                out.leader_epoch = epoch;
                            }
                        }
                        Err(e) => {
                            out.error_code = e.code.code();
                            out.timestamp = -1;
                            out.offset = -1;
                            if version >= 4 {
                                out.leader_epoch = -1;
                            }
                        }
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match broker.replicas.delete_records(&tp, p.offset) {
                        Ok(low) => out.with_low_watermark(low),
                        Err(e) => out.with_low_watermark(-1).with_error_code(e.code.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    let result = broker
                        .replicas
                        .end_offset_for_epoch(&tp, p.leader_epoch)
                        .and_then(|(epoch, offset, current)| {
                            if p.current_leader_epoch >= 0 && p.current_leader_epoch < current {
                                Err(PartitionError::new(ResponseError::FencedLeaderEpoch))
                            } else if p.current_leader_epoch > current {
                                Err(PartitionError::new(ResponseError::UnknownLeaderEpoch))
                            } else {
                                Ok((epoch, offset))
                            }
                        });
                    match result {
                        Ok((epoch, offset)) => out.with_leader_epoch(epoch).with_end_offset(offset),
                        Err(e) => out
                            .with_error_code(e.code.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn describe_log_dirs(
    broker: &Broker,
    req: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let results = broker
        .replicas
        .log_dir_sizes()
        .into_iter()
        .map(|(path, sizes)| {
            let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for s in sizes {
                let keep = match &wanted {
                    None => true,
                    Some(w) => w
                        .get(&s.tp.topic)
                        .is_some_and(|ps| ps.contains(&s.tp.partition)),
                };
                if keep {
                    by_topic.entry(s.tp.topic.clone()).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(s.tp.partition)
                            .with_partition_size(s.size_bytes as i64)
                            .with_offset_lag(0),
                    );
                }
            }
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            let mut r = DescribeLogDirsResult::default()
                .with_log_dir(sb(path.display().to_string()))
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(sb(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            if version >= 4 {
                // Volume sizes are not measured yet: Kafka's "unknown".
                r.total_bytes = -1;
                r.usable_bytes = -1;
            }
            r
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
