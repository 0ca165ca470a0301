//! Broker configuration: Kafka's `server.properties` keys, defaults and
//! start-up checks, as of Apache Kafka 3.9.
//!
//! What this module does:
//! - reads the `java.util.Properties` text format ([`parse_properties`]);
//! - holds the table of settings Riffle knows ([`CONFIG_DEFS`]): Kafka's
//!   name, type, default, whether AlterConfigs may change it, and whether
//!   Riffle acts on it;
//! - turns properties into a typed [`BrokerConfig`], with the KRaft
//!   cross-checks Kafka performs at start-up;
//! - answers DescribeConfigs for a broker ([`BrokerConfig::describe`]) and
//!   for a topic ([`BrokerConfig::describe_topic_config`]).
//!
//! Where it departs from Kafka:
//! - ZooKeeper mode does not exist: `process.roles` is required.
//! - Only PLAINTEXT listeners are supported; SSL and SASL are refused at
//!   start-up rather than silently served as plaintext.
//! - Unknown keys produce a warning string for the caller to log, as Kafka
//!   logs "supplied but not used" for them.
//! - A listener with an empty host (`PLAINTEXT://:9092`) is advertised under
//!   the kernel's host name (`/proc/sys/kernel/hostname`); Kafka asks the
//!   resolver for the canonical host name, which Riffle does not do at start-up.
//! - `advertised.listeners` may not use `::` either (Kafka only refuses
//!   `0.0.0.0`): neither address is routable.
//! - `listeners`, `advertised.listeners` and `listener.security.protocol.map`
//!   are not dynamic in Riffle: it cannot rebind sockets at run time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use riffle_log::LogConfig;

/// A configuration that cannot be used. Every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The properties text itself is malformed (a bad `\uXXXX` escape).
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// A value does not parse or is out of range.
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A required setting is absent.
    #[error("Missing required configuration {key}: {reason}")]
    Missing { key: String, reason: String },
    /// Settings that parse on their own but contradict each other.
    #[error("Invalid configuration {key}: {reason}")]
    Inconsistent { key: String, reason: String },
    /// A valid Kafka setting that Riffle does not implement yet.
    #[error("Unsupported value {value} for configuration {key}: {reason}")]
    Unsupported {
        key: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    /// The configuration key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax { .. } => None,
            ConfigError::InvalidValue { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::Inconsistent { key, .. }
            | ConfigError::Unsupported { key, .. } => Some(key),
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn inconsistent(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Inconsistent {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn missing(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Missing {
        key: key.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// java.util.Properties text format
// ---------------------------------------------------------------------------

fn is_prop_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Parses text in the `java.util.Properties` format: `#` and `!` comment
/// lines, `key=value`, `key: value` and `key value`, leading whitespace
/// ignored, a line ending in an odd number of backslashes continued on the
/// next (whose leading whitespace is dropped), escapes `\t \n \r \f \uXXXX`
/// and `\` before any other character standing for that character.
///
/// A key given twice keeps its first position and its last value. Values
/// keep trailing whitespace, as Java does; typed parsing trims them later.
/// The text is taken as UTF-8 (Java's `Properties.load(InputStream)` reads
/// ISO-8859-1; the two agree on ASCII files).
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let lines: Vec<&str> = split_natural_lines(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let first = lines[i].trim_start_matches(is_prop_ws);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = first;
        loop {
            let trailing = current.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 1 {
                logical.push_str(&current[..current.len() - 1]);
                if i < lines.len() {
                    current = lines[i].trim_start_matches(is_prop_ws);
                    i += 1;
                } else {
                    break;
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key, line_no)?;
        let value = unescape(raw_value, line_no)?;
        match position.get(&key) {
            Some(&at) => out[at].1 = value,
            None => {
                position.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

fn split_natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if i + 1 < bytes.len() && bytes[i + 1] == b'\n' {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Splits a logical line into its raw (still escaped) key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut chars = line.char_indices().peekable();
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut separator_seen = false;
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        if c == '=' || c == ':' {
            key_end = at;
            value_start = at + 1;
            separator_seen = true;
            break;
        }
        if is_prop_ws(c) {
            key_end = at;
            value_start = at + c.len_utf8();
            break;
        }
    }
    let mut rest = line[value_start..].trim_start_matches(is_prop_ws);
    if !separator_seen && (rest.starts_with('=') || rest.starts_with(':')) {
        rest = rest[1..].trim_start_matches(is_prop_ws);
    }
    (&line[..key_end], rest)
}

fn unescape(raw: &str, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(raw.len());
    let mut high_surrogate: Option<u16> = None;
    let mut chars = raw.chars();
    let bad_unicode = || ConfigError::Syntax {
        line,
        reason: "malformed \\uXXXX escape (expected four hexadecimal digits)".to_string(),
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            if let Some(h) = high_surrogate.take() {
                out.push_str(&String::from_utf16_lossy(&[h]));
            }
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            // A lone trailing backslash (continuation at end of input).
            break;
        };
        if next == 'u' {
            let mut unit: u32 = 0;
            for _ in 0..4 {
                let digit = chars
                    .next()
                    .and_then(|d| d.to_digit(16))
                    .ok_or_else(bad_unicode)?;
                unit = unit * 16 + digit;
            }
            let unit = unit as u16;
            match (high_surrogate.take(), unit) {
                (Some(h), 0xDC00..=0xDFFF) => out.push_str(&String::from_utf16_lossy(&[h, unit])),
                (previous, 0xD800..=0xDBFF) => {
                    if let Some(h) = previous {
                        out.push_str(&String::from_utf16_lossy(&[h]));
                    }
                    high_surrogate = Some(unit);
                }
                (previous, _) => {
                    if let Some(h) = previous {
                        out.push_str(&String::from_utf16_lossy(&[h]));
                    }
                    out.push_str(&String::from_utf16_lossy(&[unit]));
                }
            }
            continue;
        }
        if let Some(h) = high_surrogate.take() {
            out.push_str(&String::from_utf16_lossy(&[h]));
        }
        out.push(match next {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            other => other,
        });
    }
    if let Some(h) = high_surrogate {
        out.push_str(&String::from_utf16_lossy(&[h]));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The table of settings
// ---------------------------------------------------------------------------

/// A setting's type, as Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The discriminants are Kafka's DescribeConfigs `ConfigType` ids.
#[repr(i8)]
pub enum ConfigKind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigKind {
    /// The `ConfigType` id in DescribeConfigs responses.
    pub fn describe_type_id(self) -> i8 {
        self as i8
    }

    /// Kafka's upper-case type name, used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Boolean => "BOOLEAN",
            ConfigKind::String => "STRING",
            ConfigKind::Int => "INT",
            ConfigKind::Short => "SHORT",
            ConfigKind::Long => "LONG",
            ConfigKind::Double => "DOUBLE",
            ConfigKind::List => "LIST",
            ConfigKind::Class => "CLASS",
            ConfigKind::Password => "PASSWORD",
        }
    }
}

/// A check on a value beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    None,
    /// A number no smaller than this.
    AtLeast(i64),
    /// A number from 0 to 1 inclusive.
    Fraction,
    /// One of these strings (exact match).
    OneOf(&'static [&'static str]),
    /// A comma-separated list whose items are all among these.
    ListOf(&'static [&'static str]),
}

/// One setting: Kafka's name, type and default, and what Riffle does with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// `None` where Kafka's default is null (unset).
    pub default: Option<&'static str>,
    /// One line in our own words; says so when Riffle ignores the setting.
    pub doc: &'static str,
    /// Whether AlterConfigs may change it on a running broker (per broker or
    /// cluster-wide), as in Kafka's `DynamicBrokerConfig`.
    pub dynamic: bool,
    pub validator: Validator,
    /// False for settings accepted for compatibility that Riffle does not act on.
    pub used: bool,
}

#[allow(clippy::too_many_arguments)]
const fn def(
    name: &'static str,
    kind: ConfigKind,
    default: Option<&'static str>,
    validator: Validator,
    dynamic: bool,
    used: bool,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        doc,
        dynamic,
        validator,
        used,
    }
}

use ConfigKind as K;
use Validator as V;

const I32_MAX: &str = "2147483647";
const I64_MAX: &str = "9223372036854775807";

/// Kafka's default for `listener.security.protocol.map`: every security
/// protocol mapped to the listener of the same name.
pub const DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Every broker setting Riffle knows, with Kafka 3.9's names and defaults.
#[rustfmt::skip]
pub const CONFIG_DEFS: &[ConfigDef] = &[
    // Roles and ids.
    def("process.roles", K::List, Some(""), V::ListOf(&["broker", "controller"]), false, true,
        "The roles this node plays: broker, controller, or both. Required (Riffle has no ZooKeeper mode)."),
    def("node.id", K::Int, None, V::AtLeast(0), false, true,
        "This node's id, unique in the cluster, shared by its broker and controller roles. Required."),
    def("broker.id", K::Int, Some("-1"), V::None, false, true,
        "Older name for node.id; if set it must equal node.id."),
    def("controller.quorum.voters", K::List, Some(""), V::None, false, true,
        "The static KRaft voter set as id@host:port entries."),
    def("controller.quorum.bootstrap.servers", K::List, Some(""), V::None, false, true,
        "host:port addresses used to find the KRaft quorum when the voter set is dynamic."),
    def("controller.listener.names", K::String, None, V::None, false, true,
        "Comma-separated names of the listeners the KRaft controllers use."),
    def("controller.quorum.election.timeout.ms", K::Int, Some("1000"), V::AtLeast(0), false, true,
        "How long a KRaft voter waits without a leader before starting an election."),
    def("controller.quorum.fetch.timeout.ms", K::Int, Some("2000"), V::AtLeast(0), false, true,
        "How long a KRaft follower waits without a successful fetch before it looks for a new leader."),
    def("controller.quorum.election.backoff.max.ms", K::Int, Some("1000"), V::AtLeast(0), false, true,
        "The longest random back-off before a new KRaft election."),
    def("controller.quorum.request.timeout.ms", K::Int, Some("2000"), V::AtLeast(0), false, true,
        "How long a KRaft request waits for its response."),
    def("controller.quorum.retry.backoff.ms", K::Int, Some("20"), V::AtLeast(0), false, true,
        "The pause before a failed KRaft request is retried."),
    def("controller.quorum.append.linger.ms", K::Int, Some("25"), V::AtLeast(0), false, true,
        "How long the KRaft leader waits to batch metadata records before writing them."),
    def("metadata.log.max.record.bytes.between.snapshots", K::Long, Some("20971520"), V::AtLeast(1), false, true,
        "Metadata record bytes applied after which a new metadata snapshot is written."),
    def("metadata.log.max.snapshot.interval.ms", K::Long, Some("3600000"), V::AtLeast(0), false, true,
        "Longest time between metadata snapshots while records arrive; 0 turns time-based snapshots off."),
    def("broker.rack", K::String, None, V::None, false, true,
        "The rack (or zone) of this broker, for replica placement and fetch-from-follower (KIP-392)."),
    // Listeners.
    def("listeners", K::String, Some("PLAINTEXT://:9092"), V::None, false, true,
        "Comma-separated NAME://host:port addresses to listen on; an empty host means all interfaces."),
    def("advertised.listeners", K::String, None, V::None, false, true,
        "The addresses given to clients and other brokers; defaults to listeners minus the controller listeners."),
    def("listener.security.protocol.map", K::String, Some(DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP), V::None, false, true,
        "NAME:PROTOCOL pairs giving each listener its security protocol. Riffle serves PLAINTEXT only."),
    def("inter.broker.listener.name", K::String, None, V::None, false, true,
        "The listener brokers use to reach each other; defaults to the one named after security.inter.broker.protocol."),
    def("security.inter.broker.protocol", K::String, Some("PLAINTEXT"), V::OneOf(SECURITY_PROTOCOLS), false, true,
        "The protocol brokers use to reach each other when inter.broker.listener.name is not set."),
    // Log storage.
    def("log.dirs", K::String, None, V::None, false, true,
        "Comma-separated directories for partition data; overrides log.dir."),
    def("log.dir", K::String, Some("/tmp/kafka-logs"), V::None, false, true,
        "The data directory used when log.dirs is not set."),
    def("metadata.log.dir", K::String, None, V::None, false, true,
        "The directory of the KRaft metadata log; defaults to the first of log.dirs."),
    def("metadata.log.segment.bytes", K::Int, Some("1073741824"), V::AtLeast(12), false, true,
        "The segment size of the KRaft metadata log."),
    def("metadata.log.segment.ms", K::Long, Some("604800000"), V::None, false, true,
        "How long before a KRaft metadata log segment is rolled."),
    def("metadata.max.retention.bytes", K::Long, Some("104857600"), V::None, false, true,
        "Metadata log bytes kept before old snapshots and segments are removed; -1 means no limit."),
    def("metadata.max.retention.ms", K::Long, Some("604800000"), V::None, false, true,
        "How long metadata log segments and snapshots are kept; -1 means no limit."),
    def("log.dir.failure.timeout.ms", K::Long, Some("30000"), V::AtLeast(1), false, true,
        "How long a broker with a failed log directory waits for the controller before shutting down."),
    def("num.partitions", K::Int, Some("1"), V::AtLeast(1), false, true,
        "Partitions of a topic created without a partition count (including auto-created topics)."),
    def("default.replication.factor", K::Int, Some("1"), V::None, false, true,
        "Replication factor of a topic created without one (including auto-created topics)."),
    def("auto.create.topics.enable", K::Boolean, Some("true"), V::None, false, true,
        "Whether a Metadata request for an unknown topic creates it."),
    def("delete.topic.enable", K::Boolean, Some("true"), V::None, false, true,
        "Whether DeleteTopics is allowed."),
    def("log.segment.bytes", K::Int, Some("1073741824"), V::AtLeast(14), true, true,
        "Broker default for segment.bytes: the size at which a segment file is rolled."),
    def("log.roll.ms", K::Long, None, V::AtLeast(1), true, true,
        "Broker default for segment.ms: the age at which a segment is rolled; overrides log.roll.hours."),
    def("log.roll.hours", K::Int, Some("168"), V::AtLeast(1), false, true,
        "log.roll.ms in hours."),
    def("log.roll.jitter.ms", K::Long, None, V::AtLeast(0), true, false,
        "Broker default for segment.jitter.ms. Accepted; Riffle does not add roll jitter yet."),
    def("log.roll.jitter.hours", K::Int, Some("0"), V::AtLeast(0), false, false,
        "log.roll.jitter.ms in hours. Accepted; Riffle does not add roll jitter yet."),
    def("log.retention.ms", K::Long, None, V::None, true, true,
        "Broker default for retention.ms: how long data is kept; -1 keeps it forever. Overrides log.retention.minutes and log.retention.hours."),
    def("log.retention.minutes", K::Int, None, V::None, false, true,
        "log.retention.ms in minutes; overrides log.retention.hours."),
    def("log.retention.hours", K::Int, Some("168"), V::None, false, true,
        "log.retention.ms in hours."),
    def("log.retention.bytes", K::Long, Some("-1"), V::None, true, true,
        "Broker default for retention.bytes: the size a partition may reach before old segments are deleted; -1 means no limit."),
    def("log.retention.check.interval.ms", K::Long, Some("300000"), V::AtLeast(1), false, true,
        "How often segments are checked for deletion under the retention settings."),
    def("log.index.size.max.bytes", K::Int, Some("10485760"), V::AtLeast(4), true, true,
        "Broker default for segment.index.bytes: the size of a segment's offset and time indexes."),
    def("log.index.interval.bytes", K::Int, Some("4096"), V::AtLeast(0), true, true,
        "Broker default for index.interval.bytes: log bytes between two offset index entries."),
    def("log.flush.interval.messages", K::Long, Some(I64_MAX), V::AtLeast(1), true, true,
        "Broker default for flush.messages: messages appended before the log is fsynced."),
    def("log.flush.interval.ms", K::Long, None, V::None, true, true,
        "Broker default for flush.ms: the longest time appended data waits for an fsync; defaults to log.flush.scheduler.interval.ms."),
    def("log.flush.scheduler.interval.ms", K::Long, Some(I64_MAX), V::None, false, true,
        "The fallback for log.flush.interval.ms."),
    def("log.cleanup.policy", K::List, Some("delete"), V::ListOf(&["compact", "delete"]), true, true,
        "Broker default for cleanup.policy: delete old segments, compact by key, or both."),
    def("log.cleaner.enable", K::Boolean, Some("true"), V::None, false, true,
        "Whether compaction runs for topics with cleanup.policy=compact."),
    def("log.cleaner.delete.retention.ms", K::Long, Some("86400000"), V::AtLeast(0), true, true,
        "Broker default for delete.retention.ms: how long tombstones survive compaction."),
    def("log.cleaner.min.compaction.lag.ms", K::Long, Some("0"), V::AtLeast(0), true, true,
        "Broker default for min.compaction.lag.ms: the youngest a record may be and still be compacted."),
    def("log.cleaner.max.compaction.lag.ms", K::Long, Some(I64_MAX), V::AtLeast(1), true, false,
        "Broker default for max.compaction.lag.ms. Accepted; Riffle's cleaner does not force compaction by age yet."),
    def("log.cleaner.min.cleanable.ratio", K::Double, Some("0.5"), V::Fraction, true, true,
        "Broker default for min.cleanable.dirty.ratio: the share of uncompacted data that triggers compaction."),
    def("log.segment.delete.delay.ms", K::Long, Some("60000"), V::AtLeast(0), true, false,
        "Broker default for file.delete.delay.ms. Accepted; Riffle deletes segment files at once."),
    def("log.preallocate", K::Boolean, Some("false"), V::None, true, false,
        "Broker default for preallocate. Accepted; Riffle does not preallocate segment files."),
    def("log.message.timestamp.type", K::String, Some("CreateTime"), V::OneOf(&["CreateTime", "LogAppendTime"]), true, true,
        "Broker default for message.timestamp.type: keep the producer's timestamp or stamp the append time."),
    def("log.message.timestamp.difference.max.ms", K::Long, Some(I64_MAX), V::AtLeast(0), true, true,
        "Deprecated broker default for message.timestamp.difference.max.ms; bounds both directions."),
    def("log.message.timestamp.before.max.ms", K::Long, Some(I64_MAX), V::AtLeast(0), true, true,
        "Broker default for message.timestamp.before.max.ms: how far in the past a CreateTime timestamp may be."),
    def("log.message.timestamp.after.max.ms", K::Long, Some(I64_MAX), V::AtLeast(0), true, true,
        "Broker default for message.timestamp.after.max.ms: how far in the future a CreateTime timestamp may be."),
    def("num.recovery.threads.per.data.dir", K::Int, Some("1"), V::AtLeast(1), true, false,
        "Accepted; Riffle recovers logs on its tokio runtime, not on a thread pool of this size."),
    // Topic defaults that are not log.* settings.
    def("compression.type", K::String, Some("producer"), V::OneOf(COMPRESSION_TYPES), true, true,
        "Broker default for compression.type: producer keeps the producer's codec, otherwise batches are stored in this one."),
    def("min.insync.replicas", K::Int, Some("1"), V::AtLeast(1), true, true,
        "Broker default for min.insync.replicas: in-sync replicas needed for an acks=all produce."),
    def("unclean.leader.election.enable", K::Boolean, Some("false"), V::None, true, true,
        "Broker default for unclean.leader.election.enable: whether an out-of-sync replica may become leader."),
    def("offsets.topic.replication.factor", K::Short, Some("3"), V::AtLeast(1), false, true,
        "Replication factor of __consumer_offsets; creation waits until this many brokers exist."),
    def("offsets.topic.num.partitions", K::Int, Some("50"), V::AtLeast(1), false, true,
        "Partitions of __consumer_offsets."),
    def("transaction.state.log.replication.factor", K::Short, Some("3"), V::AtLeast(1), false, true,
        "Replication factor of __transaction_state; creation waits until this many brokers exist."),
    def("transaction.state.log.num.partitions", K::Int, Some("50"), V::AtLeast(1), false, true,
        "Partitions of __transaction_state."),
    def("transaction.state.log.min.isr", K::Int, Some("2"), V::AtLeast(1), false, true,
        "min.insync.replicas of __transaction_state."),
    def("transaction.state.log.segment.bytes", K::Int, Some("104857600"), V::AtLeast(1), false, true,
        "segment.bytes of __transaction_state."),
    def("transaction.state.log.load.buffer.size", K::Int, Some("5242880"), V::AtLeast(1), false, true,
        "How many bytes of __transaction_state are read at a time when a coordinator loads a partition."),
    def("transaction.max.timeout.ms", K::Int, Some("900000"), V::AtLeast(1), false, true,
        "The longest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT beyond it)."),
    def("transactional.id.expiration.ms", K::Int, Some("604800000"), V::AtLeast(1), false, true,
        "How long a transactional id without transactions is remembered before the coordinator forgets it."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", K::Int, Some("10000"), V::AtLeast(1), false, true,
        "How often the transaction coordinator aborts transactions that ran past their timeout."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", K::Int, Some("3600000"), V::AtLeast(1), false, true,
        "How often the transaction coordinator removes expired transactional ids."),
    def("producer.id.expiration.ms", K::Int, Some("86400000"), V::AtLeast(1), true, true,
        "How long a partition keeps the state of an idle producer (its sequences) before forgetting it."),
    def("producer.id.expiration.check.interval.ms", K::Int, Some("600000"), V::AtLeast(1), false, true,
        "How often partitions look for expired producer state."),
    def("group.initial.rebalance.delay.ms", K::Int, Some("3000"), V::None, false, true,
        "How long the group coordinator waits for more members before the first rebalance of an empty group."),
    def("group.min.session.timeout.ms", K::Int, Some("6000"), V::None, false, true,
        "The smallest session timeout a consumer may ask for."),
    def("group.max.session.timeout.ms", K::Int, Some("1800000"), V::None, false, true,
        "The largest session timeout a consumer may ask for."),
    def("group.max.size", K::Int, Some(I32_MAX), V::AtLeast(1), false, true,
        "The most members a classic consumer group may have; a join beyond it gets GROUP_MAX_SIZE_REACHED."),
    def("offsets.retention.minutes", K::Int, Some("10080"), V::AtLeast(1), false, true,
        "How long committed offsets of a group without members (or of a topic the group no longer reads) are kept."),
    def("offsets.retention.check.interval.ms", K::Long, Some("600000"), V::AtLeast(1), false, true,
        "How often the group coordinator looks for expired committed offsets."),
    def("offsets.commit.timeout.ms", K::Int, Some("5000"), V::AtLeast(1), false, true,
        "Accepted for compatibility: with one replica an offset commit's write completes when it returns."),
    def("offset.metadata.max.bytes", K::Int, Some("4096"), V::None, false, true,
        "The longest metadata string an offset commit may carry (OFFSET_METADATA_TOO_LARGE beyond it)."),
    def("offsets.topic.segment.bytes", K::Int, Some("104857600"), V::AtLeast(1), false, true,
        "segment.bytes of __consumer_offsets, kept small so compaction and loading stay quick."),
    def("offsets.load.buffer.size", K::Int, Some("5242880"), V::AtLeast(1), false, true,
        "How many bytes of __consumer_offsets are read at a time when a coordinator loads a partition."),
    def("replica.lag.time.max.ms", K::Long, Some("30000"), V::None, false, true,
        "How long a follower may go without catching up before it leaves the ISR."),
    // SASL settings Kafka lets AlterConfigs change per broker without a
    // listener prefix (DynamicListenerConfig). Riffle serves PLAINTEXT only
    // and does not use them; they are validated, stored and described like
    // any dynamic broker config, as Kafka does whatever the listeners are.
    def("sasl.enabled.mechanisms", K::List, Some("GSSAPI"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.jaas.config", K::Password, None, V::None, true, false,
        "Accepted (sensitive, never described); SASL is not served yet."),
    def("sasl.kerberos.service.name", K::String, None, V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.kerberos.kinit.cmd", K::String, Some("/usr/bin/kinit"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.kerberos.min.time.before.relogin", K::Long, Some("60000"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.kerberos.ticket.renew.jitter", K::Double, Some("0.05"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.kerberos.ticket.renew.window.factor", K::Double, Some("0.8"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.kerberos.principal.to.local.rules", K::List, Some("DEFAULT"), V::None, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.login.refresh.window.factor", K::Double, Some("0.8"), V::Fraction, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.login.refresh.window.jitter", K::Double, Some("0.05"), V::Fraction, true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.login.refresh.min.period.seconds", K::Short, Some("60"), V::AtLeast(0), true, false,
        "Accepted; SASL is not served yet."),
    def("sasl.login.refresh.buffer.seconds", K::Short, Some("300"), V::AtLeast(0), true, false,
        "Accepted; SASL is not served yet."),
    // Limits.
    def("message.max.bytes", K::Int, Some("1048588"), V::AtLeast(0), true, true,
        "Broker default for max.message.bytes: the largest record batch accepted."),
    def("socket.request.max.bytes", K::Int, Some("104857600"), V::AtLeast(1), false, true,
        "The largest request the broker reads; a bigger size prefix closes the connection."),
    def("socket.send.buffer.bytes", K::Int, Some("102400"), V::None, false, true,
        "SO_SNDBUF of client sockets; -1 keeps the operating system's default."),
    def("socket.receive.buffer.bytes", K::Int, Some("102400"), V::None, false, true,
        "SO_RCVBUF of client sockets; -1 keeps the operating system's default."),
    def("socket.listen.backlog.size", K::Int, Some("50"), V::AtLeast(1), false, false,
        "Accepted; Riffle uses tokio's listen backlog."),
    def("connections.max.idle.ms", K::Long, Some("600000"), V::None, false, true,
        "Connections idle this long are closed."),
    def("max.connections", K::Int, Some(I32_MAX), V::AtLeast(0), true, true,
        "The most connections the broker accepts at once."),
    def("max.connections.per.ip", K::Int, Some(I32_MAX), V::AtLeast(0), true, true,
        "The most connections accepted from one IP address."),
    def("max.connections.per.ip.overrides", K::String, Some(""), V::None, true, true,
        "host:count pairs overriding max.connections.per.ip for particular hosts or IPs."),
    def("queued.max.requests", K::Int, Some("500"), V::AtLeast(1), false, true,
        "Requests read but not yet handled before the broker stops reading from sockets."),
    def("num.network.threads", K::Int, Some("3"), V::AtLeast(1), true, false,
        "Accepted; Riffle serves sockets on its tokio runtime rather than a network thread pool."),
    def("num.io.threads", K::Int, Some("8"), V::AtLeast(1), true, false,
        "Accepted; Riffle handles requests on its tokio runtime rather than an I/O thread pool."),
    def("background.threads", K::Int, Some("10"), V::AtLeast(1), true, false,
        "Accepted; Riffle runs background work as tokio tasks."),
];

/// Looks up a broker setting.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    CONFIG_DEFS.iter().find(|d| d.name == name)
}

/// Topic configs and the broker settings that supply their defaults, in
/// Kafka's order of precedence (`ServerTopicConfigSynonyms`).
pub const TOPIC_CONFIG_SYNONYMS: &[(&str, &[&str])] = &[
    ("segment.bytes", &["log.segment.bytes"]),
    ("segment.ms", &["log.roll.ms", "log.roll.hours"]),
    (
        "segment.jitter.ms",
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
    ),
    ("segment.index.bytes", &["log.index.size.max.bytes"]),
    ("flush.messages", &["log.flush.interval.messages"]),
    (
        "flush.ms",
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
    ),
    ("retention.bytes", &["log.retention.bytes"]),
    (
        "retention.ms",
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ),
    ("max.message.bytes", &["message.max.bytes"]),
    ("index.interval.bytes", &["log.index.interval.bytes"]),
    ("delete.retention.ms", &["log.cleaner.delete.retention.ms"]),
    (
        "min.compaction.lag.ms",
        &["log.cleaner.min.compaction.lag.ms"],
    ),
    (
        "max.compaction.lag.ms",
        &["log.cleaner.max.compaction.lag.ms"],
    ),
    ("file.delete.delay.ms", &["log.segment.delete.delay.ms"]),
    (
        "min.cleanable.dirty.ratio",
        &["log.cleaner.min.cleanable.ratio"],
    ),
    ("cleanup.policy", &["log.cleanup.policy"]),
    (
        "unclean.leader.election.enable",
        &["unclean.leader.election.enable"],
    ),
    ("min.insync.replicas", &["min.insync.replicas"]),
    ("compression.type", &["compression.type"]),
    ("preallocate", &["log.preallocate"]),
    ("message.timestamp.type", &["log.message.timestamp.type"]),
    (
        "message.timestamp.difference.max.ms",
        &["log.message.timestamp.difference.max.ms"],
    ),
    (
        "message.timestamp.before.max.ms",
        &["log.message.timestamp.before.max.ms"],
    ),
    (
        "message.timestamp.after.max.ms",
        &["log.message.timestamp.after.max.ms"],
    ),
];

/// The topic configs DescribeConfigs reports, with their topic-level types.
/// The defaults come from the broker synonyms.
#[rustfmt::skip]
pub const TOPIC_CONFIG_DEFS: &[(&str, ConfigKind, &str)] = &[
    ("cleanup.policy", K::List, "delete: remove old segments; compact: keep the last record per key; or both."),
    ("compression.type", K::String, "The codec batches are stored in; producer keeps the producer's."),
    ("delete.retention.ms", K::Long, "How long tombstones survive compaction."),
    ("file.delete.delay.ms", K::Long, "Delay before a deleted segment's files are removed. Riffle removes them at once."),
    ("flush.messages", K::Long, "Messages appended before the partition is fsynced."),
    ("flush.ms", K::Long, "The longest time appended data waits for an fsync."),
    ("index.interval.bytes", K::Int, "Log bytes between two offset index entries."),
    ("max.compaction.lag.ms", K::Long, "The longest a record may stay uncompacted. Not enforced by Riffle yet."),
    ("max.message.bytes", K::Int, "The largest record batch accepted."),
    ("message.timestamp.after.max.ms", K::Long, "How far in the future a CreateTime timestamp may be."),
    ("message.timestamp.before.max.ms", K::Long, "How far in the past a CreateTime timestamp may be."),
    ("message.timestamp.difference.max.ms", K::Long, "Deprecated: bounds timestamps in both directions."),
    ("message.timestamp.type", K::String, "CreateTime keeps the producer's timestamp; LogAppendTime stamps the append time."),
    ("min.cleanable.dirty.ratio", K::Double, "The share of uncompacted data that triggers compaction."),
    ("min.compaction.lag.ms", K::Long, "The youngest a record may be and still be compacted."),
    ("min.insync.replicas", K::Int, "In-sync replicas needed for an acks=all produce."),
    ("preallocate", K::Boolean, "Preallocate segment files. Riffle does not."),
    ("retention.bytes", K::Long, "The size a partition may reach before old segments are deleted; -1 means no limit."),
    ("retention.ms", K::Long, "How long data is kept; -1 keeps it forever."),
    ("segment.bytes", K::Int, "The size at which a segment file is rolled."),
    ("segment.index.bytes", K::Int, "The size of a segment's offset and time indexes."),
    ("segment.jitter.ms", K::Long, "Random jitter subtracted from segment.ms. Riffle does not add jitter yet."),
    ("segment.ms", K::Long, "The age at which a segment is rolled."),
    ("unclean.leader.election.enable", K::Boolean, "Whether an out-of-sync replica may become leader."),
];

fn topic_synonyms(topic_key: &str) -> &'static [&'static str] {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .find(|(k, _)| *k == topic_key)
        .map(|(_, s)| *s)
        .unwrap_or(&[])
}

/// The broker settings that stand for the same thing as `name`, in Kafka's
/// precedence order (`DynamicBrokerConfig.brokerConfigSynonyms`).
fn broker_synonyms(name: &str) -> Vec<&'static str> {
    const GROUPS: &[&[&str]] = &[
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ];
    if name == "log.flush.interval.ms" {
        return vec!["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    }
    for group in GROUPS {
        if group.contains(&name) {
            return group.to_vec();
        }
    }
    config_def(name).map(|d| vec![d.name]).unwrap_or_default()
}

/// Converts a synonym's value to the unit of the topic config it feeds.
fn synonym_to_topic_value(synonym: &str, value: &str) -> String {
    let factor: i64 = if synonym.ends_with(".hours") {
        3_600_000
    } else if synonym.ends_with(".minutes") {
        60_000
    } else {
        1
    };
    if factor == 1 {
        return value.trim().to_string();
    }
    match value.trim().parse::<i64>() {
        Ok(v) => v.saturating_mul(factor).to_string(),
        Err(_) => value.trim().to_string(),
    }
}

// ---------------------------------------------------------------------------
// Value parsing
// ---------------------------------------------------------------------------

fn split_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(|s| s.trim().to_string()).collect()
}

/// Checks a value against a setting's type and validator, as Kafka's
/// `ConfigDef` does (values are trimmed first).
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let v = value.trim();
    let number: Option<f64> = match def.kind {
        K::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(invalid(
                    def.name,
                    value,
                    "Expected value to be either true or false",
                ));
            }
            None
        }
        K::Int => Some(
            v.parse::<i32>()
                .map_err(|_| invalid(def.name, value, "Not a number of type INT"))?
                as f64,
        ),
        K::Short => Some(
            v.parse::<i16>()
                .map_err(|_| invalid(def.name, value, "Not a number of type SHORT"))?
                as f64,
        ),
        K::Long => {
            let n = v
                .parse::<i64>()
                .map_err(|_| invalid(def.name, value, "Not a number of type LONG"))?;
            if let V::AtLeast(min) = def.validator {
                if n < min {
                    return Err(invalid(
                        def.name,
                        value,
                        format!("Value must be at least {min}"),
                    ));
                }
            }
            None
        }
        K::Double => {
            let n = v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| invalid(def.name, value, "Not a number of type DOUBLE"))?;
            Some(n)
        }
        K::String | K::List | K::Class | K::Password => None,
    };
    match def.validator {
        V::None => {}
        V::AtLeast(min) => {
            if let Some(n) = number {
                if n < min as f64 {
                    return Err(invalid(
                        def.name,
                        value,
                        format!("Value must be at least {min}"),
                    ));
                }
            }
        }
        V::Fraction => {
            if let Some(n) = number {
                if !(0.0..=1.0).contains(&n) {
                    return Err(invalid(def.name, value, "Value must be between 0 and 1"));
                }
            }
        }
        V::OneOf(allowed) => {
            if !allowed.contains(&v) {
                return Err(invalid(
                    def.name,
                    value,
                    format!("String must be one of: {}", allowed.join(", ")),
                ));
            }
        }
        V::ListOf(allowed) => {
            for item in split_list(v) {
                if !allowed.contains(&item.as_str()) {
                    return Err(invalid(
                        def.name,
                        value,
                        format!(
                            "Invalid value {item}; each item must be one of: {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks a broker setting for AlterConfigs: the key must be known and
/// dynamic, and the value must parse.
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), String> {
    let def = config_def(key).ok_or_else(|| format!("Unknown broker configuration {key}"))?;
    if !def.dynamic {
        return Err(format!("Cannot update {key} dynamically: it is read-only"));
    }
    validate_value(def, value).map_err(|e| e.to_string())?;
    if key == "max.connections.per.ip.overrides" {
        parse_connection_overrides(value)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------

/// A node's role (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Broker,
    Controller,
}

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        match name {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// The id Kafka uses on the wire (e.g. in BrokerRegistration).
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }
}

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    /// Empty means all interfaces (bind) ; IPv6 literals are stored without brackets.
    pub host: String,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// A `host:port` address (IPv6 literals without brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

/// One entry of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

fn valid_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':')
}

/// Parses `host:port` or `[v6]:port`; the host may be empty.
fn parse_host_port(s: &str) -> Option<(String, i64)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        s.rsplit_once(':')?
    };
    if !host.chars().all(valid_host_char) {
        return None;
    }
    let port: i64 = port.parse().ok()?;
    Some((host.to_string(), port))
}

fn to_port(key: &str, value: &str, port: i64) -> Result<u16, ConfigError> {
    u16::try_from(port).map_err(|_| {
        invalid(
            key,
            value,
            format!("port {port} is not between 0 and 65535"),
        )
    })
}

fn parse_listener_list(
    key: &str,
    value: &str,
    protocols: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in split_list(value) {
        let (name, address) = entry.split_once("://").ok_or_else(|| {
            invalid(
                key,
                value,
                format!("{entry} is not of the form NAME://host:port"),
            )
        })?;
        let name = name.to_ascii_uppercase();
        let (host, port) = parse_host_port(address).ok_or_else(|| {
            invalid(
                key,
                value,
                format!("{entry} is not of the form NAME://host:port"),
            )
        })?;
        let port = to_port(key, value, port)?;
        let security_protocol = *protocols.get(&name).ok_or_else(|| {
            inconsistent(
                key,
                format!(
                    "listener {name} has no security protocol in listener.security.protocol.map"
                ),
            )
        })?;
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(
                key,
                value,
                format!("listener name {name} appears twice; each listener needs its own name"),
            ));
        }
        out.push(Listener {
            name,
            host,
            port,
            security_protocol,
        });
    }
    Ok(out)
}

fn ip_family(host: &str) -> Option<u8> {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => Some(4),
        Ok(std::net::IpAddr::V6(_)) => Some(6),
        Err(_) => None,
    }
}

/// Kafka allows two listeners on one port only when one binds an IPv4
/// literal and the other an IPv6 literal. Port 0 (pick any) is exempt.
fn check_distinct_ports(key: &str, value: &str, listeners: &[Listener]) -> Result<(), ConfigError> {
    let mut by_port: BTreeMap<u16, Vec<&Listener>> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.port != 0) {
        by_port.entry(l.port).or_default().push(l);
    }
    for (port, group) in by_port {
        if group.len() < 2 {
            continue;
        }
        let families: Vec<Option<u8>> = group.iter().map(|l| ip_family(&l.host)).collect();
        let ok = group.len() == 2 && matches!(families.as_slice(), [Some(a), Some(b)] if a != b);
        if !ok {
            return Err(invalid(
                key,
                value,
                format!("port {port} is used by more than one listener; two listeners may share a port only if one binds an IPv4 address and the other an IPv6 address"),
            ));
        }
    }
    Ok(())
}

fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for entry in split_list(value) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            invalid(
                key,
                value,
                format!("{entry} is not of the form NAME:PROTOCOL"),
            )
        })?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = protocol.trim();
        let protocol =
            SecurityProtocol::from_name(&protocol.to_ascii_uppercase()).ok_or_else(|| {
                invalid(
                    key,
                    value,
                    format!(
                        "unknown security protocol {protocol}; expected one of {}",
                        SECURITY_PROTOCOLS.join(", ")
                    ),
                )
            })?;
        if map.insert(name.clone(), protocol).is_some() {
            return Err(invalid(
                key,
                value,
                format!("listener {name} appears twice"),
            ));
        }
    }
    Ok(map)
}

fn parse_voters(value: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in split_list(value) {
        let bad = || {
            invalid(
                key,
                value,
                format!("{entry} is not of the form id@host:port"),
            )
        };
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        if id < 0 {
            return Err(invalid(key, value, format!("voter id {id} is negative")));
        }
        let (host, port) = parse_host_port(address.trim()).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        let port = to_port(key, value, port)?;
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter id {id} appears twice")));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok(voters)
}

fn parse_bootstrap_servers(value: &str) -> Result<Vec<HostPort>, ConfigError> {
    let key = "controller.quorum.bootstrap.servers";
    let mut out = Vec::new();
    for entry in split_list(value) {
        let (host, port) = parse_host_port(&entry)
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| invalid(key, value, format!("{entry} is not of the form host:port")))?;
        out.push(HostPort {
            host,
            port: to_port(key, value, port)?,
        });
    }
    Ok(out)
}

fn parse_connection_overrides(value: &str) -> Result<HashMap<String, i32>, String> {
    let mut out = HashMap::new();
    for entry in split_list(value) {
        let parsed = entry
            .rsplit_once(':')
            .and_then(|(h, n)| Some((h.trim().to_string(), n.trim().parse::<i32>().ok()?)))
            .filter(|(h, n)| !h.is_empty() && *n >= 0);
        let Some((host, count)) = parsed else {
            return Err(format!(
                "Invalid value {value} for configuration max.connections.per.ip.overrides: {entry} is not of the form host:count with a count of at least 0"
            ));
        };
        out.insert(host, count);
    }
    Ok(out)
}

/// The host name advertised for a listener bound to all interfaces.
fn local_hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(name) = std::fs::read_to_string(path) {
            let name = name.trim();
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    "localhost".to_string()
}

// ---------------------------------------------------------------------------
// BrokerConfig
// ---------------------------------------------------------------------------

/// The typed broker configuration. Field names mirror Kafka's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub process_roles: Vec<Role>,
    pub listeners: Vec<Listener>,
    /// What this node advertises for its broker role: `advertised.listeners`
    /// (or `listeners`) without the controller listeners. Empty hosts are
    /// replaced by the machine's host name.
    pub advertised_listeners: Vec<Listener>,
    /// The controller endpoints this node advertises, one per name in
    /// `controller.listener.names` that it listens on.
    pub advertised_controller_listeners: Vec<Listener>,
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
    pub controller_quorum_voters: Vec<QuorumVoter>,
    pub controller_quorum_bootstrap_servers: Vec<HostPort>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub connections_max_idle_ms: i64,
    pub max_connections: i32,
    pub max_connections_per_ip: i32,
    pub max_connections_per_ip_overrides: HashMap<String, i32>,
    pub queued_max_requests: i32,
    pub broker_rack: Option<String>,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub unclean_leader_election_enable: bool,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_segment_bytes: i32,
    pub transaction_state_log_load_buffer_size: i32,
    pub transaction_max_timeout_ms: i32,
    pub transactional_id_expiration_ms: i32,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i32,
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i32,
    pub producer_id_expiration_ms: i32,
    pub producer_id_expiration_check_interval_ms: i32,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub offsets_retention_minutes: i32,
    pub offsets_retention_check_interval_ms: i64,
    pub offsets_commit_timeout_ms: i32,
    pub offset_metadata_max_bytes: i32,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_load_buffer_size: i32,
    pub replica_lag_time_max_ms: i64,
    pub log_retention_check_interval_ms: i64,
    pub log_cleaner_enable: bool,
    pub log_dir_failure_timeout_ms: i64,
    pub metadata_max_retention_ms: i64,
    pub metadata_max_retention_bytes: i64,
    pub controller_quorum_election_timeout_ms: i32,
    pub controller_quorum_fetch_timeout_ms: i32,
    pub controller_quorum_election_backoff_max_ms: i32,
    pub controller_quorum_request_timeout_ms: i32,
    pub controller_quorum_retry_backoff_ms: i32,
    pub controller_quorum_append_linger_ms: i32,
    pub metadata_log_max_record_bytes_between_snapshots: i64,
    pub metadata_log_max_snapshot_interval_ms: i64,
    /// Not a Kafka property: whether start-up may format directories that
    /// have no `meta.properties` (with a new cluster id). False from
    /// [`BrokerConfig::from_properties`], so a configuration file needs
    /// `riffle storage format` first, as Kafka needs `kafka-storage format`;
    /// `riffle server` without `--config` (the embedded default) sets it.
    pub auto_format: bool,
    /// The broker-level log.* defaults as a topic-level config.
    log_config: LogConfig,
    /// The settings given explicitly (file and overrides), trimmed, known keys only.
    static_values: BTreeMap<String, String>,
}

/// Where a described value comes from. The discriminants are Kafka's
/// DescribeConfigs `ConfigSource` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    Unknown = 0,
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

impl ConfigSource {
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// One synonym of a described config, highest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConfig {
    pub name: String,
    /// `None` when unset or sensitive.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub is_sensitive: bool,
    pub read_only: bool,
    pub config_type: ConfigKind,
    pub documentation: &'static str,
    pub synonyms: Vec<DescribedSynonym>,
}

/// Finds a setting's value at one level of precedence.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings of one node, as strings, with what the typed parse needs.
struct Props<'a> {
    explicit: &'a BTreeMap<String, String>,
}

impl Props<'_> {
    fn is_set(&self, key: &str) -> bool {
        self.explicit.contains_key(key)
    }

    /// The explicit value, else the default. Keys must be in `CONFIG_DEFS`.
    fn raw(&self, key: &str) -> Option<&str> {
        if let Some(v) = self.explicit.get(key) {
            return Some(v.as_str());
        }
        config_def(key).and_then(|d| d.default)
    }

    fn int(&self, key: &str) -> Option<i32> {
        self.raw(key).and_then(|v| v.trim().parse().ok())
    }

    fn long(&self, key: &str) -> Option<i64> {
        self.raw(key).and_then(|v| v.trim().parse().ok())
    }

    fn short(&self, key: &str) -> Option<i16> {
        self.raw(key).and_then(|v| v.trim().parse().ok())
    }

    fn boolean(&self, key: &str) -> bool {
        self.raw(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    fn string(&self, key: &str) -> Option<String> {
        self.raw(key).map(|v| v.trim().to_string())
    }

    // The values were validated against their types before the typed parse,
    // so a failure here is a bug in the table (a default of the wrong type).
    fn req_int(&self, key: &str) -> i32 {
        self.int(key)
            .unwrap_or_else(|| panic!("{key} has no valid INT value after validation"))
    }

    fn req_long(&self, key: &str) -> i64 {
        self.long(key)
            .unwrap_or_else(|| panic!("{key} has no valid LONG value after validation"))
    }

    fn req_short(&self, key: &str) -> i16 {
        self.short(key)
            .unwrap_or_else(|| panic!("{key} has no valid SHORT value after validation"))
    }
}

impl BrokerConfig {
    /// The properties of `riffle server` run with no `--config`: one node
    /// that is broker and controller, clients on 127.0.0.1:9092, the
    /// controller on 127.0.0.1:9093, data in `./riffle-data`.
    pub fn embedded_default() -> Vec<(String, String)> {
        [
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
            ("log.dirs", "./riffle-data"),
            // One node cannot hold three replicas of the internal topics.
            ("offsets.topic.replication.factor", "1"),
            ("transaction.state.log.replication.factor", "1"),
            ("transaction.state.log.min.isr", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Builds the configuration from the file's properties and the
    /// command-line overrides (which win). Returns warnings for the caller
    /// to log: unknown keys, and settings Riffle accepts but ignores.
    pub fn from_properties(
        props: Vec<(String, String)>,
        overrides: Vec<(String, String)>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut explicit: BTreeMap<String, String> = BTreeMap::new();
        // Later entries win: the file, then the overrides.
        for (key, value) in props.into_iter().chain(overrides) {
            let key = key.trim().to_string();
            if config_def(&key).is_some() {
                explicit.insert(key, value.trim().to_string());
            } else {
                let warning = format!(
                    "unknown configuration '{key}' is ignored (not a Kafka broker setting that Riffle knows)"
                );
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
        }
        for (key, value) in &explicit {
            if let Some(def) = config_def(key) {
                validate_value(def, value)?;
            }
        }
        for key in explicit.keys() {
            if let Some(def) = config_def(key) {
                if !def.used {
                    warnings.push(format!(
                        "configuration '{key}' is accepted for compatibility but has no effect in Riffle: {}",
                        def.doc
                    ));
                }
            }
        }
        let p = Props {
            explicit: &explicit,
        };
        let config = Self::build(&p, &mut warnings)?;
        Ok((config, warnings))
    }

    fn build(p: &Props<'_>, warnings: &mut Vec<String>) -> Result<BrokerConfig, ConfigError> {
        // Roles and id.
        let roles_raw = p.string("process.roles").unwrap_or_default();
        let mut process_roles = Vec::new();
        for role in split_list(&roles_raw) {
            let role = match role.as_str() {
                "broker" => Role::Broker,
                _ => Role::Controller,
            };
            if process_roles.contains(&role) {
                return Err(invalid("process.roles", &roles_raw, "a role appears twice"));
            }
            process_roles.push(role);
        }
        if process_roles.is_empty() {
            return Err(missing(
                "process.roles",
                "set it to broker, controller or broker,controller (Riffle runs in KRaft mode only)",
            ));
        }
        let is_broker = process_roles.contains(&Role::Broker);
        let is_controller = process_roles.contains(&Role::Controller);
        let node_id = p
            .int("node.id")
            .ok_or_else(|| missing("node.id", "every KRaft node needs an id of 0 or more"))?;
        if p.is_set("broker.id") && p.int("broker.id") != Some(node_id) {
            return Err(inconsistent(
                "broker.id",
                format!("broker.id={} differs from node.id={node_id}; set them to the same value or drop broker.id", p.string("broker.id").unwrap_or_default()),
            ));
        }

        // Quorum.
        let controller_quorum_voters =
            parse_voters(&p.string("controller.quorum.voters").unwrap_or_default())?;
        let controller_quorum_bootstrap_servers = parse_bootstrap_servers(
            &p.string("controller.quorum.bootstrap.servers")
                .unwrap_or_default(),
        )?;
        if controller_quorum_voters.is_empty() && controller_quorum_bootstrap_servers.is_empty() {
            return Err(missing(
                "controller.quorum.voters",
                "a KRaft node needs controller.quorum.voters or controller.quorum.bootstrap.servers to find the controllers",
            ));
        }
        let voter_ids: Vec<i32> = controller_quorum_voters.iter().map(|v| v.id).collect();
        if is_controller && !voter_ids.is_empty() && !voter_ids.contains(&node_id) {
            return Err(inconsistent(
                "controller.quorum.voters",
                format!("this node is a controller, so its node.id {node_id} must be one of the voters {voter_ids:?}"),
            ));
        }
        if !is_controller && voter_ids.contains(&node_id) {
            return Err(inconsistent(
                "controller.quorum.voters",
                format!("this node is only a broker, so its node.id {node_id} must not be one of the voters {voter_ids:?}"),
            ));
        }

        // Listeners.
        let controller_listener_names: Vec<String> =
            split_list(&p.string("controller.listener.names").unwrap_or_default())
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_ascii_uppercase())
                .collect();
        if controller_listener_names.is_empty() {
            return Err(missing(
                "controller.listener.names",
                "name the listener the controllers use (for example CONTROLLER)",
            ));
        }
        let listeners_raw = p.string("listeners").unwrap_or_default();
        let mut protocol_map = parse_protocol_map(
            &p.string("listener.security.protocol.map")
                .unwrap_or_default(),
        )?;
        if !p.is_set("listener.security.protocol.map") {
            // As in Kafka's KRaft mode: with the default map and no SSL or
            // SASL in sight, controller listeners are PLAINTEXT.
            let secure = |name: &str| matches!(name, "SSL" | "SASL_SSL" | "SASL_PLAINTEXT");
            let listener_names_secure = split_list(&listeners_raw).iter().any(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| secure(&n.to_ascii_uppercase()))
            });
            if !controller_listener_names.iter().any(|n| secure(n)) && !listener_names_secure {
                for name in &controller_listener_names {
                    protocol_map
                        .entry(name.clone())
                        .or_insert(SecurityProtocol::Plaintext);
                }
            }
        }
        let listeners = parse_listener_list("listeners", &listeners_raw, &protocol_map)?;
        check_distinct_ports("listeners", &listeners_raw, &listeners)?;
        for l in &listeners {
            if l.security_protocol != SecurityProtocol::Plaintext {
                return Err(ConfigError::Unsupported {
                    key: "listeners".to_string(),
                    value: l.to_string(),
                    reason: format!(
                        "listener {} uses {}; Riffle supports PLAINTEXT listeners only so far",
                        l.name,
                        l.security_protocol.name()
                    ),
                });
            }
        }
        let listener_names: HashSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        for name in &controller_listener_names {
            if !protocol_map.contains_key(name) {
                return Err(inconsistent(
                    "controller.listener.names",
                    format!("controller listener {name} has no security protocol in listener.security.protocol.map"),
                ));
            }
        }
        if is_controller {
            if let Some(name) = controller_listener_names
                .iter()
                .find(|n| !listener_names.contains(n.as_str()))
            {
                return Err(inconsistent(
                    "controller.listener.names",
                    format!("{name} is not one of the listeners ({listeners_raw}); a controller must listen on its controller listeners"),
                ));
            }
        } else {
            if let Some(l) = listeners
                .iter()
                .find(|l| controller_listener_names.contains(&l.name))
            {
                return Err(inconsistent(
                    "listeners",
                    format!("{} is a controller listener; a node that is only a broker must not listen on controller listeners", l.name),
                ));
            }
            if controller_listener_names.len() > 1 {
                warnings.push(format!(
                    "controller.listener.names has several entries; a broker-only node uses only the first, {}",
                    controller_listener_names[0]
                ));
            }
        }
        if !is_broker {
            if let Some(l) = listeners
                .iter()
                .find(|l| !controller_listener_names.contains(&l.name))
            {
                return Err(inconsistent(
                    "listeners",
                    format!("{} is not in controller.listener.names; a controller-only node listens on controller listeners only", l.name),
                ));
            }
        }

        let advertised_all = match p.string("advertised.listeners") {
            Some(raw) => {
                let parsed = parse_listener_list("advertised.listeners", &raw, &protocol_map)?;
                for l in &parsed {
                    if l.security_protocol != SecurityProtocol::Plaintext {
                        return Err(ConfigError::Unsupported {
                            key: "advertised.listeners".to_string(),
                            value: l.to_string(),
                            reason: format!(
                                "listener {} uses {}; Riffle supports PLAINTEXT listeners only so far",
                                l.name,
                                l.security_protocol.name()
                            ),
                        });
                    }
                }
                parsed
            }
            None => listeners.clone(),
        };
        let hostname = if advertised_all.iter().any(|l| l.host.is_empty()) {
            local_hostname()
        } else {
            String::new()
        };
        let fill_host = |mut l: Listener| {
            if l.host.is_empty() {
                l.host = hostname.clone();
            }
            l
        };
        let advertised_listeners: Vec<Listener> = advertised_all
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .cloned()
            .map(fill_host)
            .collect();
        let advertised_controller_listeners: Vec<Listener> = if is_controller {
            controller_listener_names
                .iter()
                .filter_map(|name| {
                    advertised_all
                        .iter()
                        .find(|l| &l.name == name)
                        .or_else(|| listeners.iter().find(|l| &l.name == name))
                        .cloned()
                        .map(fill_host)
                })
                .collect()
        } else {
            Vec::new()
        };
        for l in advertised_listeners
            .iter()
            .chain(&advertised_controller_listeners)
        {
            if l.host == "0.0.0.0" || l.host == "::" {
                return Err(inconsistent(
                    "advertised.listeners",
                    format!("{l} advertises the non-routable address {}; set advertised.listeners to an address clients can reach", l.host),
                ));
            }
        }
        if is_controller && advertised_controller_listeners.is_empty() {
            return Err(inconsistent(
                "controller.listener.names",
                "a controller must listen on at least one of its controller listeners",
            ));
        }

        let inter_broker_listener_name = match p.string("inter.broker.listener.name") {
            Some(name) => {
                if p.is_set("security.inter.broker.protocol") {
                    return Err(inconsistent(
                        "inter.broker.listener.name",
                        "set only one of inter.broker.listener.name and security.inter.broker.protocol",
                    ));
                }
                let name = name.to_ascii_uppercase();
                if !protocol_map.contains_key(&name) {
                    return Err(inconsistent(
                        "inter.broker.listener.name",
                        format!("listener {name} has no security protocol in listener.security.protocol.map"),
                    ));
                }
                name
            }
            None => p
                .string("security.inter.broker.protocol")
                .unwrap_or_else(|| "PLAINTEXT".to_string()),
        };
        if is_broker {
            if advertised_listeners.is_empty() {
                return Err(inconsistent(
                    "advertised.listeners",
                    "a broker needs at least one listener that is not a controller listener",
                ));
            }
            if !advertised_listeners
                .iter()
                .any(|l| l.name == inter_broker_listener_name)
            {
                let names: Vec<&str> = advertised_listeners
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect();
                return Err(inconsistent(
                    "inter.broker.listener.name",
                    format!("{inter_broker_listener_name} is not an advertised broker listener; choose one of {}", names.join(",")),
                ));
            }
            if let Some(l) = advertised_listeners
                .iter()
                .find(|l| !listener_names.contains(l.name.as_str()))
            {
                return Err(inconsistent(
                    "advertised.listeners",
                    format!("{} is advertised but not in listeners", l.name),
                ));
            }
        }

        // Storage.
        let log_dirs_raw = match p.string("log.dirs") {
            Some(dirs) => dirs,
            None => {
                let dir = p.string("log.dir").unwrap_or_default();
                if !p.is_set("log.dir") {
                    warnings.push(format!(
                        "neither log.dirs nor log.dir is set; data goes to Kafka's default {dir}"
                    ));
                }
                dir
            }
        };
        let log_dirs: Vec<PathBuf> = split_list(&log_dirs_raw)
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(missing(
                "log.dirs",
                "at least one data directory must be given in log.dirs or log.dir",
            ));
        }
        let metadata_log_dir = p
            .string("metadata.log.dir")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dirs[0].clone());

        let default_replication_factor_raw = p.req_int("default.replication.factor");
        let default_replication_factor = i16::try_from(default_replication_factor_raw)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                invalid(
                    "default.replication.factor",
                    &default_replication_factor_raw.to_string(),
                    "must be between 1 and 32767",
                )
            })?;

        let log_config = Self::build_log_config(p)?;

        let overrides_raw = p
            .string("max.connections.per.ip.overrides")
            .unwrap_or_default();
        let max_connections_per_ip_overrides =
            parse_connection_overrides(&overrides_raw).map_err(|reason| {
                invalid("max.connections.per.ip.overrides", &overrides_raw, reason)
            })?;

        Ok(BrokerConfig {
            node_id,
            process_roles,
            listeners,
            advertised_listeners,
            advertised_controller_listeners,
            listener_security_protocol_map: protocol_map,
            controller_listener_names,
            inter_broker_listener_name,
            controller_quorum_voters,
            controller_quorum_bootstrap_servers,
            log_dirs,
            metadata_log_dir,
            num_partitions: p.req_int("num.partitions"),
            default_replication_factor,
            auto_create_topics_enable: p.boolean("auto.create.topics.enable"),
            delete_topic_enable: p.boolean("delete.topic.enable"),
            message_max_bytes: p.req_int("message.max.bytes"),
            socket_request_max_bytes: p.req_int("socket.request.max.bytes"),
            socket_send_buffer_bytes: p.req_int("socket.send.buffer.bytes"),
            socket_receive_buffer_bytes: p.req_int("socket.receive.buffer.bytes"),
            connections_max_idle_ms: p.req_long("connections.max.idle.ms"),
            max_connections: p.req_int("max.connections"),
            max_connections_per_ip: p.req_int("max.connections.per.ip"),
            max_connections_per_ip_overrides,
            queued_max_requests: p.req_int("queued.max.requests"),
            broker_rack: p.string("broker.rack"),
            min_insync_replicas: p.req_int("min.insync.replicas"),
            compression_type: p.string("compression.type").unwrap_or_default(),
            unclean_leader_election_enable: p.boolean("unclean.leader.election.enable"),
            offsets_topic_replication_factor: p.req_short("offsets.topic.replication.factor"),
            offsets_topic_num_partitions: p.req_int("offsets.topic.num.partitions"),
            transaction_state_log_replication_factor: p
                .req_short("transaction.state.log.replication.factor"),
            transaction_state_log_num_partitions: p.req_int("transaction.state.log.num.partitions"),
            transaction_state_log_min_isr: p.req_int("transaction.state.log.min.isr"),
            transaction_state_log_segment_bytes: p.req_int("transaction.state.log.segment.bytes"),
            transaction_state_log_load_buffer_size: p
                .req_int("transaction.state.log.load.buffer.size"),
            transaction_max_timeout_ms: p.req_int("transaction.max.timeout.ms"),
            transactional_id_expiration_ms: p.req_int("transactional.id.expiration.ms"),
            transaction_abort_timed_out_transaction_cleanup_interval_ms: p
                .req_int("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
            transaction_remove_expired_transaction_cleanup_interval_ms: p
                .req_int("transaction.remove.expired.transaction.cleanup.interval.ms"),
            producer_id_expiration_ms: p.req_int("producer.id.expiration.ms"),
            producer_id_expiration_check_interval_ms: p
                .req_int("producer.id.expiration.check.interval.ms"),
            group_initial_rebalance_delay_ms: p.req_int("group.initial.rebalance.delay.ms"),
            group_min_session_timeout_ms: p.req_int("group.min.session.timeout.ms"),
            group_max_session_timeout_ms: p.req_int("group.max.session.timeout.ms"),
            group_max_size: p.req_int("group.max.size"),
            offsets_retention_minutes: p.req_int("offsets.retention.minutes"),
            offsets_retention_check_interval_ms: p.req_long("offsets.retention.check.interval.ms"),
            offsets_commit_timeout_ms: p.req_int("offsets.commit.timeout.ms"),
            offset_metadata_max_bytes: p.req_int("offset.metadata.max.bytes"),
            offsets_topic_segment_bytes: p.req_int("offsets.topic.segment.bytes"),
            offsets_load_buffer_size: p.req_int("offsets.load.buffer.size"),
            replica_lag_time_max_ms: p.req_long("replica.lag.time.max.ms"),
            log_retention_check_interval_ms: p.req_long("log.retention.check.interval.ms"),
            log_cleaner_enable: p.boolean("log.cleaner.enable"),
            log_dir_failure_timeout_ms: p.req_long("log.dir.failure.timeout.ms"),
            metadata_max_retention_ms: p.req_long("metadata.max.retention.ms"),
            metadata_max_retention_bytes: p.req_long("metadata.max.retention.bytes"),
            controller_quorum_election_timeout_ms: p
                .req_int("controller.quorum.election.timeout.ms"),
            controller_quorum_fetch_timeout_ms: p.req_int("controller.quorum.fetch.timeout.ms"),
            controller_quorum_election_backoff_max_ms: p
                .req_int("controller.quorum.election.backoff.max.ms"),
            controller_quorum_request_timeout_ms: p.req_int("controller.quorum.request.timeout.ms"),
            controller_quorum_retry_backoff_ms: p.req_int("controller.quorum.retry.backoff.ms"),
            controller_quorum_append_linger_ms: p.req_int("controller.quorum.append.linger.ms"),
            metadata_log_max_record_bytes_between_snapshots: p
                .req_long("metadata.log.max.record.bytes.between.snapshots"),
            metadata_log_max_snapshot_interval_ms: p
                .req_long("metadata.log.max.snapshot.interval.ms"),
            auto_format: false,
            log_config,
            static_values: p.explicit.clone(),
        })
    }

    /// The effective value of a broker synonym group for a topic config:
    /// the first synonym set explicitly, else the first with a default,
    /// converted to the topic config's unit. Also returns the synonym used.
    fn topic_default_from(
        explicit: &BTreeMap<String, String>,
        topic_key: &str,
    ) -> Option<(String, &'static str, bool)> {
        let synonyms = topic_synonyms(topic_key);
        for s in synonyms {
            if let Some(v) = explicit.get(*s) {
                return Some((synonym_to_topic_value(s, v), s, true));
            }
        }
        for s in synonyms {
            if let Some(v) = config_def(s).and_then(|d| d.default) {
                return Some((synonym_to_topic_value(s, v), s, false));
            }
        }
        None
    }

    fn build_log_config(p: &Props<'_>) -> Result<LogConfig, ConfigError> {
        // Kafka: log.roll.ms must be at least 1, and any negative retention
        // means unlimited (-1).
        if let Some(ms) = p.explicit.get("log.roll.ms") {
            if p.long("log.roll.ms").is_some_and(|v| v < 1) {
                return Err(invalid("log.roll.ms", ms, "Value must be at least 1"));
            }
        }
        let mut config = LogConfig::default();
        for &topic_key in riffle_log::config::KEYS {
            let Some((mut value, synonym, _)) = Self::topic_default_from(p.explicit, topic_key)
            else {
                continue;
            };
            if topic_key == "retention.ms" && value.parse::<i64>().is_ok_and(|v| v < 0) {
                value = "-1".to_string();
            }
            if topic_key == "retention.ms" && value == "0" {
                return Err(invalid(
                    synonym,
                    p.raw(synonym).unwrap_or_default(),
                    "retention must be -1 (unlimited) or at least 1 ms",
                ));
            }
            config
                .set(topic_key, &value)
                .map_err(|e| invalid(synonym, p.raw(synonym).unwrap_or_default(), e.to_string()))?;
        }
        Ok(config)
    }

    /// The broker-level log.* defaults mapped onto the topic-level config
    /// (`log.segment.bytes` becomes `segment.bytes`, and so on).
    pub fn default_log_config(&self) -> LogConfig {
        self.log_config.clone()
    }

    /// The log config of a topic: the broker defaults with the topic's own
    /// settings on top. Keys riffle-log does not read are skipped.
    pub fn topic_log_config(
        &self,
        topic_overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, riffle_log::LogError> {
        let mut config = self.default_log_config();
        for (k, v) in topic_overrides {
            if riffle_log::config::KEYS.contains(&k.as_str()) {
                config.set(k, v)?;
            }
        }
        Ok(config)
    }

    /// Whether this node runs the broker role.
    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&Role::Broker)
    }

    /// Whether this node runs the controller role.
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&Role::Controller)
    }

    /// The effective string value of a known broker setting: the explicit
    /// one, else Kafka's default.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.static_values
            .get(key)
            .map(String::as_str)
            .or_else(|| config_def(key).and_then(|d| d.default))
    }

    /// The value given in the file or an override, if any.
    pub fn static_value(&self, key: &str) -> Option<&str> {
        self.static_values.get(key).map(String::as_str)
    }

    /// Every directory that must hold a `meta.properties`: the log dirs and
    /// the metadata log dir, without repeats, in that order.
    pub fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.log_dirs.clone();
        if !dirs.contains(&self.metadata_log_dir) {
            dirs.push(self.metadata_log_dir.clone());
        }
        dirs
    }

    /// DescribeConfigs for this broker: every known setting with its
    /// effective value and source, no dynamic settings applied.
    pub fn describe(&self) -> Vec<DescribedConfig> {
        self.describe_with_dynamic(&BTreeMap::new(), &BTreeMap::new())
    }

    /// DescribeConfigs for this broker with dynamic settings: `per_broker`
    /// for this node, `cluster_default` for all brokers. Sources in Kafka's
    /// precedence: dynamic per-broker, dynamic default, static, default.
    pub fn describe_with_dynamic(
        &self,
        per_broker: &BTreeMap<String, String>,
        cluster_default: &BTreeMap<String, String>,
    ) -> Vec<DescribedConfig> {
        CONFIG_DEFS
            .iter()
            .map(|def| {
                let sensitive = def.kind == K::Password;
                let names = broker_synonyms(def.name);
                let mut synonyms: Vec<DescribedSynonym> = Vec::new();
                let levels: [(Lookup<'_>, ConfigSource); 4] = [
                    (
                        &|n: &str| per_broker.get(n).cloned(),
                        ConfigSource::DynamicBrokerConfig,
                    ),
                    (
                        &|n: &str| cluster_default.get(n).cloned(),
                        ConfigSource::DynamicDefaultBrokerConfig,
                    ),
                    (
                        &|n: &str| self.static_values.get(n).cloned(),
                        ConfigSource::StaticBrokerConfig,
                    ),
                    (
                        &|n: &str| config_def(n).and_then(|d| d.default).map(str::to_string),
                        ConfigSource::DefaultConfig,
                    ),
                ];
                for (lookup, source) in levels.iter() {
                    for n in &names {
                        if let Some(v) = lookup(n) {
                            synonyms.push(DescribedSynonym {
                                name: n.to_string(),
                                value: if sensitive { None } else { Some(v) },
                                source: *source,
                            });
                        }
                    }
                }
                // As Kafka: synonyms of higher precedence than this name's own
                // entries are not listed under it (log.retention.hours does
                // not list a log.retention.ms that overrides it).
                let first_own = synonyms
                    .iter()
                    .position(|s| s.name == def.name)
                    .unwrap_or(synonyms.len());
                synonyms.drain(..first_own);
                let source = synonyms
                    .first()
                    .map(|s| s.source)
                    .unwrap_or(ConfigSource::DefaultConfig);
                let value = if sensitive {
                    None
                } else {
                    synonyms.first().and_then(|s| s.value.clone())
                };
                DescribedConfig {
                    name: def.name.to_string(),
                    value,
                    source,
                    is_sensitive: sensitive,
                    read_only: !def.dynamic,
                    config_type: def.kind,
                    documentation: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// DescribeConfigs for a topic: every topic config with its value and
    /// source (the topic's own setting, a broker synonym from the file, or
    /// the default) and its synonyms in Kafka's order.
    pub fn describe_topic_config(
        &self,
        topic_overrides: &BTreeMap<String, String>,
    ) -> Vec<DescribedConfig> {
        TOPIC_CONFIG_DEFS
            .iter()
            .map(|&(name, kind, doc)| {
                let mut synonyms = Vec::new();
                if let Some(v) = topic_overrides.get(name) {
                    synonyms.push(DescribedSynonym {
                        name: name.to_string(),
                        value: Some(v.clone()),
                        source: ConfigSource::TopicConfig,
                    });
                }
                let broker = topic_synonyms(name);
                for s in broker {
                    if let Some(v) = self.static_values.get(*s) {
                        synonyms.push(DescribedSynonym {
                            name: s.to_string(),
                            value: Some(v.clone()),
                            source: ConfigSource::StaticBrokerConfig,
                        });
                    }
                }
                for s in broker {
                    if let Some(v) = config_def(s).and_then(|d| d.default) {
                        synonyms.push(DescribedSynonym {
                            name: s.to_string(),
                            value: Some(v.to_string()),
                            source: ConfigSource::DefaultConfig,
                        });
                    }
                }
                let value = match topic_overrides.get(name) {
                    Some(v) => Some(v.clone()),
                    None => Self::topic_default_from(&self.static_values, name).map(|(v, _, _)| {
                        if name == "retention.ms" && v.parse::<i64>().is_ok_and(|n| n < 0) {
                            "-1".to_string()
                        } else {
                            v
                        }
                    }),
                };
                let source = if topic_overrides.contains_key(name) {
                    ConfigSource::TopicConfig
                } else if broker.iter().any(|s| self.static_values.contains_key(*s)) {
                    ConfigSource::StaticBrokerConfig
                } else {
                    ConfigSource::DefaultConfig
                };
                DescribedConfig {
                    name: name.to_string(),
                    value,
                    source,
                    is_sensitive: false,
                    read_only: false,
                    config_type: kind,
                    documentation: doc,
                    synonyms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_separators_and_comments() {
        let text = "# comment\n! also comment\n  a=1\nb: 2\nc 3\nd\t=\t4\ne\n f = x y \n";
        let props = parse_properties(text).unwrap();
        assert_eq!(
            props,
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", ""),
                ("f", "x y ")
            ])
        );
    }

    #[test]
    fn properties_continuation_and_escapes() {
        let text = "list=a,\\\n    b,\\\r\n  c\nesc=tab\\there\\nnl\\\\bs\\u0041\nk\\=ey=v\nodd=ends\\\\\nnext=1\n";
        let props = parse_properties(text).unwrap();
        assert_eq!(
            props,
            pairs(&[
                ("list", "a,b,c"),
                ("esc", "tab\there\nnl\\bsA"),
                ("k=ey", "v"),
                ("odd", "ends\\"),
                ("next", "1")
            ])
        );
    }

    #[test]
    fn properties_last_duplicate_wins_and_bad_unicode_names_line() {
        let props = parse_properties("a=1\nb=2\na=3").unwrap();
        assert_eq!(props, pairs(&[("a", "3"), ("b", "2")]));
        let err = parse_properties("a=1\n\nb=\\u00zz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn properties_surrogate_pair() {
        let props = parse_properties("x=\\uD83D\\uDE00").unwrap();
        assert_eq!(props[0].1, "\u{1F600}");
    }

    #[test]
    fn every_default_parses_under_its_own_type() {
        for def in CONFIG_DEFS {
            if let Some(d) = def.default {
                validate_value(def, d).unwrap_or_else(|e| panic!("{}: {e}", def.name));
            }
        }
    }

    #[test]
    fn every_synonym_is_defined() {
        for (topic, synonyms) in TOPIC_CONFIG_SYNONYMS {
            assert!(
                TOPIC_CONFIG_DEFS.iter().any(|(n, _, _)| n == topic),
                "{topic}"
            );
            for s in *synonyms {
                assert!(config_def(s).is_some(), "{s}");
            }
        }
        for key in riffle_log::config::KEYS {
            assert!(TOPIC_CONFIG_SYNONYMS.iter().any(|(t, _)| t == key), "{key}");
        }
        let mut names: Vec<&str> = CONFIG_DEFS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CONFIG_DEFS.len(), "a setting is defined twice");
    }

    #[test]
    fn embedded_default_builds() {
        let (config, warnings) =
            BrokerConfig::from_properties(BrokerConfig::embedded_default(), vec![]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.node_id, 1);
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.advertised_listeners.len(), 1);
        assert_eq!(config.advertised_listeners[0].port, 9092);
        assert_eq!(config.advertised_controller_listeners[0].port, 9093);
        assert_eq!(config.metadata_log_dir, PathBuf::from("./riffle-data"));
        assert_eq!(config.default_log_config(), LogConfig::default());
    }

    #[test]
    fn listener_parsing_handles_ipv6_and_empty_host() {
        let map = parse_protocol_map(DEFAULT_LISTENER_SECURITY_PROTOCOL_MAP).unwrap();
        let l = parse_listener_list("listeners", "PLAINTEXT://[::1]:9092, plaintext2://:1", &{
            let mut m = map.clone();
            m.insert("PLAINTEXT2".into(), SecurityProtocol::Plaintext);
            m
        })
        .unwrap();
        assert_eq!(l[0].host, "::1");
        assert_eq!(l[0].to_string(), "PLAINTEXT://[::1]:9092");
        assert_eq!(l[1].name, "PLAINTEXT2");
        assert_eq!(l[1].host, "");
        assert!(parse_listener_list("listeners", "PLAINTEXT://h:70000", &map).is_err());
        assert!(parse_listener_list("listeners", "PLAINTEXT:/h:1", &map).is_err());
    }

    #[test]
    fn dynamic_validation() {
        assert!(validate_dynamic_broker_config("log.retention.ms", "1000").is_ok());
        assert!(validate_dynamic_broker_config("log.retention.ms", "x")
            .unwrap_err()
            .contains("log.retention.ms"));
        assert!(validate_dynamic_broker_config("node.id", "2")
            .unwrap_err()
            .contains("read-only"));
        assert!(validate_dynamic_broker_config("no.such", "2")
            .unwrap_err()
            .contains("no.such"));
        assert!(validate_dynamic_broker_config("max.connections.per.ip.overrides", "h:x").is_err());
        assert!(
            validate_dynamic_broker_config("max.connections.per.ip.overrides", "h:1,[::1]:2")
                .is_ok()
        );
    }
}
