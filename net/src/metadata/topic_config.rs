//! Topic configs by their Kafka names: validation, defaults, and the mapping onto the
//! engine's [`LogConfig`]. Topics store only their overrides (name -> string value).

use std::collections::BTreeMap;

use sluice_engine::{CleanupPolicy, LogConfig};

/// Broker-wide defaults a topic without overrides gets.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicDefaults {
    pub log: LogConfig,
    pub max_message_bytes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config {0:?}")]
    Unknown(String),
    #[error("invalid value {value:?} for {name}: {why}")]
    BadValue {
        name: String,
        value: String,
        why: &'static str,
    },
}

/// Every topic config this broker knows, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

fn parse_i64(name: &str, value: &str, min: i64) -> Result<i64, TopicConfigError> {
    let bad = |why| TopicConfigError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        why,
    };
    let v: i64 = value.trim().parse().map_err(|_| bad("not an integer"))?;
    if v < min {
        return Err(bad("below the minimum"));
    }
    Ok(v)
}

/// Checks one (name, value) pair the way Kafka's topic config validation does.
pub fn validate(name: &str, value: &str) -> Result<(), TopicConfigError> {
    let bad = |why| TopicConfigError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        why,
    };
    match name {
        "cleanup.policy" => CleanupPolicy::parse(value)
            .map(drop)
            .ok_or_else(|| bad("must be delete and/or compact")),
        "delete.retention.ms" | "min.compaction.lag.ms" => parse_i64(name, value, 0).map(drop),
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(bad("must be a number in [0, 1]")),
        },
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(bad("must be CreateTime or LogAppendTime")),
        },
        "retention.ms" | "retention.bytes" => parse_i64(name, value, -1).map(drop),
        "segment.ms" => parse_i64(name, value, 1).map(drop),
        "segment.bytes" => {
            let v = parse_i64(name, value, 14)?;
            if v as u64 > sluice_engine::limits::SEGMENT_BYTES_MAX {
                return Err(bad("above the largest segment the engine writes"));
            }
            Ok(())
        }
        "index.interval.bytes" => parse_i64(name, value, 0).map(drop),
        "min.insync.replicas" => parse_i64(name, value, 1).map(drop),
        "max.message.bytes" => {
            let v = parse_i64(name, value, 0)?;
            if v as usize > sluice_engine::limits::BATCH_BYTES_MAX {
                return Err(bad("above the largest batch the engine accepts"));
            }
            Ok(())
        }
        _ => Err(TopicConfigError::Unknown(name.to_string())),
    }
}

/// The value a topic has for `name`, and whether it is the broker default.
pub fn effective(
    defaults: &TopicDefaults,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Option<(String, bool)> {
    if let Some(v) = overrides.get(name) {
        return Some((v.clone(), false));
    }
    let d = &defaults.log;
    let v = match name {
        "cleanup.policy" => policy_name(d.cleanup_policy).to_string(),
        "delete.retention.ms" => d.delete_retention_ms.to_string(),
        "min.cleanable.dirty.ratio" => d.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => d.min_compaction_lag_ms.to_string(),
        "index.interval.bytes" => d.index_interval_bytes.to_string(),
        "max.message.bytes" => defaults.max_message_bytes.to_string(),
        "message.timestamp.type" => if d.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        }
        .to_string(),
        "min.insync.replicas" => "1".to_string(),
        "retention.bytes" => d.retention_bytes.to_string(),
        "retention.ms" => d.retention_ms.to_string(),
        "segment.bytes" => d.segment_bytes.to_string(),
        "segment.ms" => d.segment_ms.to_string(),
        _ => return None,
    };
    Some((v, true))
}

/// Kafka's spelling of a cleanup policy.
fn policy_name(p: CleanupPolicy) -> &'static str {
    match p {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactDelete => "compact,delete",
    }
}

/// The engine log config a topic's partitions run with. Overrides were validated when
/// stored; one that no longer parses falls back to the default.
pub fn log_config(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut c = defaults.log.clone();
    let int = |name: &str| {
        overrides
            .get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if let Some(v) = int("retention.ms") {
        c.retention_ms = v;
    }
    if let Some(v) = int("retention.bytes") {
        c.retention_bytes = v;
    }
    if let Some(v) = int("segment.ms") {
        c.segment_ms = v;
    }
    if let Some(v) = int("segment.bytes") {
        c.segment_bytes = v.max(0) as u64;
    }
    if let Some(v) = int("index.interval.bytes") {
        c.index_interval_bytes = v.max(0) as u64;
    }
    if let Some(v) = overrides.get("message.timestamp.type") {
        c.log_append_time = v == "LogAppendTime";
    }
    if let Some(p) = overrides
        .get("cleanup.policy")
        .and_then(|v| CleanupPolicy::parse(v))
    {
        c.cleanup_policy = p;
    }
    if let Some(v) = int("delete.retention.ms") {
        c.delete_retention_ms = v;
    }
    if let Some(v) = int("min.compaction.lag.ms") {
        c.min_compaction_lag_ms = v;
    }
    if let Some(v) = overrides
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        c.min_cleanable_dirty_ratio = v.clamp(0.0, 1.0);
    }
    c
}

/// The largest record batch a topic accepts (max.message.bytes).
pub fn max_message_bytes(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> usize {
    overrides
        .get("max.message.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(defaults.max_message_bytes.max(0) as usize)
        .min(sluice_engine::limits::BATCH_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            log: LogConfig::default(),
            max_message_bytes: 1_048_588,
        }
    }

    #[test]
    fn overrides_map_onto_the_engine_log_config() {
        let o: BTreeMap<String, String> = [
            ("retention.ms", "1000"),
            ("segment.bytes", "16777216"),
            ("message.timestamp.type", "LogAppendTime"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let c = log_config(&defaults(), &o);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.segment_bytes, 16 << 20);
        assert!(c.log_append_time);
        assert_eq!(
            effective(&defaults(), &o, "retention.ms"),
            Some(("1000".into(), false))
        );
        assert_eq!(
            effective(&defaults(), &o, "cleanup.policy"),
            Some(("delete".into(), true))
        );
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        assert!(matches!(
            validate("retention.mss", "1"),
            Err(TopicConfigError::Unknown(_))
        ));
        assert!(matches!(
            validate("retention.ms", "soon"),
            Err(TopicConfigError::BadValue { .. })
        ));
        assert!(matches!(
            validate("retention.ms", "-2"),
            Err(TopicConfigError::BadValue { .. })
        ));
        assert!(matches!(
            validate("cleanup.policy", "shred"),
            Err(TopicConfigError::BadValue { .. })
        ));
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("max.message.bytes", "2000000").is_ok());
        for name in TOPIC_CONFIG_NAMES {
            assert!(
                effective(&defaults(), &BTreeMap::new(), name).is_some(),
                "{name} has a default"
            );
        }
    }

    #[test]
    fn compaction_configs_reach_the_engine() {
        let o: BTreeMap<String, String> = [
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "500"),
            ("min.compaction.lag.ms", "7"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        for (k, v) in &o {
            validate(k, v).expect("valid");
        }
        let c = log_config(&defaults(), &o);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(c.delete_retention_ms, 500);
        assert_eq!(c.min_compaction_lag_ms, 7);
        let d = log_config(&defaults(), &BTreeMap::new());
        assert_eq!(d.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(d.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("delete.retention.ms", "-1").is_err());
        assert!(validate("cleanup.policy", "").is_err());
        assert_eq!(
            effective(&defaults(), &BTreeMap::new(), "min.cleanable.dirty.ratio"),
            Some(("0.5".into(), true))
        );
    }

    #[test]
    fn max_message_bytes_override_wins() {
        let o = BTreeMap::from([("max.message.bytes".to_string(), "100".to_string())]);
        assert_eq!(max_message_bytes(&defaults(), &o), 100);
        assert_eq!(max_message_bytes(&defaults(), &BTreeMap::new()), 1_048_588);
    }
}
