//! DescribeConfigs (v1-v4), AlterConfigs (v0-v2), IncrementalAlterConfigs (v0-v1) for
//! topics (Kafka's topic config names) and the broker (read-only: its settings come from
//! the config file).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::errors;
use crate::metadata::topic_config::{self, TOPIC_CONFIG_NAMES};
use crate::topics::{self, AdminError};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type" => TYPE_STRING,
        "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "index.interval.bytes"
        | "num.partitions"
        | "socket.request.max.bytes"
        | "message.max.bytes"
        | "node.id" => TYPE_INT,
        "auto.create.topics.enable" => TYPE_BOOLEAN,
        _ => TYPE_LONG,
    }
}

fn entry(name: &str, value: String, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = str_bytes(name);
    c.value = Some(str_bytes(value));
    c.config_source = source;
    c.read_only = read_only;
    c.config_type = config_type(name);
    c
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = &broker.config;
    let log = &broker.defaults.log;
    vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
        ),
        ("log.retention.bytes", log.retention_bytes.to_string()),
        ("log.retention.ms", log.retention_ms.to_string()),
        ("log.segment.bytes", log.segment_bytes.to_string()),
        ("log.roll.ms", log.segment_ms.to_string()),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        ("node.id", c.node_id.to_string()),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
        ),
    ]
}

pub fn describe(
    broker: &Rc<Broker>,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    let snapshot = broker.store.snapshot();
    for r in &req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let wanted = |name: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        match r.resource_type {
            RESOURCE_TOPIC => match snapshot.topic(r.resource_name.as_str()) {
                None => {
                    out.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                    out.error_message = Some(str_bytes(format!(
                        "topic {:?} does not exist",
                        r.resource_name.as_str()
                    )));
                }
                Some(t) => {
                    for name in TOPIC_CONFIG_NAMES.iter().filter(|n| wanted(n)) {
                        if let Some((value, is_default)) =
                            topic_config::effective(&broker.defaults, &t.configs, name)
                        {
                            let source = if is_default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_DYNAMIC_TOPIC
                            };
                            out.configs.push(entry(name, value, source, false));
                        }
                    }
                }
            },
            RESOURCE_BROKER => {
                let name = r.resource_name.as_str();
                if !name.is_empty() && name != broker.node_id().to_string() {
                    out.error_code = errors::INVALID_REQUEST;
                    out.error_message =
                        Some(str_bytes(format!("this is broker {}", broker.node_id())));
                } else {
                    for (name, value) in broker_configs(broker)
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                    {
                        out.configs
                            .push(entry(name, value, SOURCE_STATIC_BROKER, true));
                    }
                }
            }
            other => {
                out.error_code = errors::INVALID_REQUEST;
                out.error_message =
                    Some(str_bytes(format!("resource type {other} is not supported")));
            }
        }
        resp.results.push(out);
    }
    resp
}

/// Checks a resource is a topic that exists (or says why not).
fn topic_target(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, AdminError> {
    match resource_type {
        RESOURCE_TOPIC => broker
            .store
            .snapshot()
            .topic(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| {
                AdminError::new(
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic {name:?} does not exist"),
                )
            }),
        RESOURCE_BROKER => Err(AdminError::new(
            errors::INVALID_REQUEST,
            "broker configs come from the config file and cannot be altered at run time",
        )),
        other => Err(AdminError::new(
            errors::INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    }
}

fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
    for (name, value) in configs {
        topic_config::validate(name, value)
            .map_err(|e| AdminError::new(errors::INVALID_CONFIG, e.to_string()))?;
    }
    Ok(())
}

async fn apply(
    broker: &Rc<Broker>,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), AdminError> {
    validate_all(&configs)?;
    if validate_only {
        return Ok(());
    }
    topics::set_configs(broker, name, configs).await
}

/// AlterConfigs replaces a topic's whole set of overrides.
pub async fn alter(
    broker: &Rc<Broker>,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for r in &req.resources {
        let name = r.resource_name.to_string();
        let result = match topic_target(broker, r.resource_type, &name) {
            Err(e) => Err(e),
            Ok(_) => {
                let configs = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                apply(broker, &name, configs, req.validate_only).await
            }
        };
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        if let Err(e) = result {
            out.error_code = e.code;
            out.error_message = Some(str_bytes(e.message));
        }
        resp.responses.push(out);
    }
    resp
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// IncrementalAlterConfigs: SET / DELETE / APPEND / SUBTRACT on top of the current overrides.
pub async fn incremental_alter(
    broker: &Rc<Broker>,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in &req.resources {
        let name = r.resource_name.to_string();
        let result = match topic_target(broker, r.resource_type, &name) {
            Err(e) => Err(e),
            Ok(mut configs) => {
                let mut bad = None;
                for c in &r.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    let list_op =
                        c.config_operation == OP_APPEND || c.config_operation == OP_SUBTRACT;
                    if list_op && config_type(&key) != TYPE_LIST {
                        bad = Some(AdminError::new(
                            errors::INVALID_CONFIG,
                            format!("{key} is not a list config"),
                        ));
                        break;
                    }
                    match c.config_operation {
                        OP_SET => {
                            configs.insert(key, value);
                        }
                        OP_DELETE => {
                            configs.remove(&key);
                        }
                        OP_APPEND | OP_SUBTRACT => {
                            let current = topic_config::effective(&broker.defaults, &configs, &key)
                                .map(|(v, _)| v)
                                .unwrap_or_default();
                            let mut items: Vec<String> = current
                                .split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect();
                            for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                if c.config_operation == OP_APPEND {
                                    if !items.iter().any(|i| i == v) {
                                        items.push(v.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != v);
                                }
                            }
                            configs.insert(key, items.join(","));
                        }
                        other => {
                            bad = Some(AdminError::new(
                                errors::INVALID_REQUEST,
                                format!("unknown config operation {other}"),
                            ));
                            break;
                        }
                    }
                }
                match bad {
                    Some(e) => Err(e),
                    None => apply(broker, &name, configs, req.validate_only).await,
                }
            }
        };
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        if let Err(e) = result {
            out.error_code = e.code;
            out.error_message = Some(str_bytes(e.message));
        }
        resp.responses.push(out);
    }
    resp
}
