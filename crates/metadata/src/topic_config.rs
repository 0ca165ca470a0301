//! Kafka's topic-level config names and how each value is validated.
//!
//! The configs the log reads are validated by `riffle_log::LogConfig::set`;
//! the others are Kafka topic configs that Riffle accepts and stores but does
//! not act on yet (replication, tiered storage, compression on write...).
//! They are validated here by type and range as Kafka's `LogConfig` defines
//! them, so that a client sees the same INVALID_CONFIG answers.

use std::collections::BTreeMap;

use riffle_log::LogConfig;

enum Kind {
    Bool,
    /// A 32-bit integer at least this.
    Int(i64),
    /// A 32-bit integer in this inclusive range.
    IntRange(i64, i64),
    /// A 64-bit integer at least this.
    Long(i64),
    /// One of these (case-sensitive as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// Any string.
    Any,
}

/// Topic configs Kafka 3.9 defines that `riffle_log::LogConfig` does not
/// read.
const OTHER_KEYS: &[(&str, Kind)] = &[
    (
        "compression.type",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("compression.gzip.level", Kind::IntRange(-1, 9)),
    ("compression.lz4.level", Kind::IntRange(1, 17)),
    ("compression.zstd.level", Kind::IntRange(-131_072, 22)),
    ("min.insync.replicas", Kind::Int(1)),
    ("unclean.leader.election.enable", Kind::Bool),
    ("message.downconversion.enable", Kind::Bool),
    ("preallocate", Kind::Bool),
    ("local.retention.ms", Kind::Long(-2)),
    ("local.retention.bytes", Kind::Long(-2)),
    ("remote.storage.enable", Kind::Bool),
    ("remote.log.copy.disable", Kind::Bool),
    ("remote.log.delete.on.disable", Kind::Bool),
    ("file.delete.delay.ms", Kind::Long(0)),
    ("max.compaction.lag.ms", Kind::Long(1)),
    ("segment.jitter.ms", Kind::Long(0)),
    ("message.format.version", Kind::Any),
    ("leader.replication.throttled.replicas", Kind::Any),
    ("follower.replication.throttled.replicas", Kind::Any),
];

/// Topic configs whose type is LIST: the only ones that APPEND and SUBTRACT
/// apply to.
pub const LIST_KEYS: &[&str] = &[
    "cleanup.policy",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// Whether `name` is a topic config Kafka knows.
pub fn is_topic_config(name: &str) -> bool {
    riffle_log::config::KEYS.contains(&name) || OTHER_KEYS.iter().any(|(k, _)| *k == name)
}

fn invalid(key: &str, value: &str, reason: &str) -> String {
    format!("Invalid value {value} for configuration {key}: {reason}")
}

fn check_int(key: &str, value: &str, min: i64, max: i64, bits: &str) -> Result<(), String> {
    let v: i64 = value.trim().parse().map_err(|_| {
        invalid(
            key,
            value,
            &format!("Expected value to be a {bits} number."),
        )
    })?;
    if v < min {
        return Err(invalid(
            key,
            value,
            &format!("Value must be at least {min}"),
        ));
    }
    if v > max {
        return Err(invalid(
            key,
            value,
            &format!("Value must be no more than {max}"),
        ));
    }
    Ok(())
}

/// Validates one topic config, with a message naming the key.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    if riffle_log::config::KEYS.contains(&key) {
        return LogConfig::default()
            .set(key, value)
            .map_err(|e| invalid(key, value, &e.to_string()));
    }
    let Some((_, kind)) = OTHER_KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Unknown topic config name: {key}"));
    };
    let i32_max = i64::from(i32::MAX);
    match kind {
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(invalid(
                key,
                value,
                "Expected value to be either true or false",
            )),
        },
        Kind::Int(min) => check_int(key, value, *min, i32_max, "32-bit integer"),
        Kind::IntRange(min, max) => check_int(key, value, *min, *max, "32-bit integer"),
        Kind::Long(min) => check_int(key, value, *min, i64::MAX, "64-bit integer"),
        Kind::OneOf(allowed) => {
            if allowed.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    &format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        Kind::Any => Ok(()),
    }
}

/// Validates a whole set of topic configs: each key and value, then the
/// combination through `LogConfig::from_map`.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in configs {
        validate_topic_config(k, v)?;
    }
    let log_keys: BTreeMap<String, String> = configs
        .iter()
        .filter(|(k, _)| riffle_log::config::KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    LogConfig::from_map(&log_keys)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_and_kafka_only_keys_are_accepted() {
        assert!(validate_topic_config("retention.ms", "1000").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("compression.type", "zstd").is_ok());
        assert!(validate_topic_config("min.insync.replicas", "2").is_ok());
        assert!(validate_topic_config("preallocate", "TRUE").is_ok());
        assert!(validate_topic_config("local.retention.ms", "-2").is_ok());
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key() {
        for (k, v) in [
            ("retention.ms", "soon"),
            ("compression.type", "brotli"),
            ("min.insync.replicas", "0"),
            ("preallocate", "yes"),
            ("segment.bytes", "1"),
        ] {
            let e = validate_topic_config(k, v).expect_err(k);
            assert!(e.contains(k), "{e}");
        }
        let e = validate_topic_config("no.such.config", "1").expect_err("unknown");
        assert_eq!(e, "Unknown topic config name: no.such.config");
    }
}
