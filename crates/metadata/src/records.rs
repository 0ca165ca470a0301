//! Metadata records in Kafka's on-disk metadata-log format.
//!
//! Each record is framed as Kafka's `MetadataRecordSerde` writes an
//! `ApiMessageAndVersion`: an unsigned-varint frame version (always 1), an
//! unsigned-varint api key, an unsigned-varint record version, then the
//! record body in the flexible ("compact") encoding of the record's JSON
//! schema (`metadata/src/main/resources/common/metadata/*.json` in Kafka),
//! ending with the tagged-field section. Every metadata record is flexible
//! from version 0.
//!
//! Records travel in ordinary v2 record batches: each metadata record is the
//! value of one Kafka record with a null key ([`encode_batch`],
//! [`decode_batches`]). Control batches (KRaft's leader-change and snapshot
//! markers) are skipped on decode.
//!
//! Departures from Kafka: unknown tagged fields are skipped on decode rather
//! than kept, so re-encoding a record written by a newer Kafka drops them.
//! Encoding at a version that lacks a field silently leaves that field out
//! (Kafka throws for non-default values); [`MetadataRecord::encode`] always
//! uses the version stored in the struct, and the controller only builds
//! records whose fields exist at that version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use crate::MetadataError;

/// The `ApiMessageAndVersion` frame version Kafka writes and accepts.
pub const FRAME_VERSION: u32 = 1;

/// Kafka's `DirectoryId.UNASSIGNED`: a replica whose log directory is not
/// known yet (the all-zero uuid).
pub const DIRECTORY_UNASSIGNED: Uuid = Uuid::nil();

/// One listener of a broker, as registered in [`RegisterBrokerRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `CONTROLLER`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id: PLAINTEXT 0, SSL 1, SASL_PLAINTEXT 2,
    /// SASL_SSL 3.
    pub security_protocol: i16,
}

/// A feature range a broker supports (`RegisterBrokerRecord.Features`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// Api key 0, versions 0-3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    /// The record version to encode at (0-3).
    pub version: i16,
    pub broker_id: i32,
    /// Version 2+.
    pub is_migrating_zk_broker: bool,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<Endpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Version 1+.
    pub in_controlled_shutdown: bool,
    /// Version 3+, tagged field 0.
    pub log_dirs: Vec<Uuid>,
}

impl Default for RegisterBrokerRecord {
    fn default() -> Self {
        RegisterBrokerRecord {
            version: 3,
            broker_id: 0,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::nil(),
            broker_epoch: 0,
            end_points: Vec::new(),
            features: Vec::new(),
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        }
    }
}

/// Api key 1, version 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterBrokerRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// Api key 2, version 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// Api key 3, versions 0-2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    /// The record version to encode at (0-2).
    pub version: i16,
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    /// Tagged field 0, default 0.
    pub leader_recovery_state: i8,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Version 1+: one log directory per replica.
    pub directories: Vec<Uuid>,
    /// Version 2+, tagged field 1.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// Version 2+, tagged field 2.
    pub last_known_elr: Option<Vec<i32>>,
}

impl Default for PartitionRecord {
    fn default() -> Self {
        PartitionRecord {
            version: 1,
            partition_id: -1,
            topic_id: Uuid::nil(),
            replicas: Vec::new(),
            isr: Vec::new(),
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: -1,
            leader_recovery_state: 0,
            leader_epoch: -1,
            partition_epoch: -1,
            directories: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }
}

/// Api key 4, version 0. `value: None` deletes the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigRecord {
    /// Kafka's `ConfigResource.Type`: topic 2, broker 4.
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// Api key 5, versions 0-2. Every field but the ids is tagged; `None` (or
/// `leader == -2`, `leader_recovery_state == -1`) means "unchanged".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    /// The record version to encode at (0-2).
    pub version: i16,
    pub partition_id: i32,
    pub topic_id: Uuid,
    /// Tag 0.
    pub isr: Option<Vec<i32>>,
    /// Tag 1: -1 no leader now, -2 unchanged.
    pub leader: i32,
    /// Tag 2.
    pub replicas: Option<Vec<i32>>,
    /// Tag 3.
    pub removing_replicas: Option<Vec<i32>>,
    /// Tag 4.
    pub adding_replicas: Option<Vec<i32>>,
    /// Tag 5: -1 unchanged.
    pub leader_recovery_state: i8,
    /// Version 1+, tag 8.
    pub directories: Option<Vec<Uuid>>,
    /// Version 2+, tag 6.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// Version 2+, tag 7.
    pub last_known_elr: Option<Vec<i32>>,
}

/// `PartitionChangeRecord.Leader` when the leader did not change.
pub const NO_LEADER_CHANGE: i32 = -2;

impl Default for PartitionChangeRecord {
    fn default() -> Self {
        PartitionChangeRecord {
            version: 0,
            partition_id: -1,
            topic_id: Uuid::nil(),
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: -1,
            directories: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }
}

/// Api key 9, version 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// Api key 12, version 0. Level 0 removes the feature.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// Api key 15, version 0: the controller handed a block of producer ids
/// to a broker; `next_producer_id` is the first id of the next block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// Api key 20, version 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoOpRecord;

/// One metadata record (Kafka's `ApiMessageAndVersion` of a metadata
/// record type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    FeatureLevel(FeatureLevelRecord),
    ProducerIds(ProducerIdsRecord),
    NoOp(NoOpRecord),
}

/// Api keys (Kafka's `MetadataRecordType`).
pub mod api_key {
    pub const REGISTER_BROKER: i16 = 0;
    pub const UNREGISTER_BROKER: i16 = 1;
    pub const TOPIC: i16 = 2;
    pub const PARTITION: i16 = 3;
    pub const CONFIG: i16 = 4;
    pub const PARTITION_CHANGE: i16 = 5;
    pub const REMOVE_TOPIC: i16 = 9;
    pub const FEATURE_LEVEL: i16 = 12;
    pub const PRODUCER_IDS: i16 = 15;
    pub const NO_OP: i16 = 20;
}

/// The highest version of each record type this crate reads and writes.
pub fn max_version(api_key: i16) -> Option<i16> {
    match api_key {
        api_key::REGISTER_BROKER => Some(3),
        api_key::PARTITION | api_key::PARTITION_CHANGE => Some(2),
        api_key::UNREGISTER_BROKER
        | api_key::TOPIC
        | api_key::CONFIG
        | api_key::REMOVE_TOPIC
        | api_key::FEATURE_LEVEL
        | api_key::PRODUCER_IDS
        | api_key::NO_OP => Some(0),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Primitive helpers. kafka-protocol 0.18 keeps its `Encoder`/`Decoder`
// traits crate-private, so the few primitives of the flexible format are
// written here: big-endian fixed ints, unsigned varints, compact strings
// and arrays (length + 1, 0 for null), 16-byte uuids.

fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// A compact length: `len + 1`. Metadata records never hold a string or
/// array of 4 GiB; one that did is a bug here.
fn put_compact_len(buf: &mut BytesMut, len: usize) {
    let len = u32::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(1))
        .expect("a metadata record field is shorter than 4 GiB");
    put_uvarint(buf, len);
}

fn put_str(buf: &mut BytesMut, value: &str) {
    put_compact_len(buf, value.len());
    buf.put_slice(value.as_bytes());
}

fn put_opt_str(buf: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(v) => put_str(buf, v),
        None => put_uvarint(buf, 0),
    }
}

fn put_uuid(buf: &mut BytesMut, value: &Uuid) {
    buf.put_slice(value.as_bytes());
}

fn put_bool(buf: &mut BytesMut, value: bool) {
    buf.put_u8(u8::from(value));
}

fn put_i32s(buf: &mut BytesMut, value: &[i32]) {
    put_compact_len(buf, value.len());
    for v in value {
        buf.put_i32(*v);
    }
}

fn put_uuids(buf: &mut BytesMut, value: &[Uuid]) {
    put_compact_len(buf, value.len());
    for v in value {
        put_uuid(buf, v);
    }
}

/// The tagged-field section: (tag, encoded value) pairs in increasing tag order.
fn put_tagged(buf: &mut BytesMut, fields: &[(u32, BytesMut)]) {
    put_uvarint(buf, fields.len() as u32);
    for (tag, value) in fields {
        put_uvarint(buf, *tag);
        let len = u32::try_from(value.len()).expect("a tagged field is shorter than 4 GiB");
        put_uvarint(buf, len);
        buf.put_slice(value);
    }
}

fn tagged(f: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut b = BytesMut::new();
    f(&mut b);
    b
}

fn malformed(what: &str, e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Malformed(format!("{what}: {e}"))
}

/// A cursor over untrusted bytes; every read checks the length first and
/// no read allocates more than the bytes that are left.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], MetadataError> {
        if n > self.buf.len() {
            return Err(MetadataError::Malformed(format!(
                "{what}: needs {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array_n<const N: usize>(&mut self, what: &str) -> Result<[u8; N], MetadataError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    fn i8(&mut self, what: &str) -> Result<i8, MetadataError> {
        Ok(i8::from_be_bytes(self.array_n(what)?))
    }
    fn i16(&mut self, what: &str) -> Result<i16, MetadataError> {
        Ok(i16::from_be_bytes(self.array_n(what)?))
    }
    fn u16(&mut self, what: &str) -> Result<u16, MetadataError> {
        Ok(u16::from_be_bytes(self.array_n(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, MetadataError> {
        Ok(i32::from_be_bytes(self.array_n(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64, MetadataError> {
        Ok(i64::from_be_bytes(self.array_n(what)?))
    }
    /// Kafka reads any non-zero byte as true.
    fn bool(&mut self, what: &str) -> Result<bool, MetadataError> {
        Ok(self.i8(what)? != 0)
    }
    fn uuid(&mut self, what: &str) -> Result<Uuid, MetadataError> {
        Ok(Uuid::from_bytes(self.array_n(what)?))
    }
    /// Kafka's `readUnsignedVarint`: at most 5 bytes.
    fn uvarint(&mut self, what: &str) -> Result<u32, MetadataError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.i8(what)? as u8;
            if i == 4 && b > 0x0f {
                return Err(malformed(what, "varint is too long"));
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed(what, "varint is too long"))
    }
    /// A compact length: `None` for null.
    fn compact_len(&mut self, what: &str) -> Result<Option<usize>, MetadataError> {
        Ok(match self.uvarint(what)? {
            0 => None,
            n => Some((n - 1) as usize),
        })
    }
    fn string(&mut self, what: &str) -> Result<String, MetadataError> {
        match self.opt_string(what)? {
            Some(s) => Ok(s),
            None => Err(MetadataError::Malformed(format!("{what}: null string"))),
        }
    }
    fn opt_string(&mut self, what: &str) -> Result<Option<String>, MetadataError> {
        let Some(len) = self.compact_len(what)? else {
            return Ok(None);
        };
        let bytes = self.take(len, what)?;
        let s = std::str::from_utf8(bytes).map_err(|e| malformed(what, e))?;
        Ok(Some(s.to_string()))
    }
    fn i32s(&mut self, what: &str) -> Result<Vec<i32>, MetadataError> {
        self.array(what, |r| r.i32(what))
    }
    fn opt_i32s(&mut self, what: &str) -> Result<Option<Vec<i32>>, MetadataError> {
        self.opt_array(what, |r| r.i32(what))
    }
    fn uuids(&mut self, what: &str) -> Result<Vec<Uuid>, MetadataError> {
        self.array(what, |r| r.uuid(what))
    }
    fn opt_uuids(&mut self, what: &str) -> Result<Option<Vec<Uuid>>, MetadataError> {
        self.opt_array(what, |r| r.uuid(what))
    }
    /// A non-null compact array of elements, each read by `f`.
    fn array<T>(
        &mut self,
        what: &str,
        f: impl FnMut(&mut Reader<'a>) -> Result<T, MetadataError>,
    ) -> Result<Vec<T>, MetadataError> {
        self.opt_array(what, f)?
            .ok_or_else(|| MetadataError::Malformed(format!("{what}: null array")))
    }
    fn opt_array<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Reader<'a>) -> Result<T, MetadataError>,
    ) -> Result<Option<Vec<T>>, MetadataError> {
        let Some(n) = self.compact_len(what)? else {
            return Ok(None);
        };
        // Each element takes at least one byte: never reserve more than that.
        let mut out = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(Some(out))
    }
    /// The tagged-field section; `f(tag, reader over exactly that field)`
    /// returns whether it knew the tag. Unknown tags are skipped.
    fn tagged_fields(
        &mut self,
        mut f: impl FnMut(u32, &mut Reader<'a>) -> Result<bool, MetadataError>,
    ) -> Result<(), MetadataError> {
        let count = self.uvarint("tagged field count")?;
        let mut last: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            if last.is_some_and(|l| tag <= l) {
                return Err(MetadataError::Malformed(format!(
                    "tagged field {tag} out of order"
                )));
            }
            last = Some(tag);
            let size = self.uvarint("tagged field size")? as usize;
            if size > self.buf.len() {
                return Err(MetadataError::Malformed(format!(
                    "tagged field {tag} of {size} bytes, only {} left",
                    self.buf.len()
                )));
            }
            let (field, rest) = self.buf.split_at(size);
            self.buf = rest;
            let mut sub = Reader { buf: field };
            if f(tag, &mut sub)? && !sub.buf.is_empty() {
                return Err(MetadataError::Malformed(format!(
                    "tagged field {tag} has {} trailing bytes",
                    sub.buf.len()
                )));
            }
        }
        Ok(())
    }
    fn no_tagged_fields(&mut self) -> Result<(), MetadataError> {
        self.tagged_fields(|_, _| Ok(false))
    }
}

// ---------------------------------------------------------------------------

impl MetadataRecord {
    /// Kafka's api key for this record type.
    pub fn api_key(&self) -> i16 {
        match self {
            MetadataRecord::RegisterBroker(_) => api_key::REGISTER_BROKER,
            MetadataRecord::UnregisterBroker(_) => api_key::UNREGISTER_BROKER,
            MetadataRecord::Topic(_) => api_key::TOPIC,
            MetadataRecord::Partition(_) => api_key::PARTITION,
            MetadataRecord::Config(_) => api_key::CONFIG,
            MetadataRecord::PartitionChange(_) => api_key::PARTITION_CHANGE,
            MetadataRecord::RemoveTopic(_) => api_key::REMOVE_TOPIC,
            MetadataRecord::FeatureLevel(_) => api_key::FEATURE_LEVEL,
            MetadataRecord::ProducerIds(_) => api_key::PRODUCER_IDS,
            MetadataRecord::NoOp(_) => api_key::NO_OP,
        }
    }

    /// The version this record encodes at.
    pub fn version(&self) -> i16 {
        match self {
            MetadataRecord::RegisterBroker(r) => r.version,
            MetadataRecord::Partition(r) => r.version,
            MetadataRecord::PartitionChange(r) => r.version,
            _ => 0,
        }
    }

    /// Encodes the record as Kafka's `MetadataRecordSerde` does.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        put_uvarint(&mut buf, FRAME_VERSION);
        put_uvarint(&mut buf, self.api_key() as u32);
        put_uvarint(&mut buf, self.version().max(0) as u32);
        let b = &mut buf;
        match self {
            MetadataRecord::RegisterBroker(r) => {
                b.put_i32(r.broker_id);
                if r.version >= 2 {
                    put_bool(b, r.is_migrating_zk_broker);
                }
                put_uuid(b, &r.incarnation_id);
                b.put_i64(r.broker_epoch);
                put_compact_len(b, r.end_points.len());
                for e in &r.end_points {
                    put_str(b, &e.name);
                    put_str(b, &e.host);
                    b.put_u16(e.port);
                    b.put_i16(e.security_protocol);
                    put_tagged(b, &[]);
                }
                put_compact_len(b, r.features.len());
                for f in &r.features {
                    put_str(b, &f.name);
                    b.put_i16(f.min_supported_version);
                    b.put_i16(f.max_supported_version);
                    put_tagged(b, &[]);
                }
                put_opt_str(b, r.rack.as_deref());
                put_bool(b, r.fenced);
                if r.version >= 1 {
                    put_bool(b, r.in_controlled_shutdown);
                }
                let mut tags = Vec::new();
                if r.version >= 3 && !r.log_dirs.is_empty() {
                    tags.push((0, tagged(|t| put_uuids(t, &r.log_dirs))));
                }
                put_tagged(b, &tags);
            }
            MetadataRecord::UnregisterBroker(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
                put_tagged(b, &[]);
            }
            MetadataRecord::Topic(r) => {
                put_str(b, &r.name);
                put_uuid(b, &r.topic_id);
                put_tagged(b, &[]);
            }
            MetadataRecord::Partition(r) => {
                b.put_i32(r.partition_id);
                put_uuid(b, &r.topic_id);
                put_i32s(b, &r.replicas);
                put_i32s(b, &r.isr);
                put_i32s(b, &r.removing_replicas);
                put_i32s(b, &r.adding_replicas);
                b.put_i32(r.leader);
                b.put_i32(r.leader_epoch);
                b.put_i32(r.partition_epoch);
                if r.version >= 1 {
                    put_uuids(b, &r.directories);
                }
                let mut tags = Vec::new();
                if r.leader_recovery_state != 0 {
                    tags.push((0, tagged(|t| t.put_i8(r.leader_recovery_state))));
                }
                if r.version >= 2 {
                    if let Some(v) = &r.eligible_leader_replicas {
                        tags.push((1, tagged(|t| put_i32s(t, v))));
                    }
                    if let Some(v) = &r.last_known_elr {
                        tags.push((2, tagged(|t| put_i32s(t, v))));
                    }
                }
                put_tagged(b, &tags);
            }
            MetadataRecord::Config(r) => {
                b.put_i8(r.resource_type);
                put_str(b, &r.resource_name);
                put_str(b, &r.name);
                put_opt_str(b, r.value.as_deref());
                put_tagged(b, &[]);
            }
            MetadataRecord::PartitionChange(r) => {
                b.put_i32(r.partition_id);
                put_uuid(b, &r.topic_id);
                let mut tags = Vec::new();
                if let Some(v) = &r.isr {
                    tags.push((0, tagged(|t| put_i32s(t, v))));
                }
                if r.leader != NO_LEADER_CHANGE {
                    tags.push((1, tagged(|t| t.put_i32(r.leader))));
                }
                if let Some(v) = &r.replicas {
                    tags.push((2, tagged(|t| put_i32s(t, v))));
                }
                if let Some(v) = &r.removing_replicas {
                    tags.push((3, tagged(|t| put_i32s(t, v))));
                }
                if let Some(v) = &r.adding_replicas {
                    tags.push((4, tagged(|t| put_i32s(t, v))));
                }
                if r.leader_recovery_state != -1 {
                    tags.push((5, tagged(|t| t.put_i8(r.leader_recovery_state))));
                }
                if r.version >= 2 {
                    if let Some(v) = &r.eligible_leader_replicas {
                        tags.push((6, tagged(|t| put_i32s(t, v))));
                    }
                    if let Some(v) = &r.last_known_elr {
                        tags.push((7, tagged(|t| put_i32s(t, v))));
                    }
                }
                if r.version >= 1 {
                    if let Some(v) = &r.directories {
                        tags.push((8, tagged(|t| put_uuids(t, v))));
                    }
                }
                put_tagged(b, &tags);
            }
            MetadataRecord::RemoveTopic(r) => {
                put_uuid(b, &r.topic_id);
                put_tagged(b, &[]);
            }
            MetadataRecord::FeatureLevel(r) => {
                put_str(b, &r.name);
                b.put_i16(r.feature_level);
                put_tagged(b, &[]);
            }
            MetadataRecord::ProducerIds(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
                b.put_i64(r.next_producer_id);
                put_tagged(b, &[]);
            }
            MetadataRecord::NoOp(_) => {
                put_tagged(b, &[]);
            }
        }
        buf.freeze()
    }

    /// Decodes one record as Kafka's `MetadataRecordSerde` reads it. Unknown
    /// frame versions, api keys or record versions, truncation and trailing
    /// bytes are errors.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, MetadataError> {
        let mut r = Reader { buf: bytes };
        let frame = r.uvarint("frame version")?;
        if frame != FRAME_VERSION {
            return Err(MetadataError::Malformed(format!(
                "unknown frame version {frame} (only {FRAME_VERSION} is supported)"
            )));
        }
        let key = r.uvarint("api key")?;
        let version = r.uvarint("record version")?;
        let (key, version) = match (i16::try_from(key), i16::try_from(version)) {
            (Ok(k), Ok(v)) => (k, v),
            _ => {
                return Err(MetadataError::UnknownRecord {
                    api_key: key,
                    version,
                })
            }
        };
        match max_version(key) {
            Some(max) if version <= max => {}
            _ => {
                return Err(MetadataError::UnknownRecord {
                    api_key: key as u32,
                    version: version as u32,
                })
            }
        }
        let record = match key {
            api_key::REGISTER_BROKER => {
                let mut rec = RegisterBrokerRecord {
                    version,
                    ..RegisterBrokerRecord::default()
                };
                rec.broker_id = r.i32("broker id")?;
                if version >= 2 {
                    rec.is_migrating_zk_broker = r.bool("is migrating zk broker")?;
                }
                rec.incarnation_id = r.uuid("incarnation id")?;
                rec.broker_epoch = r.i64("broker epoch")?;
                rec.end_points = r.array("endpoints", |r| {
                    let e = Endpoint {
                        name: r.string("endpoint name")?,
                        host: r.string("endpoint host")?,
                        port: r.u16("endpoint port")?,
                        security_protocol: r.i16("endpoint security protocol")?,
                    };
                    r.no_tagged_fields()?;
                    Ok(e)
                })?;
                rec.features = r.array("features", |r| {
                    let f = BrokerFeature {
                        name: r.string("feature name")?,
                        min_supported_version: r.i16("min supported version")?,
                        max_supported_version: r.i16("max supported version")?,
                    };
                    r.no_tagged_fields()?;
                    Ok(f)
                })?;
                rec.rack = r.opt_string("rack")?;
                rec.fenced = r.bool("fenced")?;
                if version >= 1 {
                    rec.in_controlled_shutdown = r.bool("in controlled shutdown")?;
                }
                let mut log_dirs = Vec::new();
                r.tagged_fields(|tag, t| match tag {
                    0 if version >= 3 => {
                        log_dirs = t.uuids("log dirs")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                rec.log_dirs = log_dirs;
                MetadataRecord::RegisterBroker(rec)
            }
            api_key::UNREGISTER_BROKER => {
                let rec = UnregisterBrokerRecord {
                    broker_id: r.i32("broker id")?,
                    broker_epoch: r.i64("broker epoch")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::UnregisterBroker(rec)
            }
            api_key::TOPIC => {
                let rec = TopicRecord {
                    name: r.string("topic name")?,
                    topic_id: r.uuid("topic id")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::Topic(rec)
            }
            api_key::PARTITION => {
                let mut rec = PartitionRecord {
                    version,
                    partition_id: r.i32("partition id")?,
                    topic_id: r.uuid("topic id")?,
                    replicas: r.i32s("replicas")?,
                    isr: r.i32s("isr")?,
                    removing_replicas: r.i32s("removing replicas")?,
                    adding_replicas: r.i32s("adding replicas")?,
                    leader: r.i32("leader")?,
                    leader_recovery_state: 0,
                    leader_epoch: r.i32("leader epoch")?,
                    partition_epoch: r.i32("partition epoch")?,
                    directories: Vec::new(),
                    eligible_leader_replicas: None,
                    last_known_elr: None,
                };
                if version >= 1 {
                    rec.directories = r.uuids("directories")?;
                }
                let (mut lrs, mut elr, mut lke) = (0i8, None, None);
                r.tagged_fields(|tag, t| match tag {
                    0 => {
                        lrs = t.i8("leader recovery state")?;
                        Ok(true)
                    }
                    1 if version >= 2 => {
                        elr = t.opt_i32s("eligible leader replicas")?;
                        Ok(true)
                    }
                    2 if version >= 2 => {
                        lke = t.opt_i32s("last known elr")?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                rec.leader_recovery_state = lrs;
                rec.eligible_leader_replicas = elr;
                rec.last_known_elr = lke;
                MetadataRecord::Partition(rec)
            }
            api_key::CONFIG => {
                let rec = ConfigRecord {
                    resource_type: r.i8("resource type")?,
                    resource_name: r.string("resource name")?,
                    name: r.string("config name")?,
                    value: r.opt_string("config value")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::Config(rec)
            }
            api_key::PARTITION_CHANGE => {
                let mut rec = PartitionChangeRecord {
                    version,
                    partition_id: r.i32("partition id")?,
                    topic_id: r.uuid("topic id")?,
                    ..PartitionChangeRecord::default()
                };
                let mut fields = PartitionChangeRecord {
                    version,
                    ..PartitionChangeRecord::default()
                };
                r.tagged_fields(|tag, t| {
                    match tag {
                        0 => fields.isr = t.opt_i32s("isr")?,
                        1 => fields.leader = t.i32("leader")?,
                        2 => fields.replicas = t.opt_i32s("replicas")?,
                        3 => fields.removing_replicas = t.opt_i32s("removing replicas")?,
                        4 => fields.adding_replicas = t.opt_i32s("adding replicas")?,
                        5 => fields.leader_recovery_state = t.i8("leader recovery state")?,
                        6 if version >= 2 => {
                            fields.eligible_leader_replicas =
                                t.opt_i32s("eligible leader replicas")?
                        }
                        7 if version >= 2 => {
                            fields.last_known_elr = t.opt_i32s("last known elr")?
                        }
                        8 if version >= 1 => fields.directories = t.opt_uuids("directories")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                rec.isr = fields.isr;
                rec.leader = fields.leader;
                rec.replicas = fields.replicas;
                rec.removing_replicas = fields.removing_replicas;
                rec.adding_replicas = fields.adding_replicas;
                rec.leader_recovery_state = fields.leader_recovery_state;
                rec.eligible_leader_replicas = fields.eligible_leader_replicas;
                rec.last_known_elr = fields.last_known_elr;
                rec.directories = fields.directories;
                MetadataRecord::PartitionChange(rec)
            }
            api_key::REMOVE_TOPIC => {
                let rec = RemoveTopicRecord {
                    topic_id: r.uuid("topic id")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::RemoveTopic(rec)
            }
            api_key::FEATURE_LEVEL => {
                let rec = FeatureLevelRecord {
                    name: r.string("feature name")?,
                    feature_level: r.i16("feature level")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::FeatureLevel(rec)
            }
            api_key::PRODUCER_IDS => {
                let rec = ProducerIdsRecord {
                    broker_id: r.i32("broker id")?,
                    broker_epoch: r.i64("broker epoch")?,
                    next_producer_id: r.i64("next producer id")?,
                };
                r.no_tagged_fields()?;
                MetadataRecord::ProducerIds(rec)
            }
            api_key::NO_OP => {
                r.no_tagged_fields()?;
                MetadataRecord::NoOp(NoOpRecord)
            }
            other => {
                return Err(MetadataError::UnknownRecord {
                    api_key: other as u32,
                    version: version as u32,
                })
            }
        };
        if !r.buf.is_empty() {
            return Err(MetadataError::Malformed(format!(
                "{} byte(s) of garbage after record with api key {key}",
                r.buf.len()
            )));
        }
        Ok(record)
    }
}

/// Encodes `records` as ONE uncompressed v2 record batch: base offset 0,
/// producer id -1, partition leader epoch -1 (the log append stamps both the
/// real base offset and the leader epoch), each metadata record the value of
/// one record with a null key, all with `timestamp_ms`.
pub fn encode_batch(records: &[MetadataRecord], timestamp_ms: i64) -> BytesMut {
    let kafka_records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever offset minus
            // sequence changes; this keeps one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: None,
            value: Some(r.encode()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &kafka_records, &options)
        .expect("encoding an uncompressed batch into memory cannot fail");
    buf
}

/// Size of the v2 batch header up to and including the record count.
const BATCH_HEADER_BYTES: usize = 61;
/// The smallest possible v2 record: length, attributes, timestamp delta,
/// offset delta, key length, value length, header count (one byte each).
const RECORD_BYTES_MIN: usize = 7;
/// A bound on the records of one compressed batch, whose decoded size the
/// header does not tell.
const COMPRESSED_RECORDS_MAX: usize = 1 << 20;

/// Decodes whole v2 batches as read back from the log, returning each
/// metadata record with its real offset. Control batches are skipped; a
/// record with a null value, a partial batch or a bad CRC is an error.
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<(i64, MetadataRecord)>, MetadataError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Check the header ourselves first so that a batch claiming a huge
        // record count cannot make the decoder reserve memory for it.
        if rest.len() < BATCH_HEADER_BYTES {
            return Err(MetadataError::Malformed(format!(
                "partial batch header of {} bytes",
                rest.len()
            )));
        }
        let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let magic = rest[16] as i8;
        if magic != 2 {
            return Err(MetadataError::Malformed(format!(
                "batch magic {magic}, only v2 batches hold metadata records"
            )));
        }
        let total = usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|&t| t >= BATCH_HEADER_BYTES)
            .ok_or_else(|| MetadataError::Malformed(format!("bad batch length {batch_length}")))?;
        if total > rest.len() {
            return Err(MetadataError::Malformed(format!(
                "partial batch: {total} bytes claimed, {} present",
                rest.len()
            )));
        }
        let record_count = i32::from_be_bytes([rest[57], rest[58], rest[59], rest[60]]);
        let attributes = i16::from_be_bytes([rest[21], rest[22]]);
        let compressed = attributes & 0x7 != 0;
        let count_max = if compressed {
            COMPRESSED_RECORDS_MAX
        } else {
            (total - BATCH_HEADER_BYTES) / RECORD_BYTES_MIN
        };
        if record_count < 0 || record_count as usize > count_max {
            return Err(MetadataError::Malformed(format!(
                "batch claims {record_count} records in {} bytes",
                total - BATCH_HEADER_BYTES
            )));
        }
        let (batch, tail) = rest.split_at(total);
        rest = tail;
        let mut cursor: &[u8] = batch;
        let set = RecordBatchDecoder::decode(&mut cursor).map_err(|e| malformed("batch", e))?;
        for record in set.records {
            if record.control {
                continue;
            }
            let value = record.value.ok_or_else(|| {
                MetadataError::Malformed(format!("record at offset {} has no value", record.offset))
            })?;
            out.push((record.offset, MetadataRecord::decode(&value)?));
        }
    }
    Ok(out)
}
