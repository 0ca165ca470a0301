//! Building and reading the record batches of the metadata log.
//!
//! The core builds the leader's batches itself, so offsets and the
//! partition leader epoch are assigned where the decisions are made.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::LeaderChangeMessage;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riffle_log::batch::{check_batch, BatchHeader};

/// Kafka's control record types (the `type` in a control record's key).
pub const CONTROL_LEADER_CHANGE: i16 = 2;
pub const CONTROL_SNAPSHOT_HEADER: i16 = 3;
pub const CONTROL_SNAPSHOT_FOOTER: i16 = 4;

fn encode(
    base_offset: i64,
    epoch: i32,
    timestamp: i64,
    control: bool,
    kv: Vec<(Option<Bytes>, Bytes)>,
) -> Bytes {
    let records: Vec<Record> = kv
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control,
            delete_horizon: false,
            partition_leader_epoch: epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i as i64,
            // kafka-protocol starts a new batch whenever offset minus
            // sequence changes; this keeps one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp,
            key,
            value: Some(value),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .expect("encoding an uncompressed batch into memory cannot fail");
    buf.freeze()
}

/// One batch of `values` at `base_offset`, written by the leader of `epoch`.
pub fn data_batch(base_offset: i64, epoch: i32, timestamp: i64, values: &[Bytes]) -> Bytes {
    encode(
        base_offset,
        epoch,
        timestamp,
        false,
        values.iter().map(|v| (None, v.clone())).collect(),
    )
}

/// The key of a control record: version 0 and the control type.
pub fn control_key(control_type: i16) -> Bytes {
    let mut k = Vec::with_capacity(4);
    k.extend_from_slice(&0i16.to_be_bytes());
    k.extend_from_slice(&control_type.to_be_bytes());
    Bytes::from(k)
}

/// A control batch with one control record.
pub fn control_batch(
    base_offset: i64,
    epoch: i32,
    timestamp: i64,
    control_type: i16,
    value: Bytes,
) -> Bytes {
    encode(
        base_offset,
        epoch,
        timestamp,
        true,
        vec![(Some(control_key(control_type)), value)],
    )
}

/// The LeaderChangeMessage a new leader appends first in its epoch.
pub fn leader_change_batch(
    base_offset: i64,
    epoch: i32,
    timestamp: i64,
    leader_id: i32,
    voters: &[i32],
    granting: &[i32],
) -> Bytes {
    use kafka_protocol::messages::leader_change_message::Voter;
    let voter = |id: &i32| Voter::default().with_voter_id(*id);
    let message = LeaderChangeMessage::default()
        .with_version(0)
        .with_leader_id(leader_id.into())
        .with_voters(voters.iter().map(voter).collect())
        .with_granting_voters(granting.iter().map(voter).collect());
    let mut value = BytesMut::new();
    message
        .encode(&mut value, 0)
        .expect("LeaderChangeMessage v0 encodes");
    control_batch(
        base_offset,
        epoch,
        timestamp,
        CONTROL_LEADER_CHANGE,
        value.freeze(),
    )
}

/// The headers of the whole batches in `bytes`, each checked (size, magic,
/// CRC). Stops with an error at the first bad batch; a torn tail is an
/// error too, since a leader only sends whole batches.
pub fn headers(bytes: &[u8]) -> Result<Vec<BatchHeader>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let header = check_batch(&bytes[at..]).map_err(|e| format!("batch at byte {at}: {e}"))?;
        at += header.size_bytes();
        out.push(header);
    }
    Ok(out)
}
