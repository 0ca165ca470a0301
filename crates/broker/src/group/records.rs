//! Records of the internal topic `__consumer_offsets`, in Apache Kafka's
//! byte format, so that an offsets topic copied from a Kafka cluster loads
//! in Riffle and the other way round.
//!
//! A record's key starts with an int16 that Kafka calls the key version
//! and uses as a record type: 0 and 1 are `OffsetCommitKey` (the same
//! fields at both versions), 2 is `GroupMetadataKey`, 3 and up belong to
//! the KIP-848 consumer groups and the share groups. The value starts with
//! an int16 version of the value schema that the key selects; a null value
//! is a tombstone. The schemas are Kafka's
//! `group-coordinator/src/main/resources/common/message/{OffsetCommitKey,
//! OffsetCommitValue,GroupMetadataKey,GroupMetadataValue}.json`.
//!
//! What is read and written:
//! - `OffsetCommitValue` versions 0-4 are read. Version 3 is written, or
//!   version 1 when the commit carries an expire timestamp, which only
//!   version 1 can hold (that version has no leader epoch, so the epoch is
//!   dropped, as in Kafka).
//! - `GroupMetadataValue` versions 0-4 are read, version 3 is written.
//! - Version 4 of both values is "flexible": compact (varint) lengths and a
//!   tagged-field section after every struct. None of the tags is known
//!   here, so they are skipped.
//! - Keys of other record types decode to [`GroupRecord::Other`] without
//!   reading their bytes, as Kafka's loader skips types it does not know.
//! - Batches: the coordinator's own records go in plain v2 batches
//!   ([`build_batch`]); the offsets of a TxnOffsetCommit go in one
//!   transactional batch carrying the producer's id and epoch
//!   ([`build_transactional_batch`]). [`read_log`] returns every batch with
//!   its producer, its transactional flag and, for control batches, the
//!   transaction marker's type, which is what the loader needs to tell
//!   committed, aborted and still pending transactional offsets apart
//!   ([`LogBatch::entries`]).
//!
//! The primitives are written out here rather than with `kafka-protocol`'s
//! `types::{String, Int16, ...}`: the crate does not ship the coordinator
//! record schemas, and its `Encoder`/`Decoder` traits are crate-private, so
//! those types cannot be used from outside it (the metadata records in
//! `riffle-metadata` hit the same wall). Record batches do use the crate.
//!
//! Decoding follows Kafka's generated readers where they are lenient and
//! is stricter only where Kafka would never have written the bytes:
//! - a nullable string with any negative length is null, a non-nullable
//!   one is an error; strings longer than 32767 bytes are refused even in
//!   compact form (Kafka's readers do the same);
//! - bytes after the last field are ignored (Kafka does not look);
//! - tagged fields may come in any order;
//! - a string that is not UTF-8 is an error (Java would substitute U+FFFD,
//!   but Kafka only ever writes valid UTF-8).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

/// The key version (record type) of an offset commit, as written.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// The key version (record type) of a classic group's metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The longest string a record can hold: Kafka's readers refuse longer
/// ones, and the int16 length of the written versions cannot express them.
/// Requests carrying longer strings must be refused before they reach the
/// encoders here, which panic on them.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

const OFFSET_COMMIT_VALUE_VERSION_MAX: i16 = 4;
const GROUP_METADATA_VALUE_VERSION_MAX: i16 = 4;
/// The first flexible version of both value schemas.
const FLEXIBLE_VERSION_MIN: i16 = 4;

/// The key of a committed offset (`OffsetCommitKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when none was committed. Versions 0-2 do not hold it.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// -1 for none. Only version 1 holds it; a value with one is written at
    /// version 1, without its leader epoch.
    pub expire_timestamp: i64,
}

/// One member of a classic group (`GroupMetadataValue.MemberMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    /// Version 3+; `None` in older records.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Version 1+; -1 in version 0 records, for which Kafka's coordinator
    /// uses the session timeout instead.
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's state after a rebalance (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Version 2+; -1 for none.
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// One decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// A committed offset; `None` is a tombstone (the offset was deleted).
    Offset {
        key: OffsetKey,
        value: Option<OffsetValue>,
    },
    /// A classic group's metadata; `None` is a tombstone (the group was
    /// deleted).
    Group {
        group: String,
        value: Option<GroupMetadataValue>,
    },
    /// A record type this coordinator does not read (KIP-848 consumer
    /// groups, share groups, or a type from a newer Kafka). The loader
    /// skips it.
    Other { key_version: i16 },
}

/// Why bytes from the log are not a record (or not a record batch).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("{field}: truncated ({needed} bytes needed, {left} left)")]
    Truncated {
        field: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("{schema} version {version} is not one Kafka defines (0-{max})")]
    BadVersion {
        schema: &'static str,
        version: i16,
        max: i16,
    },
    #[error("{field}: bad length {length}")]
    BadLength { field: &'static str, length: i64 },
    #[error("{field}: null, which the schema does not allow")]
    UnexpectedNull { field: &'static str },
    #[error("{field}: not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("{field}: unsigned varint longer than 5 bytes")]
    BadVarint { field: &'static str },
    #[error("batch at byte {position} of the read: {reason}")]
    CorruptBatch { position: usize, reason: String },
    #[error("record at offset {offset} has no key")]
    NullKey { offset: i64 },
}

// ---------------------------------------------------------------------------
// Encoding.

/// The key of a committed offset, at key version 1.
pub fn offset_key(key: &OffsetKey) -> Bytes {
    let mut w = Writer::new(false);
    w.i16(OFFSET_COMMIT_KEY_VERSION);
    w.string(&key.group, "OffsetCommitKey.group");
    w.string(&key.topic, "OffsetCommitKey.topic");
    w.i32(key.partition);
    w.finish()
}

/// A committed offset: version 3, or version 1 when it has an expire
/// timestamp (Kafka 3.x and 4.0 choose the same way).
///
/// # Panics
///
/// When the metadata is longer than [`STRING_BYTES_MAX`].
pub fn offset_value(value: &OffsetValue) -> Bytes {
    let version = if value.expire_timestamp == -1 { 3 } else { 1 };
    write_offset_value(value, version)
}

/// The key of a group's metadata, at key version 2.
pub fn group_key(group: &str) -> Bytes {
    let mut w = Writer::new(false);
    w.i16(GROUP_METADATA_KEY_VERSION);
    w.string(group, "GroupMetadataKey.group");
    w.finish()
}

/// A group's metadata at version 3, as Kafka 2.3 and later write it.
///
/// # Panics
///
/// When a string is longer than [`STRING_BYTES_MAX`].
pub fn group_value(value: &GroupMetadataValue) -> Bytes {
    write_group_value(value, 3)
}

/// `OffsetCommitValue` at any version 0-4 (fields the version lacks are
/// left out). Only 1 and 3 are written outside tests.
fn write_offset_value(value: &OffsetValue, version: i16) -> Bytes {
    assert!((0..=OFFSET_COMMIT_VALUE_VERSION_MAX).contains(&version));
    let mut w = Writer::new(version >= FLEXIBLE_VERSION_MIN);
    w.i16(version);
    w.i64(value.offset);
    if version >= 3 {
        w.i32(value.leader_epoch);
    }
    w.string(&value.metadata, "OffsetCommitValue.metadata");
    w.i64(value.commit_timestamp);
    if version == 1 {
        w.i64(value.expire_timestamp);
    }
    w.no_tagged_fields();
    w.finish()
}

/// `GroupMetadataValue` at any version 0-4. Only 3 is written outside
/// tests.
fn write_group_value(value: &GroupMetadataValue, version: i16) -> Bytes {
    assert!((0..=GROUP_METADATA_VALUE_VERSION_MAX).contains(&version));
    let mut w = Writer::new(version >= FLEXIBLE_VERSION_MIN);
    w.i16(version);
    w.string(&value.protocol_type, "GroupMetadataValue.protocolType");
    w.i32(value.generation);
    w.opt_string(value.protocol.as_deref(), "GroupMetadataValue.protocol");
    w.opt_string(value.leader.as_deref(), "GroupMetadataValue.leader");
    if version >= 2 {
        w.i64(value.current_state_timestamp);
    }
    w.array_len(value.members.len());
    for m in &value.members {
        w.string(&m.member_id, "MemberMetadata.memberId");
        if version >= 3 {
            w.opt_string(
                m.group_instance_id.as_deref(),
                "MemberMetadata.groupInstanceId",
            );
        }
        w.string(&m.client_id, "MemberMetadata.clientId");
        w.string(&m.client_host, "MemberMetadata.clientHost");
        if version >= 1 {
            w.i32(m.rebalance_timeout);
        }
        w.i32(m.session_timeout);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
        w.no_tagged_fields();
    }
    w.no_tagged_fields();
    w.finish()
}

/// Writes Kafka's primitives: big-endian fixed ints; in non-flexible
/// versions int16-length strings and int32-length bytes and arrays (-1 for
/// null); in flexible versions unsigned-varint lengths plus one (0 for
/// null) and a tagged-field section after each struct. The
/// `__transaction_state` records (`txn::records`) are written with it too.
pub(crate) struct Writer {
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    pub(crate) fn new(flexible: bool) -> Self {
        Writer {
            buf: BytesMut::new(),
            flexible,
        }
    }
    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }
    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }
    /// The length of a non-null string, bytes or array field.
    fn len(&mut self, len: usize, int16: bool) {
        if self.flexible {
            let len = u32::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(1))
                .expect("a record field is shorter than 4 GiB");
            self.uvarint(len);
        } else if int16 {
            self.i16(i16::try_from(len).expect("string length checked by the caller"));
        } else {
            self.i32(i32::try_from(len).expect("a record field is shorter than 2 GiB"));
        }
    }
    pub(crate) fn string(&mut self, s: &str, field: &str) {
        assert!(
            s.len() <= STRING_BYTES_MAX,
            "{field} of {} bytes: strings longer than {STRING_BYTES_MAX} bytes must be refused before they are written",
            s.len()
        );
        self.len(s.len(), true);
        self.buf.put_slice(s.as_bytes());
    }
    fn opt_string(&mut self, s: Option<&str>, field: &str) {
        match s {
            Some(s) => self.string(s, field),
            None if self.flexible => self.uvarint(0),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len(), false);
        self.buf.put_slice(b);
    }
    pub(crate) fn array_len(&mut self, n: usize) {
        self.len(n, false);
    }
    /// A null array.
    pub(crate) fn null_array(&mut self) {
        if self.flexible {
            self.uvarint(0);
        } else {
            self.i32(-1);
        }
    }
    /// An empty tagged-field section, in flexible versions only.
    fn no_tagged_fields(&mut self) {
        self.tagged_fields(&[]);
    }
    /// A tagged-field section, in flexible versions only: the count, then
    /// each (tag, size, bytes), which the caller gives in ascending tag
    /// order.
    pub(crate) fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        if !self.flexible {
            return;
        }
        self.uvarint(u32::try_from(fields.len()).expect("fewer than 2^32 tagged fields"));
        for (tag, bytes) in fields {
            self.uvarint(*tag);
            self.uvarint(u32::try_from(bytes.len()).expect("a tagged field is shorter than 4 GiB"));
            self.buf.put_slice(bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding.

/// Decodes one `__consumer_offsets` record: its key and its value, `None`
/// for a tombstone. Record types other than offset commits and classic
/// group metadata decode to [`GroupRecord::Other`], whatever their bytes.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
    let mut k = Reader::new(key, false);
    let key_version = k.i16("key version")?;
    match key_version {
        0 | 1 => {
            let key = OffsetKey {
                group: k.string("OffsetCommitKey.group")?,
                topic: k.string("OffsetCommitKey.topic")?,
                partition: k.i32("OffsetCommitKey.partition")?,
            };
            let value = value.map(read_offset_value).transpose()?;
            Ok(GroupRecord::Offset { key, value })
        }
        2 => {
            let group = k.string("GroupMetadataKey.group")?;
            let value = value.map(read_group_value).transpose()?;
            Ok(GroupRecord::Group { group, value })
        }
        _ => Ok(GroupRecord::Other { key_version }),
    }
}

/// Reads the value version and checks it is one of 0..=`max`.
pub(crate) fn value_version(
    bytes: &[u8],
    schema: &'static str,
    max: i16,
) -> Result<i16, RecordError> {
    let version = Reader::new(bytes, false).i16("value version")?;
    if !(0..=max).contains(&version) {
        return Err(RecordError::BadVersion {
            schema,
            version,
            max,
        });
    }
    Ok(version)
}

fn read_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let version = value_version(bytes, "OffsetCommitValue", OFFSET_COMMIT_VALUE_VERSION_MAX)?;
    let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VERSION_MIN);
    let offset = r.i64("OffsetCommitValue.offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("OffsetCommitValue.leaderEpoch")?
    } else {
        -1
    };
    let metadata = r.string("OffsetCommitValue.metadata")?;
    let commit_timestamp = r.i64("OffsetCommitValue.commitTimestamp")?;
    let expire_timestamp = if version == 1 {
        r.i64("OffsetCommitValue.expireTimestamp")?
    } else {
        -1
    };
    r.skip_tagged_fields("OffsetCommitValue")?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

fn read_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let version = value_version(
        bytes,
        "GroupMetadataValue",
        GROUP_METADATA_VALUE_VERSION_MAX,
    )?;
    let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VERSION_MIN);
    let protocol_type = r.string("GroupMetadataValue.protocolType")?;
    let generation = r.i32("GroupMetadataValue.generation")?;
    let protocol = r.opt_string("GroupMetadataValue.protocol")?;
    let leader = r.opt_string("GroupMetadataValue.leader")?;
    let current_state_timestamp = if version >= 2 {
        r.i64("GroupMetadataValue.currentStateTimestamp")?
    } else {
        -1
    };
    let count = r.array_len("GroupMetadataValue.members")?;
    // Not reserved from the count: a member struct is much larger than
    // the fewest bytes that encode one.
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string("MemberMetadata.memberId")?;
        let group_instance_id = if version >= 3 {
            r.opt_string("MemberMetadata.groupInstanceId")?
        } else {
            None
        };
        let client_id = r.string("MemberMetadata.clientId")?;
        let client_host = r.string("MemberMetadata.clientHost")?;
        let rebalance_timeout = if version >= 1 {
            r.i32("MemberMetadata.rebalanceTimeout")?
        } else {
            -1
        };
        let session_timeout = r.i32("MemberMetadata.sessionTimeout")?;
        let subscription = r.bytes("MemberMetadata.subscription")?;
        let assignment = r.bytes("MemberMetadata.assignment")?;
        r.skip_tagged_fields("MemberMetadata")?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.skip_tagged_fields("GroupMetadataValue")?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// A cursor over untrusted bytes. Every read checks the length first, and
/// nothing is allocated beyond the bytes that are there. The
/// `__transaction_state` records (`txn::records`) are read with it too.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader { buf, flexible }
    }
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if n > self.buf.len() {
            return Err(RecordError::Truncated {
                field,
                needed: n,
                left: self.buf.len(),
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array_n<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array_n(field)?))
    }
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array_n(field)?))
    }
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array_n(field)?))
    }
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array_n(field)?))
    }
    /// Kafka's `readUnsignedVarint`: at most 5 bytes.
    fn uvarint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array_n::<1>(field)?;
            if i == 4 && b > 0x0f {
                return Err(RecordError::BadVarint { field });
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(RecordError::BadVarint { field })
    }
    /// The length of a string, bytes or array field, `None` for null:
    /// an int16 (strings) or int32 before the flexible versions, where any
    /// negative length is null; a varint of the length plus one after.
    fn len(&mut self, field: &'static str, int16: bool) -> Result<Option<usize>, RecordError> {
        let len = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if int16 {
            i64::from(self.i16(field)?)
        } else {
            i64::from(self.i32(field)?)
        };
        Ok(usize::try_from(len).ok())
    }
    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let Some(len) = self.len(field, true)? else {
            return Ok(None);
        };
        if len > STRING_BYTES_MAX {
            return Err(RecordError::BadLength {
                field,
                length: len as i64,
            });
        }
        let bytes = self.take(len, field)?;
        let s = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8 { field })?;
        Ok(Some(s.to_owned()))
    }
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.opt_string(field)?
            .ok_or(RecordError::UnexpectedNull { field })
    }
    fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let len = self
            .len(field, false)?
            .ok_or(RecordError::UnexpectedNull { field })?;
        Ok(Bytes::copy_from_slice(self.take(len, field)?))
    }
    /// The element count of a non-null array, which (as in Kafka) may not
    /// exceed the bytes left.
    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        self.opt_array_len(field)?
            .ok_or(RecordError::UnexpectedNull { field })
    }
    /// The element count of an array, `None` for null. A count larger than
    /// the bytes left is refused before anything is read (every element
    /// takes at least one byte).
    pub(crate) fn opt_array_len(
        &mut self,
        field: &'static str,
    ) -> Result<Option<usize>, RecordError> {
        let n = self.len(field, false)?;
        if let Some(n) = n.filter(|&n| n > self.buf.len()) {
            return Err(RecordError::BadLength {
                field,
                length: n as i64,
            });
        }
        Ok(n)
    }
    /// Skips a tagged-field section, in flexible versions only. No tag is
    /// defined in the group schemas, so every field is an unknown one.
    pub(crate) fn skip_tagged_fields(&mut self, field: &'static str) -> Result<(), RecordError> {
        self.tagged_fields(field, |_, _| Ok(()))
    }
    /// Reads a tagged-field section, in flexible versions only: a count,
    /// then (tag, size, bytes) for each field, whose tag and bytes go to
    /// `known`, which ignores the tags it does not know.
    pub(crate) fn tagged_fields(
        &mut self,
        field: &'static str,
        mut known: impl FnMut(u32, Reader<'a>) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint(field)?;
        for _ in 0..count {
            let tag = self.uvarint(field)?;
            let size = self.uvarint(field)?;
            let bytes = self.take(size as usize, field)?;
            known(tag, Reader::new(bytes, true))?;
        }
        Ok(())
    }
    /// Checks that a tagged field's bytes were all read.
    pub(crate) fn end(&self, field: &'static str) -> Result<(), RecordError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RecordError::BadLength {
                field,
                length: self.buf.len() as i64,
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Partitioning.

/// The `__consumer_offsets` partition that holds `group_id`, as Kafka
/// computes it: `Utils.abs(groupId.hashCode()) % partitions`.
///
/// `hashCode` is Java's `String.hashCode`, `31 * h + unit` over the
/// string's UTF-16 code units with 32-bit wrapping. `Utils.abs` is
/// `Math.abs` except that `Integer.MIN_VALUE` gives 0; it is NOT the
/// `n & 0x7fffffff` of `Utils.toPositive` (the producer's partitioner),
/// which sends every group with a negative hash elsewhere.
///
/// # Panics
///
/// When `partitions` is not positive (the topic's partition count is).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "__consumer_offsets has {partitions} partitions"
    );
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // i32::MIN has no absolute value; Kafka maps it to 0.
    let abs = hash.checked_abs().unwrap_or(0);
    abs % partitions
}

// ---------------------------------------------------------------------------
// Record batches.

/// Size of the v2 batch header up to and including the record count.
const BATCH_HEADER_BYTES: usize = 61;
/// Base offset and batch length, the prefix every message-set format shares.
const LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_POSITION: usize = 16;
const ATTRIBUTES_POSITION: usize = 21;
const LAST_OFFSET_DELTA_POSITION: usize = 23;
const PRODUCER_ID_POSITION: usize = 43;
const PRODUCER_EPOCH_POSITION: usize = 51;
const RECORD_COUNT_POSITION: usize = 57;
/// Attribute bits of a v2 batch.
const TRANSACTIONAL_FLAG: i16 = 1 << 4;
const CONTROL_FLAG: i16 = 1 << 5;
/// The smallest possible v2 record: length, attributes, timestamp delta,
/// offset delta, key length, value length, header count (one byte each).
const RECORD_BYTES_MIN: usize = 7;
/// A bound on the records of one compressed batch, whose decoded size the
/// header does not tell: the decoder reserves room for the claimed count.
const COMPRESSED_RECORDS_MAX: usize = 1 << 20;
/// The size of a control record's key: an int16 version, an int16 type.
const CONTROL_KEY_BYTES: usize = 4;

/// A v2 record batch (magic 2, uncompressed, producer id -1, base sequence
/// -1, partition leader epoch -1, CRC set) holding `records` as (key,
/// value), `None` being a tombstone, all with `timestamp_ms`. The base
/// offset is 0: the log assigns offsets and stamps the leader epoch on
/// append. No records make an empty buffer.
pub fn build_batch(records: &[(Bytes, Option<Bytes>)], timestamp_ms: i64) -> Bytes {
    encode_batch(records, timestamp_ms, None)
}

/// [`build_batch`] for the offsets of a TxnOffsetCommit: the batch is
/// transactional (attribute bit 4) and carries `producer_id` and
/// `producer_epoch`, so the transaction's COMMIT or ABORT marker on the
/// same partition decides whether its offsets count. The base sequence
/// stays -1: the coordinator's appends are not subject to sequence checks.
/// (Kafka's coordinators pass 0 to `MemoryRecordsBuilder` here; neither
/// Kafka's loaders nor ours read it.)
///
/// # Panics
///
/// When `producer_id` is negative: a transactional batch without a
/// producer would be a bug.
pub fn build_transactional_batch(
    records: &[(Bytes, Option<Bytes>)],
    producer_id: i64,
    producer_epoch: i16,
    timestamp_ms: i64,
) -> Bytes {
    assert!(
        producer_id >= 0,
        "a transactional batch needs a producer id, not {producer_id}"
    );
    encode_batch(records, timestamp_ms, Some((producer_id, producer_epoch)))
}

fn encode_batch(
    records: &[(Bytes, Option<Bytes>)],
    timestamp_ms: i64,
    producer: Option<(i64, i16)>,
) -> Bytes {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever offset minus
            // sequence changes; this keeps one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(key.clone()),
            value: value.clone(),
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

/// The type of a control record (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// A transaction marker: the producer's transaction was aborted.
    Abort,
    /// A transaction marker: the producer's transaction was committed.
    Commit,
    /// Another control type (KRaft's leader change and snapshot records),
    /// which has no business in `__consumer_offsets` and is ignored.
    Other(i16),
}

/// Parses the key of a control record: an int16 version and an int16
/// type. As Kafka's `ControlRecordType.parseTypeId`, a key shorter than 4
/// bytes or with a negative version is an error, and a version other than 0
/// is read as version 0 (later versions may only add fields).
pub fn parse_control_key(key: &[u8]) -> Result<ControlType, RecordError> {
    let mut r = Reader::new(key, false);
    if key.len() < CONTROL_KEY_BYTES {
        return Err(RecordError::BadLength {
            field: "control record key",
            length: key.len() as i64,
        });
    }
    let version = r.i16("control record key version")?;
    if version < 0 {
        return Err(RecordError::BadVersion {
            schema: "control record key",
            version,
            max: i16::MAX,
        });
    }
    Ok(match r.i16("control record type")? {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

/// What a batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRecords {
    /// A data batch's records: (offset, key, value or `None` for a
    /// tombstone).
    Data(Vec<(i64, Bytes, Option<Bytes>)>),
    /// A control batch's type, read from its first record (a marker batch
    /// holds one); `None` when the batch has no records, which log
    /// compaction can leave behind.
    Control(Option<ControlType>),
}

/// One whole batch of a log read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    pub base_offset: i64,
    /// -1 when no producer wrote it (the coordinator's own records).
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Part of a transaction: its records count only once the producer's
    /// COMMIT marker follows.
    pub transactional: bool,
    pub records: BatchRecords,
}

/// One step of a `__consumer_offsets` partition's replay, in log order:
/// what the loader needs of the batches of [`read_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A record of a data batch at log offset `offset`. `producer_id` is
    /// set when the batch is transactional: the record is pending until
    /// that producer's marker.
    Record {
        offset: i64,
        producer_id: Option<i64>,
        record: GroupRecord,
    },
    /// A transaction marker of `producer_id` at `offset`.
    Marker {
        offset: i64,
        producer_id: i64,
        commit: bool,
    },
}

impl LogBatch {
    /// The batch as loader entries: its decoded records, or its marker.
    /// A record that does not decode is an `Err` with its offset (the
    /// loader skips it, as before); control batches other than markers
    /// give nothing.
    pub fn entries(&self) -> Vec<Result<LogEntry, (i64, RecordError)>> {
        match &self.records {
            BatchRecords::Data(records) => records
                .iter()
                .map(|(offset, key, value)| {
                    decode(key, value.as_deref())
                        .map(|record| LogEntry::Record {
                            offset: *offset,
                            producer_id: self.transactional.then_some(self.producer_id),
                            record,
                        })
                        .map_err(|e| (*offset, e))
                })
                .collect(),
            BatchRecords::Control(Some(kind @ (ControlType::Commit | ControlType::Abort))) => {
                vec![Ok(LogEntry::Marker {
                    offset: self.base_offset,
                    producer_id: self.producer_id,
                    commit: *kind == ControlType::Commit,
                })]
            }
            BatchRecords::Control(_) => Vec::new(),
        }
    }
}

/// The batches of a log read, and where the next read starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRead {
    /// Every whole batch, control batches included, in log order.
    pub batches: Vec<LogBatch>,
    /// The offset after the last whole batch, `None` when the read held no
    /// whole batch: then the first batch is larger than the read, and the
    /// caller must read more bytes.
    pub next_offset: Option<i64>,
}

impl LogRead {
    /// The records of the data batches: (offset, key, value).
    pub fn records(&self) -> Vec<(i64, Bytes, Option<Bytes>)> {
        self.batches
            .iter()
            .filter_map(|b| match &b.records {
                BatchRecords::Data(records) => Some(records.iter().cloned()),
                BatchRecords::Control(_) => None,
            })
            .flatten()
            .collect()
    }
}

/// Reads the records of the batches in `bytes` (as returned by a log read,
/// possibly ending with a partial batch, which is ignored): (offset, key,
/// value). Control batches are skipped; a corrupt batch is an error. See
/// [`read_log`] for the batches themselves.
pub fn read_records(bytes: &[u8]) -> Result<Vec<(i64, Bytes, Option<Bytes>)>, RecordError> {
    read_log(bytes).map(|read| read.records())
}

/// The whole batches in `bytes`, with their producer, transactional flag
/// and (for control batches) marker type, and the offset after the last
/// one, which the loader needs to go on when a read ends with control
/// batches.
///
/// Batches may be compressed with any codec Kafka supports. Pre-0.11
/// message sets (magic 0 and 1) are an error: `kafka-protocol` does not
/// decode them. A batch whose length points past the end of `bytes` counts
/// as the partial tail of the read, as in Kafka, so a corrupt length field
/// in the last batch goes unnoticed here (the log validates lengths when
/// it recovers). A control record whose key is not one (see
/// [`parse_control_key`]) is an error, as Kafka's loader fails on it.
pub fn read_log(bytes: &[u8]) -> Result<LogRead, RecordError> {
    let mut read = LogRead::default();
    let mut position = 0;
    while bytes.len() - position >= LOG_OVERHEAD_BYTES {
        let rest = &bytes[position..];
        let corrupt = move |reason: String| RecordError::CorruptBatch { position, reason };
        let be_i32 =
            |at: usize| i32::from_be_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let base_offset = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let batch_length = be_i32(8);
        let total = usize::try_from(batch_length)
            .map_err(|_| corrupt(format!("negative batch length {batch_length}")))?
            + LOG_OVERHEAD_BYTES;
        if total > rest.len() {
            break;
        }
        if total <= MAGIC_POSITION {
            return Err(corrupt(format!("batch length {batch_length} is too short")));
        }
        let magic = rest[MAGIC_POSITION] as i8;
        if magic != 2 {
            return Err(corrupt(format!(
                "magic {magic}: only v2 record batches are read, not pre-0.11 message sets"
            )));
        }
        if total < BATCH_HEADER_BYTES {
            return Err(corrupt(format!("batch length {batch_length} is too short")));
        }
        // Check the record count before the decoder reserves room for it.
        let record_count = be_i32(RECORD_COUNT_POSITION);
        let attributes =
            i16::from_be_bytes([rest[ATTRIBUTES_POSITION], rest[ATTRIBUTES_POSITION + 1]]);
        let count_max = if attributes & 0x7 != 0 {
            COMPRESSED_RECORDS_MAX
        } else {
            (total - BATCH_HEADER_BYTES) / RECORD_BYTES_MIN
        };
        if usize::try_from(record_count).map_or(true, |n| n > count_max) {
            return Err(corrupt(format!(
                "{record_count} records claimed in {} bytes",
                total - BATCH_HEADER_BYTES
            )));
        }
        let last_offset_delta = be_i32(LAST_OFFSET_DELTA_POSITION);
        // The producer fields are read from the header (which the decoder's
        // CRC check covers) rather than from the records, so that a batch
        // emptied by compaction still says who wrote it.
        let producer_id = i64::from_be_bytes(
            rest[PRODUCER_ID_POSITION..PRODUCER_ID_POSITION + 8]
                .try_into()
                .expect("8 bytes"),
        );
        let producer_epoch = i16::from_be_bytes([
            rest[PRODUCER_EPOCH_POSITION],
            rest[PRODUCER_EPOCH_POSITION + 1],
        ]);
        let mut batch = &rest[..total];
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| corrupt(e.to_string()))?;
        let records = if attributes & CONTROL_FLAG != 0 {
            let marker = match set.records.first() {
                None => None,
                Some(record) => {
                    let key = record.key.as_ref().ok_or(RecordError::NullKey {
                        offset: record.offset,
                    })?;
                    Some(parse_control_key(key)?)
                }
            };
            BatchRecords::Control(marker)
        } else {
            let mut records = Vec::with_capacity(set.records.len());
            for record in set.records {
                let key = record.key.ok_or(RecordError::NullKey {
                    offset: record.offset,
                })?;
                records.push((record.offset, key, record.value));
            }
            BatchRecords::Data(records)
        };
        read.batches.push(LogBatch {
            base_offset,
            producer_id,
            producer_epoch,
            transactional: attributes & TRANSACTIONAL_FLAG != 0,
            records,
        });
        read.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
        position += total;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
        OffsetKey {
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }

    /// Concatenates byte pieces, so golden bytes can be written field by
    /// field.
    fn cat(pieces: &[&[u8]]) -> Vec<u8> {
        pieces.concat()
    }

    fn two_members() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1_000,
            members: vec![
                MemberMetadata {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout: 300_000,
                    session_timeout: 45_000,
                    subscription: Bytes::from_static(&[0xAA, 0xBB]),
                    assignment: Bytes::from_static(&[0xCC]),
                },
                MemberMetadata {
                    member_id: "m2".into(),
                    group_instance_id: None,
                    client_id: "d".into(),
                    client_host: "/i".into(),
                    rebalance_timeout: 60_000,
                    session_timeout: 10_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::from_static(&[0xDD, 0xEE]),
                },
            ],
        }
    }

    // --- golden bytes, written from the JSON schemas -----------------------

    #[test]
    fn offset_key_v1_golden() {
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x01],             // key version 1 (OffsetCommitKey)
            &[0x00, 0x02, b'g', b'1'], // group: int16 length + "g1"
            &[0x00, 0x01, b't'],       // topic: "t"
            &[0x00, 0x00, 0x00, 0x03], // partition: int32 3
        ]);
        assert_eq!(offset_key(&key("g1", "t", 3)), expected);
        assert_eq!(
            decode(&expected, None).unwrap(),
            GroupRecord::Offset {
                key: key("g1", "t", 3),
                value: None
            }
        );
    }

    #[test]
    fn offset_value_v3_golden() {
        let value = OffsetValue {
            offset: 100,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp: 1_000,
            expire_timestamp: -1,
        };
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x03],                                     // value version 3
            &[0, 0, 0, 0, 0, 0, 0, 100],                       // offset: int64
            &[0x00, 0x00, 0x00, 0x05],                         // leaderEpoch: int32 (3+)
            &[0x00, 0x01, b'm'],                               // metadata: string
            &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xE8], // commitTimestamp 1000
        ]); // no expireTimestamp (version 1 only), no tagged fields (4+)
        assert_eq!(offset_value(&value), expected);
        assert_eq!(read_offset_value(&expected).unwrap(), value);
    }

    #[test]
    fn offset_value_with_expire_timestamp_is_v1_golden() {
        let value = OffsetValue {
            offset: 1,
            leader_epoch: 9,
            metadata: String::new(),
            commit_timestamp: 2,
            expire_timestamp: 3,
        };
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x01],             // value version 1
            &[0, 0, 0, 0, 0, 0, 0, 1], // offset
            // no leaderEpoch: Kafka drops it at version 1
            &[0x00, 0x00],             // metadata: empty string
            &[0, 0, 0, 0, 0, 0, 0, 2], // commitTimestamp
            &[0, 0, 0, 0, 0, 0, 0, 3], // expireTimestamp (version 1 only)
        ]);
        assert_eq!(offset_value(&value), expected);
        assert_eq!(
            read_offset_value(&expected).unwrap(),
            OffsetValue {
                leader_epoch: -1,
                ..value
            }
        );
    }

    #[test]
    fn group_key_v2_golden() {
        let expected = [0x00, 0x02, 0x00, 0x03, b'g', b'r', b'p']; // version 2, "grp"
        assert_eq!(group_key("grp"), &expected[..]);
        assert_eq!(
            decode(&expected, None).unwrap(),
            GroupRecord::Group {
                group: "grp".into(),
                value: None
            }
        );
    }

    #[test]
    fn group_value_v3_with_two_members_golden() {
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x03],                         // value version 3
            &[0x00, 0x08], b"consumer",            // protocolType
            &[0x00, 0x00, 0x00, 0x07],             // generation
            &[0x00, 0x05], b"range",               // protocol (nullable)
            &[0x00, 0x02], b"m1",                  // leader (nullable)
            &[0, 0, 0, 0, 0, 0, 0x03, 0xE8],       // currentStateTimestamp (2+)
            &[0x00, 0x00, 0x00, 0x02],             // members: int32 count
            // member 1
            &[0x00, 0x02], b"m1",                  // memberId
            &[0x00, 0x02], b"i1",                  // groupInstanceId (3+)
            &[0x00, 0x01], b"c",                   // clientId
            &[0x00, 0x02], b"/h",                  // clientHost
            &[0x00, 0x04, 0x93, 0xE0],             // rebalanceTimeout 300000 (1+)
            &[0x00, 0x00, 0xAF, 0xC8],             // sessionTimeout 45000
            &[0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB], // subscription: int32 length
            &[0x00, 0x00, 0x00, 0x01, 0xCC],       // assignment
            // member 2
            &[0x00, 0x02], b"m2",                  // memberId
            &[0xFF, 0xFF],                         // groupInstanceId: null
            &[0x00, 0x01], b"d",                   // clientId
            &[0x00, 0x02], b"/i",                  // clientHost
            &[0x00, 0x00, 0xEA, 0x60],             // rebalanceTimeout 60000
            &[0x00, 0x00, 0x27, 0x10],             // sessionTimeout 10000
            &[0x00, 0x00, 0x00, 0x00],             // subscription: empty
            &[0x00, 0x00, 0x00, 0x02, 0xDD, 0xEE], // assignment
        ]);
        assert_eq!(group_value(&two_members()), expected);
        assert_eq!(read_group_value(&expected).unwrap(), two_members());
    }

    #[test]
    fn offset_value_v0_decodes_golden() {
        #[rustfmt::skip]
        let bytes = cat(&[
            &[0x00, 0x00],              // value version 0
            &[0, 0, 0, 0, 0, 0, 0, 42], // offset
            &[0x00, 0x02], b"md",       // metadata
            &[0, 0, 0, 0, 0, 0, 0, 7],  // commitTimestamp
        ]);
        assert_eq!(
            read_offset_value(&bytes).unwrap(),
            OffsetValue {
                offset: 42,
                leader_epoch: -1,
                metadata: "md".into(),
                commit_timestamp: 7,
                expire_timestamp: -1,
            }
        );
    }

    #[test]
    fn offset_value_v4_flexible_with_unknown_tagged_field_golden() {
        #[rustfmt::skip]
        let bytes = cat(&[
            &[0x00, 0x04],              // value version 4 (flexible)
            &[0, 0, 0, 0, 0, 0, 0, 42], // offset
            &[0x00, 0x00, 0x00, 0x02],  // leaderEpoch
            &[0x03], b"md",             // metadata: compact string, varint length + 1
            &[0, 0, 0, 0, 0, 0, 0, 7],  // commitTimestamp
            &[0x01],                    // tagged fields: one
            &[0x07, 0x02, b'x', b'y'],  // tag 7, size 2, two bytes nobody knows
        ]);
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 2,
            metadata: "md".into(),
            commit_timestamp: 7,
            expire_timestamp: -1,
        };
        assert_eq!(read_offset_value(&bytes).unwrap(), value);
        // Without the unknown field it is what the version-4 writer makes.
        let mut plain = bytes[..bytes.len() - 5].to_vec();
        plain.push(0x00);
        assert_eq!(write_offset_value(&value, 4), plain);
    }

    #[test]
    fn group_value_v0_decodes_golden() {
        #[rustfmt::skip]
        let bytes = cat(&[
            &[0x00, 0x00],                   // value version 0
            &[0x00, 0x08], b"consumer",      // protocolType
            &[0x00, 0x00, 0x00, 0x01],       // generation
            &[0xFF, 0xFF],                   // protocol: null
            &[0xFF, 0xFF],                   // leader: null
            // no currentStateTimestamp before version 2
            &[0x00, 0x00, 0x00, 0x01],       // members: one
            &[0x00, 0x02], b"m1",            // memberId
            // no groupInstanceId before version 3
            &[0x00, 0x01], b"c",             // clientId
            &[0x00, 0x02], b"/h",            // clientHost
            // no rebalanceTimeout before version 1
            &[0x00, 0x00, 0x75, 0x30],       // sessionTimeout 30000
            &[0x00, 0x00, 0x00, 0x01, 0x01], // subscription
            &[0x00, 0x00, 0x00, 0x00],       // assignment: empty
        ]);
        assert_eq!(
            read_group_value(&bytes).unwrap(),
            GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 1,
                protocol: None,
                leader: None,
                current_state_timestamp: -1,
                members: vec![MemberMetadata {
                    member_id: "m1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout: -1,
                    session_timeout: 30_000,
                    subscription: Bytes::from_static(&[0x01]),
                    assignment: Bytes::new(),
                }],
            }
        );
    }

    #[test]
    fn group_value_v4_flexible_decodes_golden() {
        #[rustfmt::skip]
        let bytes = cat(&[
            &[0x00, 0x04],                   // value version 4 (flexible)
            &[0x09], b"consumer",            // protocolType: compact, 8 + 1
            &[0x00, 0x00, 0x00, 0x02],       // generation
            &[0x00],                         // protocol: compact null
            &[0x03], b"m1",                  // leader
            &[0, 0, 0, 0, 0, 0, 0, 0x05],    // currentStateTimestamp
            &[0x02],                         // members: compact array, 1 + 1
            &[0x03], b"m1",                  // memberId
            &[0x03], b"i1",                  // groupInstanceId
            &[0x02], b"c",                   // clientId
            &[0x03], b"/h",                  // clientHost
            &[0x00, 0x00, 0xEA, 0x60],       // rebalanceTimeout 60000
            &[0x00, 0x00, 0x27, 0x10],       // sessionTimeout 10000
            &[0x02, 0xAB],                   // subscription: compact bytes
            &[0x01],                         // assignment: compact, empty
            &[0x01, 0x00, 0x01, 0xFF],       // member tagged fields: tag 0, size 1
            &[0x02],                         // group tagged fields: two
            &[0x01, 0x00],                   // tag 1, size 0
            &[0x80, 0x01, 0x02, 0x01, 0x02], // tag 128 (two-byte varint), size 2
        ]);
        let expected = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 2,
            protocol: None,
            leader: Some("m1".into()),
            current_state_timestamp: 5,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout: 60_000,
                session_timeout: 10_000,
                subscription: Bytes::from_static(&[0xAB]),
                assignment: Bytes::new(),
            }],
        };
        assert_eq!(read_group_value(&bytes).unwrap(), expected);
    }

    // --- decode errors and other record types -------------------------------

    #[test]
    fn kip_848_and_unknown_record_types_are_other() {
        // ConsumerGroupMetadataKey (type 3): int16 3 then the group id.
        for version in [3i16, 8, 15, 16, i16::MAX, -1] {
            let mut key = version.to_be_bytes().to_vec();
            key.extend_from_slice(&[0x00, 0x01, b'g']);
            assert_eq!(
                decode(&key, Some(&b"whatever"[..])).unwrap(),
                GroupRecord::Other {
                    key_version: version
                }
            );
        }
    }

    #[test]
    fn key_version_0_is_an_offset_key() {
        let mut key = offset_key(&key("g", "t", 0)).to_vec();
        key[1] = 0;
        assert!(matches!(
            decode(&key, None).unwrap(),
            GroupRecord::Offset { value: None, .. }
        ));
    }

    #[test]
    fn bad_bytes_are_named_errors() {
        let ok = offset_key(&key("g", "t", 0));
        assert_eq!(
            decode(&[0x00], None),
            Err(RecordError::Truncated {
                field: "key version",
                needed: 2,
                left: 1
            })
        );
        assert_eq!(
            decode(&ok[..ok.len() - 1], None),
            Err(RecordError::Truncated {
                field: "OffsetCommitKey.partition",
                needed: 4,
                left: 3
            })
        );
        assert_eq!(
            decode(&ok, Some(&[0x00, 0x05][..])),
            Err(RecordError::BadVersion {
                schema: "OffsetCommitValue",
                version: 5,
                max: 4
            })
        );
        assert_eq!(
            decode(&group_key("g"), Some(&[0xFF, 0xFF][..])),
            Err(RecordError::BadVersion {
                schema: "GroupMetadataValue",
                version: -1,
                max: 4
            })
        );
        // A null group id in a key.
        assert_eq!(
            decode(&[0x00, 0x02, 0xFF, 0xFF], None),
            Err(RecordError::UnexpectedNull {
                field: "GroupMetadataKey.group"
            })
        );
        // Invalid UTF-8.
        assert_eq!(
            decode(&[0x00, 0x02, 0x00, 0x01, 0xFF], None),
            Err(RecordError::NotUtf8 {
                field: "GroupMetadataKey.group"
            })
        );
        // A compact string longer than Kafka allows (0x8000 + 1, varint).
        let mut value = vec![0x00, 0x04, 0x81, 0x80, 0x02];
        value.extend(vec![b'a'; 0x8000]);
        assert_eq!(
            read_group_value(&value),
            Err(RecordError::BadLength {
                field: "GroupMetadataValue.protocolType",
                length: 0x8000
            })
        );
        // A member count beyond the bytes left: refused before reserving.
        let mut value = write_group_value(&two_members(), 1).to_vec();
        let members_at = 2 + 10 + 4 + 7 + 4;
        value[members_at..members_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            read_group_value(&value),
            Err(RecordError::BadLength {
                field: "GroupMetadataValue.members",
                length: i64::from(i32::MAX)
            })
        );
        // A six-byte varint.
        assert_eq!(
            read_offset_value(&[
                0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01
            ]),
            Err(RecordError::BadVarint {
                field: "OffsetCommitValue.metadata"
            })
        );
    }

    #[test]
    fn nullable_strings_take_any_negative_length_as_null() {
        // Kafka's readers test `length < 0`, not `== -1`.
        #[rustfmt::skip]
        let bytes = cat(&[
            &[0x00, 0x03],
            &[0x00, 0x01], b"c",
            &[0x00, 0x00, 0x00, 0x01],
            &[0x80, 0x00], // protocol: length -32768, null
            &[0xFF, 0xFE], // leader: length -2, null
            &[0, 0, 0, 0, 0, 0, 0, 0],
            &[0x00, 0x00, 0x00, 0x00],
        ]);
        let value = read_group_value(&bytes).unwrap();
        assert_eq!((value.protocol, value.leader), (None, None));
    }

    #[test]
    #[should_panic(expected = "must be refused before they are written")]
    fn encoding_an_overlong_string_is_a_bug() {
        let _ = group_key(&"x".repeat(STRING_BYTES_MAX + 1));
    }

    // --- partitioning --------------------------------------------------------

    #[test]
    fn partition_for_matches_java_string_hash_code() {
        // Hashes worked out by String.hashCode's definition (see the doc of
        // partition_for), then Kafka's Utils.abs and % 50.
        // "": hash 0.
        assert_eq!(partition_for("", 50), 0);
        // "my-group": hash -1906497762, Utils.abs 1906497762 % 50 = 12.
        // (n & 0x7fffffff would give 36: not what Kafka does.)
        assert_eq!(partition_for("my-group", 50), 12);
        // "grüppe": 'ü' is one UTF-16 unit 0x00FC; hash -1233264812.
        assert_eq!(partition_for("grüppe", 50), 12);
        // "g😀": U+1F600 is the surrogate pair D83D DE00, so the hash is
        // (0x67 * 31 + 0xD83D) * 31 + 0xDE00 = 1871882 (code points would
        // give 0x67 * 31 + 0x1F600 = 131705).
        assert_eq!(partition_for("g\u{1F600}", 50), 1_871_882 % 50);
        // "polygenelubricants" hashes to Integer.MIN_VALUE; Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Positive hashes: "a" is 97, "group-1" is 293427299.
        assert_eq!(partition_for("a", 50), 47);
        assert_eq!(partition_for("group-1", 50), 49);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("my-group", 1), 0);
    }

    // --- record batches ------------------------------------------------------

    fn sample_records() -> Vec<(Bytes, Option<Bytes>)> {
        let k = key("g", "t", 0);
        let v = OffsetValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 10,
            expire_timestamp: -1,
        };
        vec![
            (offset_key(&k), Some(offset_value(&v))),
            (group_key("g"), Some(group_value(&two_members()))),
            (offset_key(&k), None),
            (group_key("g"), None),
        ]
    }

    /// Sets a batch's base offset, which the CRC does not cover.
    fn with_base_offset(batch: &Bytes, base_offset: i64) -> Vec<u8> {
        let mut out = batch.to_vec();
        out[..8].copy_from_slice(&base_offset.to_be_bytes());
        out
    }

    #[test]
    fn batch_round_trip_with_tombstones() {
        let records = sample_records();
        let batch = build_batch(&records, 1_234);
        assert_eq!(batch[MAGIC_POSITION], 2);
        let read = read_log(&with_base_offset(&batch, 100)).unwrap();
        let expected: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (100 + i as i64, k.clone(), v.clone()))
            .collect();
        assert_eq!(read.records(), expected);
        assert_eq!(read.next_offset, Some(104));
        // The header Kafka's coordinator writes too: no producer, no
        // compression.
        let set = RecordBatchDecoder::decode(&mut &batch[..]).unwrap();
        assert_eq!(set.compression, Compression::None);
        assert!(set
            .records
            .iter()
            .all(|r| r.producer_id == -1 && r.timestamp == 1_234 && !r.transactional));
        assert!(build_batch(&[], 0).is_empty());
    }

    #[test]
    fn a_partial_tail_is_ignored() {
        let records = sample_records();
        let first = with_base_offset(&build_batch(&records[..2], 1), 0);
        let second = with_base_offset(&build_batch(&records[2..], 1), 2);
        for cut in 0..second.len() {
            let bytes = cat(&[&first[..], &second[..cut]]);
            let read = read_log(&bytes).unwrap();
            assert_eq!(read.records().len(), 2, "cut at {cut}");
            assert_eq!(read.next_offset, Some(2));
        }
        let whole = read_log(&cat(&[&first[..], &second[..]])).unwrap();
        assert_eq!(whole.records().len(), 4);
        assert_eq!(whole.next_offset, Some(4));
        // A read shorter than its first batch has nothing, and says so.
        assert_eq!(
            read_log(&first[..first.len() - 1]).unwrap(),
            LogRead::default()
        );
    }

    #[test]
    fn a_corrupt_crc_is_an_error() {
        let batch = build_batch(&sample_records(), 1).to_vec();
        // A flipped byte in the records, and a flipped byte of the CRC.
        for at in [batch.len() - 3, 17] {
            let mut bad = batch.clone();
            bad[at] ^= 0x01;
            let err = read_records(&bad).unwrap_err();
            assert!(
                matches!(&err, RecordError::CorruptBatch { position: 0, reason } if reason.contains("Cyclic redundancy check")),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        let batch = build_batch(&sample_records(), 1).to_vec();
        let mut legacy = batch.clone();
        legacy[MAGIC_POSITION] = 1;
        assert!(matches!(
            read_records(&legacy),
            Err(RecordError::CorruptBatch { .. })
        ));
        let mut negative = batch.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(read_records(&negative).is_err());
        let mut huge_count = batch.clone();
        huge_count[RECORD_COUNT_POSITION..RECORD_COUNT_POSITION + 4]
            .copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(read_records(&huge_count).is_err());
    }

    fn kafka_record(offset: i64, key: Option<&'static [u8]>, control: bool) -> Record {
        Record {
            transactional: control,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: if control { 7 } else { -1 },
            producer_epoch: if control { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn control_batches_are_reported_with_their_marker_and_counted() {
        // A transaction marker (key: version 0, type 0 = abort) at offset 1.
        #[rustfmt::skip]
        let bytes = cat(&[
            &encode(&[kafka_record(0, Some(&b"k0"[..]), false)], Compression::None)[..],
            &encode(&[kafka_record(1, Some(&[0, 0, 0, 0][..]), true)], Compression::None)[..],
        ]);
        let read = read_log(&bytes).unwrap();
        assert_eq!(
            read.records(),
            vec![(0, Bytes::from_static(b"k0"), Some(Bytes::from_static(b"v")))]
        );
        assert_eq!(read.batches.len(), 2);
        assert_eq!(
            read.batches[1],
            LogBatch {
                base_offset: 1,
                producer_id: 7,
                producer_epoch: 0,
                transactional: true,
                records: BatchRecords::Control(Some(ControlType::Abort)),
            }
        );
        assert_eq!(read.next_offset, Some(2));
    }

    #[test]
    fn control_keys_parse_as_kafkas_control_record_type() {
        assert_eq!(parse_control_key(&[0, 0, 0, 1]), Ok(ControlType::Commit));
        assert_eq!(parse_control_key(&[0, 0, 0, 0]), Ok(ControlType::Abort));
        // A later key version is read as version 0; unknown types are kept.
        assert_eq!(
            parse_control_key(&[0, 3, 0, 1, 0xFF]),
            Ok(ControlType::Commit)
        );
        assert_eq!(parse_control_key(&[0, 0, 0, 2]), Ok(ControlType::Other(2)));
        assert!(parse_control_key(&[0, 0, 1]).is_err());
        assert!(parse_control_key(&[0xFF, 0xFF, 0, 1]).is_err());
        // A marker with a broken key fails the read, as it fails Kafka's
        // loader.
        let bytes = encode(
            &[kafka_record(4, Some(&[0, 0][..]), true)],
            Compression::None,
        );
        assert!(read_log(&bytes).is_err());
    }

    #[test]
    fn transactional_batch_header_golden() {
        let records = sample_records();
        let batch = build_transactional_batch(&records[..1], 0x0102_0304_0506_0708, 0x0A0B, 77);
        #[rustfmt::skip]
        let header = cat(&[
            &[0, 0, 0, 0, 0, 0, 0, 0],             // base offset 0: the log assigns it
            &((batch.len() - 12) as i32).to_be_bytes(), // batch length
            &[0xFF, 0xFF, 0xFF, 0xFF],             // partition leader epoch -1
            &[2],                                  // magic 2
        ]);
        assert_eq!(&batch[..17], &header[..]);
        #[rustfmt::skip]
        let after_crc = cat(&[
            &[0x00, 0x10],                         // attributes: transactional, no compression, create time
            &[0, 0, 0, 0],                         // last offset delta: one record
            &77i64.to_be_bytes(),                  // base timestamp
            &77i64.to_be_bytes(),                  // max timestamp
            &[1, 2, 3, 4, 5, 6, 7, 8],             // producer id
            &[0x0A, 0x0B],                         // producer epoch
            &[0xFF, 0xFF, 0xFF, 0xFF],             // base sequence -1
            &[0, 0, 0, 1],                         // record count
        ]);
        assert_eq!(&batch[21..BATCH_HEADER_BYTES], &after_crc[..]);
        // The CRC covers everything from the attributes on: the decoder
        // checks it, and the batch reads back as transactional.
        let read = read_log(&batch).unwrap();
        assert_eq!(read.batches[0].producer_id, 0x0102_0304_0506_0708);
        assert_eq!(read.batches[0].producer_epoch, 0x0A0B);
        assert!(read.batches[0].transactional);
        assert_eq!(
            read.records(),
            vec![(0, records[0].0.clone(), records[0].1.clone())]
        );
        // Three records: the last offset delta and the count follow.
        let three = build_transactional_batch(&records[..3], 9, 0, 1);
        assert_eq!(&three[23..27], &[0, 0, 0, 2]);
        assert_eq!(&three[57..61], &[0, 0, 0, 3]);
        // And the plain batch differs only in its attributes and producer.
        let plain = build_batch(&records[..1], 77);
        assert_eq!(&plain[21..23], &[0x00, 0x00]);
        assert_eq!(&plain[43..53], &[0xFF; 10]);
        assert_eq!(&plain[53..], &batch[53..]);
    }

    #[test]
    #[should_panic(expected = "needs a producer id")]
    fn a_transactional_batch_without_a_producer_is_a_bug() {
        let _ = build_transactional_batch(&sample_records(), -1, 0, 0);
    }

    /// A control batch as Kafka's `ControlRecordUtils`/`EndTransactionMarker`
    /// write it: one record whose key is (version 0, type) and whose value
    /// is (version 0, coordinator epoch).
    fn marker(offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::copy_from_slice(&[0, 0, 0, u8::from(commit)])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 5])),
            headers: Default::default(),
        };
        encode(&[record], Compression::None)
    }

    fn offset_record(group: &str, partition: i32, offset: i64) -> (Bytes, Option<Bytes>) {
        (
            offset_key(&key(group, "t", partition)),
            Some(offset_value(&OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 1,
                expire_timestamp: -1,
            })),
        )
    }

    #[test]
    fn loader_reads_a_hand_built_log_with_transactions_and_markers() {
        // 0: a plain commit of t-0; 1-2: producer 5 commits t-0 and t-1 in a
        // transaction; 3: producer 6 commits t-2; 4: producer 5 commits;
        // 5: producer 6 aborts; 6: producer 8 commits t-3 and never ends.
        #[rustfmt::skip]
        let log = cat(&[
            &with_base_offset(&build_batch(&[offset_record("g", 0, 10)], 1), 0)[..],
            &with_base_offset(&build_transactional_batch(&[offset_record("g", 0, 20), offset_record("g", 1, 21)], 5, 0, 1), 1)[..],
            &with_base_offset(&build_transactional_batch(&[offset_record("g", 2, 30)], 6, 0, 1), 3)[..],
            &marker(4, 5, true)[..],
            &marker(5, 6, false)[..],
            &with_base_offset(&build_transactional_batch(&[offset_record("g", 3, 40)], 8, 0, 1), 6)[..],
        ]);
        let read = read_log(&log).unwrap();
        assert_eq!(read.next_offset, Some(7));
        let kinds: Vec<(i64, i64, bool)> = read
            .batches
            .iter()
            .map(|b| (b.base_offset, b.producer_id, b.transactional))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0, -1, false),
                (1, 5, true),
                (3, 6, true),
                (4, 5, true),
                (5, 6, true),
                (6, 8, true)
            ]
        );
        let entries: Vec<LogEntry> = read
            .batches
            .iter()
            .flat_map(|b| b.entries())
            .map(|e| e.unwrap())
            .collect();
        let shape: Vec<(i64, Option<i64>, Option<bool>)> = entries
            .iter()
            .map(|e| match e {
                LogEntry::Record {
                    offset,
                    producer_id,
                    ..
                } => (*offset, *producer_id, None),
                LogEntry::Marker {
                    offset,
                    producer_id,
                    commit,
                } => (*offset, Some(*producer_id), Some(*commit)),
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, None, None),
                (1, Some(5), None),
                (2, Some(5), None),
                (3, Some(6), None),
                (4, Some(5), Some(true)),
                (5, Some(6), Some(false)),
                (6, Some(8), None),
            ]
        );

        // Replayed by the coordinator: producer 5's offsets count, 6's do
        // not, 8's are still pending.
        use crate::group::state::{CoordinatorConfig, GroupCoordinator};
        let mut coordinator = GroupCoordinator::new(CoordinatorConfig {
            num_partitions: 1,
            ..CoordinatorConfig::default()
        });
        coordinator.load_partition(0, entries, 0);
        let fetched: Vec<(i32, Option<i64>)> = coordinator
            .fetch_offsets("g", None)
            .unwrap()
            .into_iter()
            .map(|((_, p), c)| (p, c.map(|c| c.offset)))
            .collect();
        assert_eq!(fetched, vec![(0, Some(20)), (1, Some(21))]);
        assert!(!coordinator.has_pending("g", "t", 2));
        assert!(coordinator.has_pending("g", "t", 3));
    }

    #[test]
    fn a_record_without_a_key_is_an_error() {
        let bytes = encode(&[kafka_record(3, None, false)], Compression::None);
        assert_eq!(
            read_records(&bytes),
            Err(RecordError::NullKey { offset: 3 })
        );
    }

    #[test]
    fn compressed_batches_are_read() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records: Vec<Record> = (0..3)
                .map(|i| Record {
                    sequence: i as i32 - 1,
                    ..kafka_record(i, Some(&b"key"[..]), false)
                })
                .collect();
            let read = read_records(&encode(&records, compression)).unwrap();
            assert_eq!(
                read.iter().map(|r| r.0).collect::<Vec<_>>(),
                vec![0, 1, 2],
                "{compression:?}"
            );
        }
    }

    // --- properties ----------------------------------------------------------

    fn arb_string() -> impl Strategy<Value = String> {
        ".{0,12}"
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from)
    }

    fn arb_offset_key() -> impl Strategy<Value = OffsetKey> {
        (arb_string(), arb_string(), any::<i32>()).prop_map(|(group, topic, partition)| OffsetKey {
            group,
            topic,
            partition,
        })
    }

    fn arb_offset_value() -> impl Strategy<Value = OffsetValue> {
        (
            any::<i64>(),
            any::<i32>(),
            arb_string(),
            any::<i64>(),
            prop_oneof![Just(-1i64), any::<i64>()],
        )
            .prop_map(
                |(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)| {
                    OffsetValue {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                        expire_timestamp,
                    }
                },
            )
    }

    fn arb_member() -> impl Strategy<Value = MemberMetadata> {
        (
            arb_string(),
            proptest::option::of(arb_string()),
            arb_string(),
            arb_string(),
            any::<i32>(),
            any::<i32>(),
            arb_bytes(),
            arb_bytes(),
        )
            .prop_map(
                |(
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout,
                    session_timeout,
                    subscription,
                    assignment,
                )| MemberMetadata {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout,
                    session_timeout,
                    subscription,
                    assignment,
                },
            )
    }

    fn arb_group_value() -> impl Strategy<Value = GroupMetadataValue> {
        (
            arb_string(),
            any::<i32>(),
            proptest::option::of(arb_string()),
            proptest::option::of(arb_string()),
            any::<i64>(),
            proptest::collection::vec(arb_member(), 0..4),
        )
            .prop_map(
                |(
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp,
                    members,
                )| {
                    GroupMetadataValue {
                        protocol_type,
                        generation,
                        protocol,
                        leader,
                        current_state_timestamp,
                        members,
                    }
                },
            )
    }

    /// What survives a trip through `version`: the fields it lacks read
    /// back as their schema defaults.
    fn offset_value_at(value: &OffsetValue, version: i16) -> OffsetValue {
        OffsetValue {
            leader_epoch: if version >= 3 { value.leader_epoch } else { -1 },
            expire_timestamp: if version == 1 {
                value.expire_timestamp
            } else {
                -1
            },
            ..value.clone()
        }
    }

    fn group_value_at(value: &GroupMetadataValue, version: i16) -> GroupMetadataValue {
        GroupMetadataValue {
            current_state_timestamp: if version >= 2 {
                value.current_state_timestamp
            } else {
                -1
            },
            members: value
                .members
                .iter()
                .map(|m| MemberMetadata {
                    group_instance_id: m.group_instance_id.clone().filter(|_| version >= 3),
                    rebalance_timeout: if version >= 1 {
                        m.rebalance_timeout
                    } else {
                        -1
                    },
                    ..m.clone()
                })
                .collect(),
            ..value.clone()
        }
    }

    proptest! {
        #[test]
        fn offset_records_round_trip(k in arb_offset_key(), v in arb_offset_value()) {
            let version = if v.expire_timestamp == -1 { 3 } else { 1 };
            prop_assert_eq!(
                decode(&offset_key(&k), Some(&offset_value(&v)[..])).unwrap(),
                GroupRecord::Offset { key: k.clone(), value: Some(offset_value_at(&v, version)) }
            );
            prop_assert_eq!(
                decode(&offset_key(&k), None).unwrap(),
                GroupRecord::Offset { key: k, value: None }
            );
        }

        #[test]
        fn group_records_round_trip(group in arb_string(), v in arb_group_value()) {
            prop_assert_eq!(
                decode(&group_key(&group), Some(&group_value(&v)[..])).unwrap(),
                GroupRecord::Group { group: group.clone(), value: Some(v) }
            );
            prop_assert_eq!(
                decode(&group_key(&group), None).unwrap(),
                GroupRecord::Group { group, value: None }
            );
        }

        #[test]
        fn every_value_version_round_trips(
            o in arb_offset_value(),
            g in arb_group_value(),
            version in 0i16..=4,
        ) {
            prop_assert_eq!(
                read_offset_value(&write_offset_value(&o, version)).unwrap(),
                offset_value_at(&o, version)
            );
            prop_assert_eq!(
                read_group_value(&write_group_value(&g, version)).unwrap(),
                group_value_at(&g, version)
            );
        }

        #[test]
        fn decode_never_panics(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
        ) {
            let _ = decode(&key, value.as_deref());
        }

        #[test]
        fn decode_of_damaged_values_never_panics(
            group_record in any::<bool>(),
            version in 0i16..=4,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let key = if group_record { group_key("g") } else { offset_key(&key("g", "t", 0)) };
            let mut value = version.to_be_bytes().to_vec();
            value.extend_from_slice(&body);
            let _ = decode(&key, Some(&value[..]));
        }

        #[test]
        fn truncating_a_value_is_an_error_not_a_panic(v in arb_group_value(), version in 0i16..=4, cut in any::<prop::sample::Index>()) {
            let bytes = write_group_value(&v, version);
            let cut = cut.index(bytes.len());
            prop_assert!(read_group_value(&bytes[..cut]).is_err());
        }

        #[test]
        fn batches_round_trip(
            records in proptest::collection::vec((arb_bytes(), proptest::option::of(arb_bytes())), 1..20),
            timestamp in any::<i64>(),
            base_offset in 0i64..1 << 40,
        ) {
            let batch = with_base_offset(&build_batch(&records, timestamp), base_offset);
            let read = read_log(&batch).unwrap();
            let expected: Vec<_> = records
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| (base_offset + i as i64, k, v))
                .collect();
            prop_assert_eq!(read.next_offset, Some(base_offset + expected.len() as i64));
            prop_assert_eq!(read.records(), expected);
        }

        #[test]
        fn read_records_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_records(&bytes);
        }

        #[test]
        fn damaged_batches_never_panic(at in any::<prop::sample::Index>(), xor in 1u8..) {
            let mut batch = build_batch(&sample_records(), 1).to_vec();
            let at = at.index(batch.len());
            batch[at] ^= xor;
            let _ = read_records(&batch);
        }
    }
}
