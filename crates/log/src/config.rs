//! Per-topic log configuration, under Kafka's names and with Kafka's
//! defaults (Apache Kafka 3.9's `LogConfig`).

use std::collections::BTreeMap;

use crate::batch::{TimestampType, ValidationConfig};
use crate::error::LogError;

/// The topic-level configs that the log reads. Field names mirror the Kafka
/// keys (`segment.bytes` is `segment_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub cleanup_policy_delete: bool,
    pub cleanup_policy_compact: bool,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub max_message_bytes: u64,
    pub message_timestamp_type: TimestampType,
    pub message_timestamp_difference_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_difference_max_ms: i64::MAX,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
        }
    }
}

/// The keys [`LogConfig::set`] understands.
pub const KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "flush.messages",
    "flush.ms",
];

fn invalid(key: &str, reason: impl Into<String>) -> LogError {
    LogError::InvalidConfig {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn parse_long(key: &str, value: &str, min: i64) -> Result<i64, LogError> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, format!("'{value}' is not a whole number")))?;
    if v < min {
        return Err(invalid(key, format!("{v} is below the minimum {min}")));
    }
    Ok(v)
}

fn parse_int(key: &str, value: &str, min: i64) -> Result<i64, LogError> {
    let v = parse_long(key, value, min)?;
    if v > i64::from(i32::MAX) {
        return Err(invalid(
            key,
            format!("{v} is above the maximum {}", i32::MAX),
        ));
    }
    Ok(v)
}

impl LogConfig {
    /// Applies one config, validated as Kafka validates it. Unknown keys are
    /// an error here; callers that accept other keys filter with [`KEYS`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), LogError> {
        match key {
            // Kafka 3.9 accepts 14 bytes (the smallest legacy record) upwards.
            "segment.bytes" => self.segment_bytes = parse_int(key, value, 14)? as u64,
            "segment.ms" => self.segment_ms = parse_long(key, value, 1)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_int(key, value, 4)? as u64,
            "index.interval.bytes" => self.index_interval_bytes = parse_int(key, value, 0)? as u64,
            "retention.ms" => self.retention_ms = parse_long(key, value, -1)?,
            "retention.bytes" => self.retention_bytes = parse_long(key, value, i64::MIN)?,
            "cleanup.policy" => {
                let mut delete = false;
                let mut compact = false;
                for part in value.split(',').map(str::trim) {
                    match part {
                        "delete" => delete = true,
                        "compact" => compact = true,
                        other => {
                            return Err(invalid(
                                key,
                                format!("'{other}' is not one of [compact, delete]"),
                            ))
                        }
                    }
                }
                self.cleanup_policy_delete = delete;
                self.cleanup_policy_compact = compact;
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_long(key, value, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_long(key, value, 0)?,
            "min.cleanable.dirty.ratio" => {
                let v: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(key, format!("'{value}' is not a number")))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(invalid(key, format!("{v} is not between 0 and 1")));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "max.message.bytes" => self.max_message_bytes = parse_int(key, value, 0)? as u64,
            "message.timestamp.type" => {
                self.message_timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    other => {
                        return Err(invalid(
                            key,
                            format!("'{other}' is not one of [CreateTime, LogAppendTime]"),
                        ))
                    }
                }
            }
            "message.timestamp.difference.max.ms" => {
                self.message_timestamp_difference_max_ms = parse_long(key, value, 0)?
            }
            "message.timestamp.before.max.ms" => {
                self.message_timestamp_before_max_ms = parse_long(key, value, 0)?
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = parse_long(key, value, 0)?
            }
            "flush.messages" => self.flush_messages = parse_long(key, value, 1)?,
            "flush.ms" => self.flush_ms = parse_long(key, value, 0)?,
            other => return Err(invalid(other, "unknown topic configuration")),
        }
        Ok(())
    }

    /// Builds a config from defaults plus the given overrides.
    pub fn from_map(overrides: &BTreeMap<String, String>) -> Result<LogConfig, LogError> {
        let mut config = LogConfig::default();
        for (k, v) in overrides {
            config.set(k, v)?;
        }
        Ok(config)
    }

    /// The maximum offset-index entries in one segment (`segment.index.bytes / 8`).
    pub fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / 8) as usize
    }

    /// The maximum time-index entries in one segment (`segment.index.bytes / 12`).
    pub fn time_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / 12) as usize
    }

    /// What produce validation needs from this config.
    pub fn validation(&self) -> ValidationConfig {
        ValidationConfig {
            max_message_bytes: self.max_message_bytes as usize,
            segment_bytes: self.segment_bytes as usize,
            timestamp_type: self.message_timestamp_type,
            timestamp_before_max_ms: self
                .message_timestamp_before_max_ms
                .min(self.message_timestamp_difference_max_ms),
            timestamp_after_max_ms: self
                .message_timestamp_after_max_ms
                .min(self.message_timestamp_difference_max_ms),
            compacted: self.cleanup_policy_compact,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.retention_ms, 7 * 24 * 3600 * 1000);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.offset_index_entries_max(), 1_310_720);
        assert!(c.cleanup_policy_delete && !c.cleanup_policy_compact);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut c = LogConfig::default();
        let err = c.set("segment.bytes", "abc").unwrap_err().to_string();
        assert!(err.contains("segment.bytes"), "{err}");
        assert!(c.set("retention.ms", "-2").is_err());
        assert!(c.set("cleanup.policy", "compact,shred").is_err());
        assert!(c.set("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(c.set("no.such.key", "1").is_err());
        c.set("cleanup.policy", "compact,delete").unwrap();
        assert!(c.cleanup_policy_compact && c.cleanup_policy_delete);
        c.set("message.timestamp.difference.max.ms", "1000")
            .unwrap();
        assert_eq!(c.validation().timestamp_before_max_ms, 1000);
    }
}
